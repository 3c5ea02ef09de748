"""dns64's metric, named as CoreDNS names it."""

from __future__ import annotations

from ... import metrics

requests_translated = metrics.counter(
    "dns64", "requests_translated_total", "Counter of DNS requests translated by dns64.", ["server"]
)
