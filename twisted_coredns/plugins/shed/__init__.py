"""shed: bounds the UDP queries a listener holds unanswered, dropping new ones past the bound
(CoreDNS's plugin/shed, translated to one reactor).

- ``setup``: ``shed`` (no arguments, plain DNS blocks only);
- ``handler``: the per-listener count of UDP queries in flight, and the silent drop;
- ``metrics``: ``coredns_shed_dropped_total{server, reason}``.
"""
