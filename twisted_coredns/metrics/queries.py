"""The per-query families of CoreDNS's ``plugin/metrics/vars``, counted cheaply.

CoreDNS reports six series per query (requests, DO requests, duration, request size, response
size, responses). With prometheus_client that is six label look-ups and six locked updates, about
a fifth of what whoami costs to answer. Here a query costs one tuple, one dict look-up and a few
integer additions: everything about a query that a label depends on is the key of one slot, and
the slots are turned into CoreDNS's families only when ``/metrics`` is read.

The slots are process-wide, as CoreDNS's vars are: a reload does not reset them.
"""

from __future__ import annotations

import platform
from bisect import bisect_left
from collections.abc import Iterator
from time import monotonic
from typing import TYPE_CHECKING, Any

from prometheus_client.metrics_core import (
    CounterMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.utils import floatToGoString

from ..dns.constants import type_name
from ..response import Response
from . import PROCESS_REGISTRY, REGISTRY, SIZE_BUCKETS, TIME_BUCKETS, counter, gauge

if TYPE_CHECKING:
    from ..request import Request

DROPPED = "dropped"
"""The zone of queries that never reach a plugin chain (CoreDNS's ``vars.Dropped``)."""

MONITORED_TYPES = frozenset(
    {1, 2, 5, 6, 12, 15, 16, 28, 33, 43, 46, 47, 48, 50, 64, 65, 251, 252, 255}
)
"""The query types CoreDNS labels by name (A NS CNAME SOA PTR MX TXT AAAA SRV DS RRSIG NSEC DNSKEY
NSEC3 SVCB HTTPS IXFR AXFR ANY); the rest are ``other``."""

_RCODES = {0: "NOERROR", 1: "FORMERR", 2: "SERVFAIL", 3: "NXDOMAIN", 4: "NOTIMP", 5: "REFUSED",
           6: "YXDOMAIN", 7: "YXRRSET", 8: "NXRRSET", 9: "NOTAUTH", 10: "NOTZONE", 16: "BADSIG",
           17: "BADKEY", 18: "BADTIME", 19: "BADMODE", 20: "BADNAME", 21: "BADALG", 22: "BADTRUNC",
           23: "BADCOOKIE"}
"""miekg's ``RcodeToString`` (CoreDNS's ``rcode.ToString`` prints any other as a number)."""


def rcode_label(rcode: int) -> str:
    return _RCODES.get(rcode) or str(rcode)


def type_label(qtype: int) -> str:
    return type_name(qtype) if qtype in MONITORED_TYPES else "other"


# One slot per (server, zone, view, proto, family, type, DO, rcode, plugin, request size bucket,
# response size bucket): [queries, duration sum, duration bucket counts, request size sum,
# response size sum]. Every part of the key takes few values (a type CoreDNS does not name counts
# as 0, "other"; a size as its bucket), so the slots stay few whatever the clients send, and a
# query costs one dict look-up.
_COUNT, _DURATION_SUM, _DURATION_BUCKETS, _REQUEST_BYTES, _RESPONSE_BYTES = range(5)
_N_TIME = len(TIME_BUCKETS) + 1
_slots: dict[tuple[Any, ...], list[Any]] = {}


def _new_slot(key: tuple[Any, ...]) -> list[Any]:
    slot: list[Any] = [0, 0.0, [0] * _N_TIME, 0, 0]
    _slots[key] = slot
    return slot


_SIZE_BUCKET = bytes(bisect_left(SIZE_BUCKETS, n) for n in range(1 << 16))
"""The size bucket of every message length a DNS message can have: an index, not a search."""


def record(
    request: Request,
    response: Response,
    view: str = "",
    zone: str | None = None,
    _slots: dict[tuple[Any, ...], list[Any]] = _slots,
    _monotonic: Any = monotonic,
    _bisect: Any = bisect_left,
    _bounds: tuple[float, ...] = TIME_BUCKETS,
    _size_bucket: bytes = _SIZE_BUCKET,
    _named: frozenset[int] = MONITORED_TYPES,
) -> None:
    """Count one answered query (the ``prometheus`` handler calls this for every reply).

    A reply no plugin wrote is written by the server, outside CoreDNS's recorder: size 0, no
    plugin. The defaults after ``zone`` make globals locals: this runs for every query."""
    wire = response.wire
    asked = len(request.wire)
    answered = 0 if wire is None else len(wire)
    qtype = request.qtype
    key = (
        request.server, request.zone if zone is None else zone, view, request.proto,
        2 if ":" in request.remote[0] else 1, qtype if qtype in _named else 0,
        request.edns_flags & 0x8000, response.rcode, "" if wire is None else response.plugin,
        _size_bucket[asked & 0xFFFF], _size_bucket[answered] if answered < 0x10000 else len(SIZE_BUCKETS),
    )
    slot = _slots.get(key)
    if slot is None:
        slot = _new_slot(key)
    elapsed = _monotonic() - request.start
    slot[0] += 1
    slot[1] += elapsed
    slot[2][_bisect(_bounds, elapsed)] += 1
    slot[3] += asked
    slot[4] += answered


def record_dropped(request: Request, rcode: int, response: Response) -> None:
    """A query the server answered itself, before any chain (CoreDNS's ``errorAndMetricsFunc``):
    zone ``dropped``, no plugin, and the size of the reply the server wrote."""
    record(request, Response(response.wire, rcode), "", DROPPED)


def _cumulative(counts: list[int]) -> list[int]:
    out, total = [], 0
    for c in counts:
        total += c
        out.append(total)
    return out


class QueryCollector:
    """Turns the slots into CoreDNS's families when ``/metrics`` is read."""

    def collect(self) -> Iterator[Metric]:
        requests: dict[tuple[str, ...], int] = {}
        do_requests: dict[tuple[str, ...], int] = {}
        responses: dict[tuple[str, ...], int] = {}
        durations: dict[tuple[str, ...], list[Any]] = {}
        request_sizes: dict[tuple[str, ...], list[Any]] = {}
        response_sizes: dict[tuple[str, ...], list[Any]] = {}
        n_size = len(SIZE_BUCKETS) + 1
        for key, slot in list(_slots.items()):
            server, zone, view, proto, family, qtype, do, rcode, plugin, request_bucket, response_bucket = key
            n = slot[_COUNT]
            k6 = (server, zone, view, proto, str(family), type_label(qtype))
            requests[k6] = requests.get(k6, 0) + n
            if do:
                k3 = (server, zone, view)
                do_requests[k3] = do_requests.get(k3, 0) + n
            k5 = (server, zone, view, rcode_label(rcode), plugin)
            responses[k5] = responses.get(k5, 0) + n
            d = durations.setdefault((server, zone, view), [[0] * _N_TIME, 0.0])
            for i, c in enumerate(slot[_DURATION_BUCKETS]):
                d[0][i] += c
            d[1] += slot[_DURATION_SUM]
            seen = ((request_sizes, request_bucket, slot[_REQUEST_BYTES]),
                    (response_sizes, response_bucket, slot[_RESPONSE_BYTES]))
            for into, bucket, total_bytes in seen:
                h = into.setdefault((server, zone, view, proto), [[0] * n_size, 0.0])
                h[0][bucket] += n
                h[1] += total_bytes

        family = CounterMetricFamily(
            "coredns_dns_requests", "Counter of DNS requests made per zone, protocol and family.",
            labels=["server", "zone", "view", "proto", "family", "type"],
        )
        for labels, value in requests.items():
            family.add_metric(labels, value)
        yield family
        family = CounterMetricFamily(
            "coredns_dns_do_requests", "Counter of DNS requests with DO bit set per zone.",
            labels=["server", "zone", "view"],
        )
        for labels, value in do_requests.items():
            family.add_metric(labels, value)
        yield family
        yield _histogram(
            "coredns_dns_request_duration_seconds",
            "Histogram of the time (in seconds) each request took per zone.",
            ["server", "zone", "view"], TIME_BUCKETS, durations,
        )
        yield _histogram(
            "coredns_dns_request_size_bytes",
            "Size of the EDNS0 UDP buffer in bytes (64K for TCP) per zone and protocol.",
            ["server", "zone", "view", "proto"], SIZE_BUCKETS, request_sizes,
        )
        yield _histogram(
            "coredns_dns_response_size_bytes", "Size of the returned response in bytes.",
            ["server", "zone", "view", "proto"], SIZE_BUCKETS, response_sizes,
        )
        family = CounterMetricFamily(
            "coredns_dns_responses", "Counter of response status codes.",
            labels=["server", "zone", "view", "rcode", "plugin"],
        )
        for labels, value in responses.items():
            family.add_metric(labels, value)
        yield family


def _histogram(
    name: str, doc: str, labels: list[str], bounds: tuple[float, ...], data: dict[tuple[str, ...], list[Any]]
) -> HistogramMetricFamily:
    family = HistogramMetricFamily(name, doc, labels=labels)
    for values, (counts, total) in data.items():
        cumulative = _cumulative(counts)
        buckets = [(floatToGoString(b), cumulative[i]) for i, b in enumerate(bounds)]
        buckets.append(("+Inf", cumulative[-1]))
        family.add_metric(list(values), buckets, total)
    return family


REGISTRY.register(QueryCollector())

panics = counter("", "panics_total", "A metrics that counts the number of panics.")
https_responses = counter(
    "dns", "https_responses_total", "Counter of DoH responses per server and http status code.",
    ["server", "status"],
)
https3_responses = counter(
    "dns", "https3_responses_total", "Counter of DoH3 responses per server and http status code.",
    ["server", "status"],
)
quic_responses = counter(
    "dns", "quic_responses_total", "Counter of DoQ responses per server and QUIC application code.",
    ["server", "status"],
)
plugin_enabled = gauge(
    "", "plugin_enabled", "A metric that indicates whether a plugin is enabled on per server and zone basis.",
    ["server", "zone", "view", "name"], registry=PROCESS_REGISTRY,
)
build_info = gauge(
    "", "build_info",
    "A metric with a constant '1' value labeled by version, revision, and goversion from which CoreDNS "
    "was built.",
    ["version", "revision", "goversion"], registry=PROCESS_REGISTRY,
)


def set_build_info() -> None:
    from .. import __version__

    # goversion: the runtime, as CoreDNS gives Go's; revision: none is recorded in a pip install.
    runtime = f"{platform.python_implementation()} {platform.python_version()}"
    build_info.labels(__version__, "", runtime).set(1)


__all__ = [
    "DROPPED",
    "MONITORED_TYPES",
    "QueryCollector",
    "build_info",
    "https_responses",
    "panics",
    "plugin_enabled",
    "rcode_label",
    "record",
    "record_dropped",
    "set_build_info",
    "type_label",
]
