"""erratic's handler: A and AAAA answered with documentation addresses, AXFR with a small zone,
anything else SERVFAIL; one query in N dropped, delayed or truncated."""

from __future__ import annotations

from typing import Any

from twisted.internet.task import deferLater
from zope.interface import implementer

from ...dns import AAAA, AXFR, QNAME, SERVFAIL, A, records
from ...interfaces import IReady
from ...plugin import Handler
from ...request import Request
from ...response import Response, reply

ADDRESS_V4 = "192.0.2.53"
"""RFC 5737's documentation address, erratic's answer to A."""
ADDRESS_V6 = "2001:db8::53"
"""RFC 3849's documentation address, erratic's answer to AAAA."""
_LARGE_COPIES = 30
"""``large``: thirty A records, to test replies over 512 octets (and compression)."""

_A = records.a(QNAME, 0, ADDRESS_V4)
_AAAA = records.aaaa(QNAME, 0, ADDRESS_V6)


def _zone_records(name: str, closing_soa: bool) -> list[bytes]:
    """The small zone an AXFR gets, at ``name``: SOA, two NS, two AAAA, and the closing SOA
    unless the transfer is truncated (then the client sees an incomplete transfer)."""
    below = name if name != "." else ""
    soa = records.soa(name, 0, "sns.dns.icann.org.", "noc.dns.icann.org.", 2018050825, 7200, 3600,
                      1209600, 3600)
    out = [
        soa,
        records.ns(name, 0, f"b.{below}" or "b."),
        records.ns(name, 0, f"a.{below}" or "a."),
        records.aaaa(f"a.{below}", 0, "2001:bd8::53"),
        records.aaaa(f"b.{below}", 0, "2001:500::54"),
    ]
    if closing_soa:
        out.append(soa)
    return out


@implementer(IReady)
class Erratic(Handler):
    name = "erratic"

    def __init__(self, *, drop: int = 2, delay: int = 0, truncate: int = 0, duration: float = 0.1,
                 large: bool = False, reactor: Any = None) -> None:
        self.drop = drop
        self.delay = delay
        self.truncate = truncate
        self.duration = duration
        self.large = large
        self.reactor = reactor
        self.queries = 0

    def serve(self, request: Request) -> Any:
        number = self.queries
        self.queries += 1
        drop = self.drop > 0 and number % self.drop == 0
        delay = self.delay > 0 and number % self.delay == 0
        # CoreDNS tests ``queryNr & truncate == 0`` (a bitwise AND where the other two take a
        # remainder): which queries are truncated follows that, so clients see the same pattern.
        truncate = self.truncate > 0 and number & self.truncate == 0

        qtype = request.qtype
        if qtype == A:
            response = reply(request, answer=[_A] * (_LARGE_COPIES if self.large else 1), aa=True,
                             plugin=self.name)
        elif qtype == AAAA:
            response = reply(request, answer=[_AAAA], aa=True, plugin=self.name)
        elif qtype == AXFR:
            response = reply(request, answer=_zone_records(request.qname, not truncate), aa=True,
                             plugin=self.name)
            truncate = False  # a truncated transfer lacks its closing SOA; TC is not set
        else:
            response = Response.not_written(SERVFAIL, None, self.name)
            truncate = False
        if drop:
            return Response.no_reply(self.name)
        if truncate:
            response = _with_tc(response)
        if delay:
            return self._later(response)
        return response

    def _later(self, response: Response) -> Any:
        if self.reactor is None:
            from twisted.internet import reactor

            self.reactor = reactor
        return deferLater(self.reactor, self.duration, lambda: response)

    def ready(self) -> bool:
        """CoreDNS's erratic is ready while it has seen 3 or 4 queries, and not ready before or
        after: a readiness that flips, for testing the ready plugin."""
        return 3 <= self.queries < 5

    def autopath(self, request: Request) -> list[str]:
        """The search path for ``autopath @erratic`` (CoreDNS's erratic has the same one)."""
        return ["a.example.org.", "b.example.org.", ""]


def _with_tc(response: Response) -> Response:
    wire = response.wire
    assert wire is not None
    return Response(wire[:2] + bytes([wire[2] | 0x02]) + wire[3:], response.rcode, None, response.plugin)
