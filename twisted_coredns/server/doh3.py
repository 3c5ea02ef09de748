"""DNS over HTTP/3 (``https3://``) on aioquic's ``H3Connection``, over the QUIC machinery of quic.py.

The same rules as CoreDNS's DoH3 server: only ``/dns-query`` (else 404); ``GET ?dns=`` (base64url,
no padding) or ``POST`` with the message as body, at most 64 KiB (else 400); the reply as
``application/dns-message`` with ``cache-control: max-age=`` the smallest TTL in it (CoreDNS's
``MinimalTTLWithMaximum``: 5 s for an error or an empty reply, at most an hour); 500 when the chain
wrote nothing. Each status is counted in ``coredns_dns_https3_responses_total{server,status}``.
``https3 { max_streams; max_connections }`` bound the request streams of one connection and the
connections of one socket.
"""

from __future__ import annotations

import base64
import binascii
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, urlsplit

from aioquic.h3.connection import H3_ALPN, H3Connection
from aioquic.h3.events import DataReceived, HeadersReceived
from aioquic.quic import events

from ..dns.classify import NAME_ERROR, NO_DATA, NO_ERROR, typify_wire
from ..dns.constants import OPT
from ..dns.header import HEADER
from ..dns.wire import WireError, skip_name, skip_question
from ..dns.wire import records as walk_records
from ..metrics.queries import https3_responses
from .answer import NotAQuery, answer
from .quic import QuicListener, QuicPeer

if TYPE_CHECKING:
    from .transports import ServeContext

PATH = "/dns-query"
MIME = "application/dns-message"
MAX_QUERY = 65536
MINIMAL_TTL = 5
MAXIMUM_TTL = 3600
H3_EXCESSIVE_LOAD = 0x107
"""RFC 9114's H3_EXCESSIVE_LOAD: the code CoreDNS closes a connection over ``max_connections`` with."""


def max_age(wire: bytes, qtype: int) -> int:
    """CoreDNS's ``MinimalTTLWithMaximum(msg, Typify(msg), MaximumDefaultTTL)`` in seconds."""
    if typify_wire(wire, qtype) not in (NO_ERROR, NAME_ERROR, NO_DATA):
        return MINIMAL_TTL
    ttl = MAXIMUM_TTL
    seen = False
    for _section, rtype, record_ttl in _ttls(wire):
        if rtype == OPT:
            continue
        seen = True
        ttl = min(ttl, record_ttl)
    return ttl if seen else MINIMAL_TTL


def _ttls(wire: bytes) -> list[tuple[int, int, int]]:
    """(section, type, TTL) of every record of a reply."""
    _id, _flags, qd, an, ns, ar = HEADER.unpack_from(wire)
    try:
        return [
            (section, rtype, int.from_bytes(wire[ttl_at : ttl_at + 4], "big"))
            for section, _start, rtype, _rclass, ttl_at, _rdata, _end in walk_records(
                wire, skip_question(wire, qd), an, ns, ar
            )
        ]
    except WireError:
        return []


class _Stream:
    __slots__ = ("body", "headers")

    def __init__(self, headers: dict[bytes, bytes]) -> None:
        self.headers = headers
        self.body = bytearray()


