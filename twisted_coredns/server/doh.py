"""DNS over HTTPS (``https://``, RFC 8484): HTTP/2 (``doh2``) and HTTP/1.1 (twisted.web).

What a request means is decided here once for both HTTP versions, as CoreDNS's
``ServerHTTPS.ServeHTTP`` and ``plugin/pkg/doh`` decide it:

- a path other than ``/dns-query`` (after percent-decoding, as Go's ``URL.Path``) is 404;
- GET takes the one ``dns`` parameter (base64url without padding, Go's ``RawURLEncoding``, so a
  ``=``, a ``+`` or any other character outside the alphabet is refused; other parameters are
  ignored), POST takes the body (at most 64 KiB, whatever its content type: CoreDNS does not look
  at it), any other method is 400, and so is a message that miekg/dns's accept rules refuse (a
  response, an UPDATE, a second question...): CoreDNS answers those with 400, not with a
  FORMERR or NOTIMP reply;
- the query goes through the group's router like any other (``request.proto`` is ``tcp``, as
  CoreDNS's ``request.Proto`` says for DoH); the reply comes back with ``cache-control:
  max-age=`` CoreDNS's ``MinimalTTLWithMaximum`` of it, and a query the chain does not answer
  (``Response.no_reply``) gets 500 ``No response``, as RFC 8484 4.2.1 and CoreDNS have it;
- errors are Go's ``http.Error``: the text and a newline as ``text/plain``. Every response is
  counted in ``coredns_dns_https_responses_total{server, status}``.

Connections are capped per listener (``https { max_connections }``, 200 by default, 0 for
none): at the cap the listener stops accepting until one closes, as Go's
``netutil.LimitListener`` makes CoreDNS wait. The ``timeouts`` of the block apply: a client has
``read`` (3 s) from its connect to finish the TLS handshake and send its first request whole; a
connection that owes and is owed nothing is closed after ``idle`` (10 s); replies a client does
not read (its socket full, or its HTTP/2 flow-control window shut) for ``write`` (5 s) get the
connection aborted.
"""

from __future__ import annotations

import base64
import re
from io import BytesIO
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote_to_bytes

from twisted.internet.protocol import Factory, Protocol
from twisted.protocols.policies import ProtocolWrapper, WrappingFactory
from twisted.web import http, server

from ..dns.classify import NAME_ERROR, NO_DATA, NO_ERROR, typify_wire
from ..dns.constants import OPT
from ..dns.header import HEADER, RR_FIXED
from ..dns.wire import skip_name, skip_question
from ..metrics.queries import https_responses
from ..request import MalformedQuery, Request
from ..response import Response, finish
from .dot import secure
from .limits import StreamLimits
from .router import ZoneRouter
from .transports import ServeContext

if TYPE_CHECKING:
    from collections.abc import Callable

PATH = b"/dns-query"
MIME = b"application/dns-message"
MAX_QUERY = 65536
"""CoreDNS's maxDNSQuerySize: the largest POST body read."""
MAX_BASE64 = (MAX_QUERY * 8 + 5) // 6
"""CoreDNS's maxBase64Len: the longest ``dns`` parameter decoded."""
MAX_CONNECTIONS = "https.max_connections"
"""``BlockConfig.settings`` key of ``https { max_connections N }``."""
DEFAULT_MAX_CONNECTIONS = 200
DOH_ALPN = [b"h2", b"http/1.1"]
MINIMAL_TTL = 5
MAXIMUM_TTL = 3600
INVALID = b"invalid request"

_BASE64URL = re.compile(rb"[A-Za-z0-9_-]*")
_BAD_ESCAPE = re.compile(rb"%(?![0-9A-Fa-f]{2})")


class Refused(Exception):
    """A request answered with an HTTP error instead of a DNS reply."""

    def __init__(self, status: int, text: bytes) -> None:
        super().__init__(status)
        self.status = status
        self.text = text


# -- what a request carries ---------------------------------------------------------------------


def dns_query(method: bytes, target: bytes, body: bytes) -> bytes:
    """The DNS message of a DoH request, as CoreDNS reads it; ``Refused`` with CoreDNS's status
    otherwise. ``target`` is the request target (path and query string)."""
    if target[:1] != b"/":
        target = _origin_form(target)
    path, _, query = target.partition(b"?")
    if path != PATH and (b"%" not in path or unquote_to_bytes(path) != PATH):
        raise Refused(404, b"")
    if method == b"GET":
        wire = _from_parameter(query)
    elif method == b"POST":
        wire = body
    else:
        raise Refused(400, INVALID)  # "method not allowed"
    if len(wire) < 12 or wire[2] & 0x80:
        # dnsutil.UnpackRequest: too short for a header, or a response (MsgIgnore).
        raise Refused(400, INVALID)
    return wire


