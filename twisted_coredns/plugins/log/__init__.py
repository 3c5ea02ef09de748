"""log: one line per query on standard output (CoreDNS's plugin/log).

``setup`` reads the Corefile lines, ``handler`` observes the chain's replies, ``replacer`` formats the
lines; ``twisted_coredns.dns.classify`` sorts replies into success, denial and error for the
``class`` filter.
"""
