"""autopath's metric, named as CoreDNS names it."""

from __future__ import annotations

from ... import metrics

success = metrics.counter("autopath", "success_total", "Counter of requests that did autopath.", ["server"])