def _origin_form(target: bytes) -> bytes:
    """The path and query of an absolute-form target (``GET http://host/dns-query?...``)."""
    scheme, sep, rest = target.partition(b"://")
    if not sep or b"/" in scheme:
        return target
    slash = rest.find(b"/")
    return rest[slash:] if slash >= 0 else b"/"


def _from_parameter(query: bytes) -> bytes:
    """The message in the ``dns`` parameter, read as Go's ``url.ParseQuery`` and
    ``base64.RawURLEncoding`` read it."""
    values = []
    for pair in query.split(b"&"):
        if not pair or b";" in pair:
            continue  # Go skips an empty pair, and refuses one with a semicolon
        key, _, value = pair.partition(b"=")
        if _unescape(key) != b"dns":
            continue
        text = _unescape(value)
        if text is not None:
            values.append(text)
    if len(values) != 1 or len(values[0]) > MAX_BASE64:
        raise Refused(400, INVALID)  # none, several, or too long
    text = values[0]
    if b"\r" in text or b"\n" in text:
        text = text.replace(b"\r", b"").replace(b"\n", b"")  # Go's decoder skips line breaks
    if not _BASE64URL.fullmatch(text) or len(text) % 4 == 1:
        raise Refused(400, INVALID)
    return base64.urlsafe_b64decode(text + b"=" * (-len(text) % 4))


def _unescape(text: bytes) -> bytes | None:
    """Go's ``url.QueryUnescape``: ``+`` is a space, ``%XX`` a byte; None for a bad escape."""
    if b"%" not in text and b"+" not in text:
        return text
    if _BAD_ESCAPE.search(text):
        return None
    return unquote_to_bytes(text.replace(b"+", b" "))


# -- what a reply carries -----------------------------------------------------------------------


def max_age(wire: bytes, qtype: int) -> int:
    """CoreDNS's ``MinimalTTLWithMaximum(msg, Typify(msg), MaximumDefaultTTL)`` in seconds, read
    from the reply's wire: the lowest TTL of its records (OPT aside), at most an hour; 5 s for an
    error, a delegation, or a reply with no records."""
    if typify_wire(wire, qtype) not in (NO_ERROR, NAME_ERROR, NO_DATA):
        return MINIMAL_TTL
    _id, _flags, qd, an, ns, ar = HEADER.unpack_from(wire)
    ttl, seen = MAXIMUM_TTL, False
    try:
        off = skip_question(wire, qd)
        for _ in range(an + ns + ar):
            off = skip_name(wire, off)
            rtype, _class, record_ttl, rdlen = RR_FIXED.unpack_from(wire, off)
            off += 10 + rdlen
            if rtype != OPT:
                seen = True
                ttl = min(ttl, record_ttl)
    except Exception:  # typify read it whole; a reply that ends early has the short TTL
        return MINIMAL_TTL
    return ttl if seen else MINIMAL_TTL


def answer_headers(wire: bytes, qtype: int) -> list[tuple[bytes, bytes]]:
    """The headers of a 200 reply carrying ``wire``."""
    return [
        (b"content-type", MIME),
        (b"cache-control", b"max-age=%d" % max_age(wire, qtype)),
        (b"content-length", b"%d" % len(wire)),
    ]


def error_headers(body: bytes) -> list[tuple[bytes, bytes]]:
    """The headers of Go's ``http.Error``."""
    return [
        (b"content-type", b"text/plain; charset=utf-8"),
        (b"x-content-type-options", b"nosniff"),
        (b"content-length", b"%d" % len(body)),
    ]


class ResponseCounter:
    """``coredns_dns_https_responses_total`` of one listener, a child per status kept at hand."""

    def __init__(self, address: str) -> None:
        self.address = address
        self._children: dict[int, Any] = {}

    def count(self, status: int) -> None:
        child = self._children.get(status)
        if child is None:
            child = self._children[status] = https_responses.labels(self.address, str(status))
        child.inc()


def peer_of(transport: Any) -> tuple[tuple[str, int], tuple[str, int]]:
    """The client's and our own (host, port) of a connection (the PROXY header's, if any)."""
    peer, host = transport.getPeer(), transport.getHost()
    remote_host = getattr(peer, "host", "")
    if remote_host.startswith("::ffff:") and "." in remote_host:
        remote_host = remote_host[7:]
    remote = (remote_host, int(getattr(peer, "port", 0)))
    return remote, (getattr(host, "host", ""), int(getattr(host, "port", 0)))


