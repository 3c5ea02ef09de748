"""The metrics of ``forward`` and of its upstream proxies, named as CoreDNS names them now.

``coredns_forward_*`` count what the plugin decides; ``coredns_proxy_*`` (label
``proxy_name="forward"``) what happens with each upstream. Of the families CoreDNS deprecated,
``coredns_forward_requests_total{to}`` is kept: CoreDNS's own dashboards and many alerts still
query it, and it costs one increment per upstream reply.
"""

from __future__ import annotations

from ... import metrics

healthcheck_broken = metrics.counter(
    "forward",
    "healthcheck_broken_total",
    "Counter of the number of complete failures of the healthchecks.",
)
max_concurrent_rejects = metrics.counter(
    "forward",
    "max_concurrent_rejects_total",
    "Counter of the number of queries rejected because the concurrent queries were at maximum.",
)
requests = metrics.counter(
    "forward", "requests_total", "Counter of requests made per upstream.", ["to"]
)
request_duration = metrics.histogram(
    "proxy",
    "request_duration_seconds",
    "Histogram of the time each request took.",
    ["proxy_name", "to", "rcode"],
)
healthcheck_failures = metrics.counter(
    "proxy",
    "healthcheck_failures_total",
    "Counter of the number of failed healthchecks.",
    ["proxy_name", "to"],
)
conn_cache_hits = metrics.counter(
    "proxy",
    "conn_cache_hits_total",
    "Counter of connection cache hits per upstream and protocol.",
    ["proxy_name", "to", "proto"],
)
conn_cache_misses = metrics.counter(
    "proxy",
    "conn_cache_misses_total",
    "Counter of connection cache misses per upstream and protocol.",
    ["proxy_name", "to", "proto"],
)
