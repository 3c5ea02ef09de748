"""The dnssec plugin's metrics, under CoreDNS's names."""

from __future__ import annotations

from ... import metrics

cache_entries = metrics.gauge(
    "dnssec", "cache_entries", "The number of elements in the dnssec cache.", ["server", "type"]
)
cache_hits = metrics.counter("dnssec", "cache_hits_total", "The count of cache hits.", ["server"])
cache_misses = metrics.counter("dnssec", "cache_misses_total", "The count of cache misses.", ["server"])
