"""Metrics with CoreDNS's names, on prometheus_client.

Two registries, because with ``multisocket`` the metrics live in two kinds of process:

- ``REGISTRY`` holds what the query path counts: the per-query families of CoreDNS's
  ``plugin/metrics/vars`` (kept by ``queries``, in plain Python counters read at scrape time) and
  every plugin's own families (cache, forward, hosts, ...). Each worker has its own; the master
  sums them (``snapshot``).
- ``PROCESS_REGISTRY`` holds what the process that serves ``/metrics`` knows alone: build info,
  the plugins enabled, health and reload. It is never summed: N workers would count one health
  check N times.

Plugins declare their metrics here at import time (``coredns_<subsystem>_<name>``), whether or not
the ``prometheus`` plugin exposes them. A labelled child costs about a microsecond to look up, so
hot paths keep the children they use.
"""

from __future__ import annotations

from collections.abc import Sequence

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, disable_created_metrics

# Go's client has no ``_created`` series, and a sum of creation times over workers means nothing.
disable_created_metrics()

NAMESPACE = "coredns"
REGISTRY = CollectorRegistry(auto_describe=True)
PROCESS_REGISTRY = CollectorRegistry(auto_describe=True)

TIME_BUCKETS: tuple[float, ...] = tuple(0.00025 * 2**i for i in range(16))
"""CoreDNS's ``plugin.TimeBuckets``: 0.25 ms doubling to about 8 s."""
SIZE_BUCKETS: tuple[float, ...] = (0, 100, 200, 300, 400, 511, 1023, 2047, 4095, 8291, 16e3, 32e3, 48e3, 64e3)

_made: dict[str, Counter | Gauge | Histogram] = {}


def _full(subsystem: str, name: str) -> str:
    return f"{NAMESPACE}_{subsystem}_{name}" if subsystem else f"{NAMESPACE}_{name}"


def counter(
    subsystem: str,
    name: str,
    documentation: str,
    labels: Sequence[str] = (),
    registry: CollectorRegistry = REGISTRY,
) -> Counter:
    """``coredns_<subsystem>_<name>`` (``name`` ends in ``_total`` as CoreDNS's do)."""
    full = _full(subsystem, name)
    if full not in _made:
        base = full[: -len("_total")] if full.endswith("_total") else full
        _made[full] = Counter(base, documentation, list(labels), registry=registry)
    made = _made[full]
    assert isinstance(made, Counter)
    return made


def gauge(
    subsystem: str,
    name: str,
    documentation: str,
    labels: Sequence[str] = (),
    registry: CollectorRegistry = REGISTRY,
) -> Gauge:
    full = _full(subsystem, name)
    if full not in _made:
        _made[full] = Gauge(full, documentation, list(labels), registry=registry)
    made = _made[full]
    assert isinstance(made, Gauge)
    return made


def histogram(
    subsystem: str,
    name: str,
    documentation: str,
    labels: Sequence[str] = (),
    buckets: Sequence[float] = TIME_BUCKETS,
    registry: CollectorRegistry = REGISTRY,
) -> Histogram:
    full = _full(subsystem, name)
    if full not in _made:
        _made[full] = Histogram(
            full, documentation, list(labels), registry=registry, buckets=list(buckets)
        )
    made = _made[full]
    assert isinstance(made, Histogram)
    return made


__all__ = [
    "NAMESPACE",
    "PROCESS_REGISTRY",
    "REGISTRY",
    "SIZE_BUCKETS",
    "TIME_BUCKETS",
    "counter",
    "gauge",
    "histogram",
]