# -- HTTP/1.1 ---------------------------------------------------------------------------------


class DoHRequest(server.Request):
    """One HTTP/1.1 request: read at most 64 KiB, answer from the router."""

    site: DoHSite
    _size = 0
    _over = False

    def gotLength(self, length: int | None) -> None:
        # Never a temporary file: what is kept is at most MAX_QUERY bytes.
        self.content = BytesIO()

    def handleContentChunk(self, data: bytes) -> None:
        if self._over:
            return
        self._size += len(data)
        if self._size > MAX_QUERY:
            # CoreDNS's MaxBytesReader: 400, and the rest is not read (the connection closes).
            self._over = True
            self.content = BytesIO()
            channel: Any = self.channel
            channel.site.responses.count(400)
            body = INVALID + b"\n"
            head = b"".join(b"%s: %s\r\n" % header for header in error_headers(body))
            status = b"HTTP/1.1 400 Bad Request\r\n"
            channel.transport.write(status + head + b"connection: close\r\n\r\n" + body)
            channel.loseConnection()
            # TLS would wait for the client's close_notify, and a client still sending its body
            # never sends one: close the socket beneath, the reply being written to it already.
            _socket_of(channel.transport).loseConnection()
            return
        content: Any = self.content
        content.write(data)

    def process(self) -> None:
        if self._over:
            return
        channel: Any = self.channel
        site = self.site = channel.site  # twisted.web's own process() sets it
        served = getattr(channel, "served", None)
        if served is not None:
            served()
        content: Any = self.content
        try:
            wire = dns_query(self.method, self.uri, content.getvalue() if self.method == b"POST" else b"")
            remote, local = peer_of(channel.transport)
            request = Request(wire, remote, "tcp", local, site.router.address)
        except Refused as refused:
            self._error(refused.status, refused.text)
            return
        except MalformedQuery:
            self._error(400, INVALID)
            return
        result = site.router.dispatch(request)
        if type(result) is Response:
            self._answer(finish(request, result), request.qtype)
        else:
            self.notifyFinish().addErrback(lambda _f: None)
            result.addCallback(lambda r: self._answer(finish(request, r), request.qtype))

    def _answer(self, wire: bytes, qtype: int) -> None:
        if self._disconnected or self.finished:
            return
        if not wire:
            self._error(500, b"No response")
            return
        self._send(200, answer_headers(wire, qtype), wire)

    def _error(self, status: int, text: bytes) -> None:
        body = text + b"\n"
        self._send(status, error_headers(body), body)

    def _send(self, status: int, headers: list[tuple[bytes, bytes]], body: bytes) -> None:
        self.setResponseCode(status)
        for name, value in headers:
            self.setHeader(name, value)
        self.site.responses.count(status)
        self.write(body)
        self.finish()


class DoHSite(server.Site):
    """The HTTP side of one listener: every request is a ``DoHRequest`` on its router."""

    noisy = False
    requestFactory = DoHRequest

    def __init__(self, router: ZoneRouter, limits: StreamLimits, reactor: Any) -> None:
        super().__init__(_NoResource(), timeout=limits.idle_timeout, reactor=reactor)
        self.router = router
        self.limits = limits
        self.responses = ResponseCounter(router.address)

    def log(self, request: Any) -> None:
        pass  # no access log: the log plugin logs queries


class _NoResource:
    """Site wants a root resource; every request is answered by ``DoHRequest.process``."""

    isLeaf = True


class _HTTP1Channel(http.HTTPChannel):
    """HTTP/1.1 with the write timeout: a client whose socket stays full (it does not read its
    replies) for ``timeouts write`` is cut off. twisted.web stops reading from it meanwhile."""

    site: DoHSite
    served: Callable[[], None] | None = None
    _write_timer: Any = None

    def pauseProducing(self) -> None:
        super().pauseProducing()
        if self._write_timer is None:
            site: DoHSite = self.site
            self._write_timer = site.reactor.callLater(site.limits.write_timeout, self._write_expired)

    def resumeProducing(self) -> None:
        self._cancel_write_timer()
        super().resumeProducing()

    def connectionLost(self, reason: Any = None) -> None:
        self._cancel_write_timer()
        super().connectionLost(reason)

    def _cancel_write_timer(self) -> None:
        timer, self._write_timer = self._write_timer, None
        if timer is not None and timer.active():
            timer.cancel()

    def _write_expired(self) -> None:
        self._write_timer = None
        transport: Any = self.transport
        transport.abortConnection()


