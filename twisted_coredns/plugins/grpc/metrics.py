"""The ``coredns_grpc_*`` families, with CoreDNS's names, help texts and labels."""

from __future__ import annotations

from ... import metrics

requests = metrics.counter("grpc", "requests_total", "Counter of requests made per upstream.", ["to"])
responses = metrics.counter(
    "grpc", "responses_total", "Counter of requests made per upstream.", ["rcode", "to"]
)
request_duration = metrics.histogram(
    "grpc", "request_duration_seconds", "Histogram of the time each request took.", ["to"]
)
