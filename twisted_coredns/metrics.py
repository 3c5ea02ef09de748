"""Metrics with CoreDNS's names, on prometheus_client.

Plugins declare their metrics here at import time (``coredns_<subsystem>_<name>``), whether or not
the ``prometheus`` plugin exposes them; that plugin serves ``REGISTRY``. A labelled child costs
about a microsecond to look up, so hot paths keep the children they use.
"""

from __future__ import annotations

from collections.abc import Sequence

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

NAMESPACE = "coredns"
REGISTRY = CollectorRegistry(auto_describe=True)

TIME_BUCKETS: tuple[float, ...] = tuple(0.00025 * 2**i for i in range(16))
"""CoreDNS's ``plugin.TimeBuckets``: 0.25 ms doubling to about 8 s."""
SIZE_BUCKETS: tuple[float, ...] = (0, 100, 200, 300, 400, 511, 1023, 2047, 4095, 8291, 16e3, 32e3, 48e3, 64e3)

_made: dict[str, Counter | Gauge | Histogram] = {}


def counter(subsystem: str, name: str, documentation: str, labels: Sequence[str] = ()) -> Counter:
    """``coredns_<subsystem>_<name>`` (``name`` ends in ``_total`` as CoreDNS's do)."""
    full = f"{NAMESPACE}_{subsystem}_{name}" if subsystem else f"{NAMESPACE}_{name}"
    if full not in _made:
        base = full[: -len("_total")] if full.endswith("_total") else full
        _made[full] = Counter(base, documentation, list(labels), registry=REGISTRY)
    made = _made[full]
    assert isinstance(made, Counter)
    return made


def gauge(subsystem: str, name: str, documentation: str, labels: Sequence[str] = ()) -> Gauge:
    full = f"{NAMESPACE}_{subsystem}_{name}" if subsystem else f"{NAMESPACE}_{name}"
    if full not in _made:
        _made[full] = Gauge(full, documentation, list(labels), registry=REGISTRY)
    made = _made[full]
    assert isinstance(made, Gauge)
    return made


def histogram(
    subsystem: str,
    name: str,
    documentation: str,
    labels: Sequence[str] = (),
    buckets: Sequence[float] = TIME_BUCKETS,
) -> Histogram:
    full = f"{NAMESPACE}_{subsystem}_{name}" if subsystem else f"{NAMESPACE}_{name}"
    if full not in _made:
        _made[full] = Histogram(full, documentation, list(labels), registry=REGISTRY, buckets=list(buckets))
    made = _made[full]
    assert isinstance(made, Histogram)
    return made