# -- one connection: HTTP/2 or HTTP/1.1, as ALPN chose --------------------------------------------


class _DoHChannel(Protocol):
    """Hands the connection to HTTP/2 (``doh2.DoH2Connection``) when TLS negotiated ``h2``, else
    to twisted.web's HTTP/1.1, on its first bytes (the handshake is over by then)."""

    def __init__(self, site: DoHSite) -> None:
        self.site = site
        self.inner: Any = None

    def dataReceived(self, data: bytes) -> None:
        inner = self.inner
        if inner is None:
            inner = self.inner = self._choose()
            inner.makeConnection(self.transport)
        inner.dataReceived(data)

    def _choose(self) -> Any:
        site = self.site
        served = _guard_of(self.transport)
        if getattr(self.transport, "negotiatedProtocol", None) == b"h2":
            from .doh2 import DoH2Connection

            return DoH2Connection(site, served)
        channel: Any = _HTTP1Channel()
        channel.factory = site
        channel.site = site
        channel.requestFactory = site.requestFactory
        channel.timeOut = site.timeOut
        channel.callLater = site.reactor.callLater
        channel.served = served
        return channel

    def connectionLost(self, reason: Any = None) -> None:
        if self.inner is not None:
            self.inner.connectionLost(reason)


class _DoHFactory(Factory):
    noisy = False

    def __init__(self, site: DoHSite) -> None:
        self.site = site

    def buildProtocol(self, addr: Any) -> _DoHChannel:
        channel = _DoHChannel(self.site)
        channel.factory = self
        return channel


# -- the connection guard: a cap on connections, a deadline for the first request -------------


class _Guard(ProtocolWrapper):
    """The outermost layer of a DoH connection (below PROXY and TLS)."""

    factory: _GuardFactory

    def connectionMade(self) -> None:
        self._deadline: Any = self.factory.reactor.callLater(self.factory.read_timeout, self._late)
        super().connectionMade()

    def _late(self) -> None:
        self._deadline = None
        transport: Any = self.transport
        transport.abortConnection()

    def served(self) -> None:
        """A request arrived whole: the deadline is met."""
        if self._deadline is not None and self._deadline.active():
            self._deadline.cancel()
        self._deadline = None

    def connectionLost(self, reason: Any = None) -> None:
        self.served()
        super().connectionLost(reason)


class _GuardFactory(WrappingFactory):
    protocol = _Guard
    noisy = False

    def __init__(self, wrapped: Any, reactor: Any, read_timeout: float, max_connections: int) -> None:
        super().__init__(wrapped)
        self.reactor = reactor
        self.read_timeout = read_timeout
        self.max_connections = max_connections
        self._paused: Any = None  # the listening port while accepting is paused at the cap

    def registerProtocol(self, p: Any) -> None:
        super().registerProtocol(p)
        cap = self.max_connections
        if cap > 0 and len(self.protocols) >= cap:
            port = getattr(p.transport, "server", None)  # tcp.Server's listening Port
            if port is not None and self._paused is None:
                port.stopReading()
                self._paused = port

    def unregisterProtocol(self, p: Any) -> None:
        super().unregisterProtocol(p)
        if self._paused is not None and len(self.protocols) < self.max_connections:
            port, self._paused = self._paused, None
            if port.connected:
                port.startReading()


def _socket_of(transport: Any) -> Any:
    """The TCP transport beneath the TLS and PROXY layers of ``transport``."""
    for _hop in range(6):
        below = getattr(transport, "transport", None)
        if below is None:
            return transport
        transport = below
    return transport


def _guard_of(transport: Any) -> Callable[[], None] | None:
    """The ``served`` of the guard below ``transport`` (TLS and PROXY layers in between)."""
    for _hop in range(6):
        if transport is None:
            return None
        if isinstance(transport, _Guard):
            return transport.served
        transport = getattr(transport, "transport", None)
    return None


def serve_doh(ctx: ServeContext) -> Any:
    """The ``https://`` transport's TCP server (``transports.py``)."""
    limits = StreamLimits.of(dict.fromkeys(ctx.router.table.values()))
    site = DoHSite(ctx.router, limits, ctx.reactor)
    cap = ctx.settings.get(MAX_CONNECTIONS)
    wrapped = secure(ctx, _DoHFactory(site), DOH_ALPN, record_per_write=True)
    return _GuardFactory(
        wrapped, ctx.reactor, limits.read_timeout, DEFAULT_MAX_CONNECTIONS if cap is None else int(cap)
    )


__all__ = ["DoHRequest", "DoHSite", "Refused", "dns_query", "max_age", "serve_doh"]
