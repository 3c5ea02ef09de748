"""One whole DNS message in, its reply's bytes out: the step DoQ, DoH3 and gRPC share.

These transports carry each query as a complete message (a QUIC stream, an HTTP body, a protobuf
field), so they need none of TCP's framing; they build the ``Request`` as the UDP and TCP servers
do, route it, and get the finished wire, now or from a Deferred. ``proto`` is what CoreDNS's
``request.Proto()`` says for the transport: it reads the type of the writer's remote address, a
``*net.UDPAddr`` for DoQ and DoH3 (so a reply larger than the client's EDNS size is truncated there
too, as CoreDNS truncates it) and a ``*net.TCPAddr`` for gRPC.
"""

from __future__ import annotations

from typing import Any

from twisted.internet.defer import Deferred

from ..dns.constants import QR
from ..request import MalformedQuery, Request
from ..response import Response, finish
from .protocols import reject
from .router import ZoneRouter


class NotAQuery(ValueError):
    """Bytes that are no DNS query: too short for a header, or a response."""


def answer(
    router: ZoneRouter, wire: bytes, remote: tuple[str, int], local: tuple[str, int] | None, proto: str
) -> bytes | Deferred[bytes]:
    """The reply to ``wire`` (b"" when the chain chose not to answer). A malformed query gets its
    FORMERR or NOTIMP; bytes that are no query at all raise ``NotAQuery``."""
    if len(wire) < 12 or wire[2] & (QR >> 8):
        raise NotAQuery("not a DNS query")
    try:
        request = Request(wire, remote, proto, local, router.address)
    except MalformedQuery as exc:
        return reject(wire, exc)
    return route(router, request)


def route(router: ZoneRouter, request: Request) -> bytes | Deferred[bytes]:
    """The reply's bytes to a ``request`` already made (b"" when the chain chose not to answer)."""
    result: Any = router.dispatch(request)
    if type(result) is Response:
        return finish(request, result)
    return result.addCallback(lambda response: finish(request, response))
