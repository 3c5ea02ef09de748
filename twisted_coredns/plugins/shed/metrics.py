"""shed's metric, named as CoreDNS names it."""

from __future__ import annotations

from ... import metrics

dropped = metrics.counter(
    "shed", "dropped_total", "Counter of queries and responses dropped, per server, by reason.",
    ["server", "reason"],
)
