"""The cache's metrics, named and labelled as CoreDNS's plugin/cache/metrics.go names them.

Children are looked up once per (server, zones) and kept, so a hit pays two ``inc()`` calls and
no label lookup.
"""

from __future__ import annotations

from ... import metrics

SUCCESS = "success"
DENIAL = "denial"

entries = metrics.gauge(
    "cache", "entries", "The number of elements in the cache.", ["server", "type", "zones", "view"]
)
requests = metrics.counter(
    "cache", "requests_total", "The count of cache requests.", ["server", "zones", "view"]
)
hits = metrics.counter("cache", "hits_total", "The count of cache hits.", ["server", "type", "zones", "view"])
misses = metrics.counter(
    "cache",
    "misses_total",
    "The count of cache misses. Deprecated, derive misses from cache hits/requests counters.",
    ["server", "zones", "view"],
)
prefetches = metrics.counter(
    "cache",
    "prefetch_total",
    "The number of times the cache has prefetched a cached item.",
    ["server", "zones", "view"],
)
drops = metrics.counter(
    "cache",
    "drops_total",
    "The number responses that are not cached, because the reply is malformed.",
    ["server", "zones", "view"],
)
served_stale = metrics.counter(
    "cache",
    "served_stale_total",
    "The number of requests served from stale cache entries.",
    ["server", "zones", "view"],
)
evictions = metrics.counter(
    "cache", "evictions_total", "The count of cache evictions.", ["server", "type", "zones", "view"]
)


class ServerMetrics:
    """The labelled children for one server address and one cache."""

    __slots__ = (
        "drops",
        "entries_denial",
        "entries_success",
        "evictions_denial",
        "evictions_success",
        "hits_denial",
        "hits_success",
        "misses",
        "prefetches",
        "requests",
        "served_stale",
    )

    def __init__(self, server: str, zones: str, view: str = "") -> None:
        self.requests = requests.labels(server, zones, view)
        self.hits_success = hits.labels(server, SUCCESS, zones, view)
        self.hits_denial = hits.labels(server, DENIAL, zones, view)
        self.misses = misses.labels(server, zones, view)
        self.prefetches = prefetches.labels(server, zones, view)
        self.drops = drops.labels(server, zones, view)
        self.served_stale = served_stale.labels(server, zones, view)
        self.evictions_success = evictions.labels(server, SUCCESS, zones, view)
        self.evictions_denial = evictions.labels(server, DENIAL, zones, view)
        self.entries_success = entries.labels(server, SUCCESS, zones, view)
        self.entries_denial = entries.labels(server, DENIAL, zones, view)
