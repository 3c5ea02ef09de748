"""errors: log the errors of the plugin chain, or consolidate them (CoreDNS's plugin/errors).

``setup`` reads the Corefile lines, ``handler`` logs and counts errors; ``twisted_coredns.goregexp``
gives the ``consolidate`` patterns Go's regular expression syntax.
"""