class DoH3Session:
    """The HTTP/3 requests of one connection."""

    def __init__(self, listener: DoH3Listener, peer: QuicPeer) -> None:
        self.listener = listener
        self.peer = peer
        self.h3 = H3Connection(peer.conn)
        self.streams: dict[int, _Stream] = {}
        self.open = True

    def event(self, event: events.QuicEvent) -> None:
        if isinstance(event, events.ConnectionTerminated):
            self.open = False
            return
        for h3_event in self.h3.handle_event(event):
            if isinstance(h3_event, HeadersReceived):
                stream = _Stream(dict(h3_event.headers))
                self.streams[h3_event.stream_id] = stream
                if h3_event.stream_ended:
                    self._request(h3_event.stream_id)
            elif isinstance(h3_event, DataReceived):
                pending = self.streams.get(h3_event.stream_id)
                if pending is None:
                    continue
                pending.body += h3_event.data
                if len(pending.body) > MAX_QUERY:
                    # CoreDNS's MaxBytesReader: a body over 64 KiB is a bad request, read no further.
                    del self.streams[h3_event.stream_id]
                    self._respond(h3_event.stream_id, 400, b"invalid request\n")
                    continue
                if h3_event.stream_ended:
                    self._request(h3_event.stream_id)

    def closed(self) -> None:
        self.open = False
        self.streams.clear()

    def _request(self, stream_id: int) -> None:
        stream = self.streams.pop(stream_id)
        method = stream.headers.get(b":method", b"")
        url = urlsplit(stream.headers.get(b":path", b"/").decode("latin-1"))
        if url.path != PATH:
            self._respond(stream_id, 404, b"\n")
            return
        wire = self._query(method, url.query, bytes(stream.body))
        if wire is None:
            self._respond(stream_id, 400, b"invalid request\n")
            return
        try:
            result = answer(self.listener.router, wire, self.peer.remote, self.listener.local, "udp")
        except NotAQuery:
            self._respond(stream_id, 400, b"invalid request\n")
            return
        qtype = _qtype(wire)
        if isinstance(result, bytes):
            self._reply(result, stream_id, qtype)
        else:
            result.addCallback(self._reply, stream_id, qtype)

    @staticmethod
    def _query(method: bytes, query: str, body: bytes) -> bytes | None:
        if method == b"POST":
            return body
        if method != b"GET":
            return None
        values = parse_qs(query, keep_blank_values=True).get("dns")
        if values is None or len(values) != 1 or len(values[0]) > (MAX_QUERY * 8 + 5) // 6:
            return None
        text = values[0]
        if "=" in text:
            return None  # base64url without padding, as RFC 8484 and Go's RawURLEncoding have it
        try:
            return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
        except (binascii.Error, ValueError):
            return None

    def _reply(self, wire: bytes, stream_id: int, qtype: int) -> None:
        if not self.open:
            return
        if not wire:
            self._respond(stream_id, 500, b"No response\n")
            return
        headers = [
            (b"content-type", MIME),
            (b"cache-control", f"max-age={max_age(wire, qtype)}".encode()),
        ]
        self._respond(stream_id, 200, wire, headers)

    def _respond(
        self, stream_id: int, status: int, body: bytes, headers: list[tuple[bytes, Any]] | None = None
    ) -> None:
        if not self.open:
            return
        head = [(b":status", str(status).encode())]
        if headers is None:
            head.append((b"content-type", b"text/plain; charset=utf-8"))
        else:
            head += [(k, v.encode() if isinstance(v, str) else v) for k, v in headers]
        head.append((b"content-length", str(len(body)).encode()))
        try:
            self.h3.send_headers(stream_id, head)
            self.h3.send_data(stream_id, body, end_stream=True)
        except Exception:
            return
        https3_responses.labels(self.listener.server, str(status)).inc()
        self.peer.transmit_soon()


def _qtype(wire: bytes) -> int:
    try:
        end = skip_name(wire, 12)
        return int.from_bytes(wire[end : end + 2], "big")
    except (ValueError, IndexError):
        return 0


class DoH3Listener(QuicListener):
    alpn = list(H3_ALPN)

    def __init__(self, ctx: ServeContext) -> None:
        from ..plugins.https3 import HTTPS3Limits

        limits = ctx.settings.get("https3") or HTTPS3Limits()
        self.max_streams = limits.max_streams
        self.max_connections = limits.max_connections
        self.excess_load = H3_EXCESSIVE_LOAD
        super().__init__(ctx)

    def make_session(self, peer: QuicPeer) -> DoH3Session:
        return DoH3Session(self, peer)


def serve_doh3(ctx: ServeContext) -> DoH3Listener:
    """The ``https3`` transport's UDP protocol (server/transports.py)."""
    return DoH3Listener(ctx)
