"""DNS over UDP and TCP: bytes in, bytes out, never a response to a response.

Both transports take the same steps: drop what is not a query, reject what is malformed with
FORMERR (or NOTIMP), route the rest, and write the finished reply, now or when the chain's Deferred
fires. The UDP path is written out in ``datagramReceived`` rather than shared, because it runs for
every query and each extra call shows in the benchmark.
"""

from __future__ import annotations

import errno
from typing import Any

from twisted.internet.protocol import DatagramProtocol, Factory, Protocol
from twisted.protocols.policies import TimeoutMixin

from ..clog import PluginLogger
from ..dns.constants import QR
from ..dns.header import HEADER, U16, pack_header, reply_flags
from ..request import MalformedQuery, Request
from ..response import Response, finish
from .router import ZoneRouter

_log = PluginLogger()
# UDP is lossy: a full send buffer, or an ICMP error from an earlier datagram, loses this reply
# and nothing more (Twisted's Port.write ignores ECONNREFUSED the same way).
_UDP_DROPPED = frozenset({errno.EAGAIN, errno.EWOULDBLOCK, errno.ENOBUFS, errno.ECONNREFUSED, errno.EPERM})
_LENGTH = U16
_QR_BIT = QR >> 8
"""QR in the header's third byte: checked inline, before anything is parsed, for every packet."""


def reject(data: bytes, error: MalformedQuery) -> bytes:
    """FORMERR or NOTIMP for a packet with a header that is not an acceptable query: the header
    echoed as any reply echoes it, and the question when it parsed, like miekg/dns."""
    qid, flags = HEADER.unpack_from(data)[:2]
    question = error.question or b""
    return pack_header(qid, reply_flags(flags, error.rcode), 1 if question else 0) + question


def _unmapped(host: str) -> str:
    # A dual-stack socket reports IPv4 clients as ::ffff:a.b.c.d; CoreDNS (Go) shows a.b.c.d.
    if host.startswith("::ffff:") and "." in host:
        return host[7:]
    return host


class DNSDatagramProtocol(DatagramProtocol):
    """One UDP listening socket."""

    noisy = False
    # The reactor's UDP port, typed loosely: Twisted's interface types confuse mypy here.
    _transport: Any = None

    def __init__(self, router: ZoneRouter) -> None:
        self.router = router
        self.local: tuple[str, int] | None = None

    def startProtocol(self) -> None:
        self._transport = self.transport
        # Replies go straight to the socket: the address came from recvfrom, so the checks
        # Port.write makes on it (isIPAddress, about a tenth of a cache hit) are not needed.
        self._sendto = self._transport.socket.sendto
        host = self._transport.getHost()
        self.local = (host.host, host.port)

    def _send_failed(self, exc: OSError, data: bytes, addr: Any) -> None:
        if exc.errno == errno.EINTR:
            self._send(data, addr)
        elif exc.errno not in _UDP_DROPPED:
            _log.error(f"write udp {addr[0]}:{addr[1]}: {exc.strerror or exc}")

    def _send(self, data: bytes, addr: Any) -> None:
        try:
            self._sendto(data, addr)
        except OSError as exc:
            self._send_failed(exc, data, addr)

    def datagramReceived(self, data: bytes, addr: Any) -> None:
        if len(data) < 12 or data[2] & _QR_BIT:
            return  # too short for a header, or a response: silence (no reflection loops)
        remote = addr if "ffff" not in addr[0] else (_unmapped(addr[0]), addr[1])
        try:
            request = Request(data, remote, "udp", self.local, self.router.address)
        except MalformedQuery as exc:
            self._send(reject(data, exc), addr)
            return
        result = self.router.dispatch(request)
        if type(result) is Response:
            wire = finish(request, result)
            try:
                self._sendto(wire, addr)
            except OSError as exc:
                self._send_failed(exc, wire, addr)
        else:
            result.addCallback(self._reply, request, addr)  # type: ignore[union-attr]

    def _reply(self, response: Response, request: Request, addr: Any) -> None:
        if self.transport is not None and self._transport.socket is not None:
            self._send(finish(request, response), addr)


class DNSStreamProtocol(Protocol, TimeoutMixin):
    """One TCP connection: length-prefixed queries, answered as each is ready, in any order."""

    idle_timeout = 10.0  # CoreDNS's IdleTimeout

    def __init__(self, router: ZoneRouter) -> None:
        self.router = router
        self._buffer = b""
        self.remote: tuple[str, int] = ("", 0)
        self.local: tuple[str, int] | None = None

    def connectionMade(self) -> None:
        transport: Any = self.transport
        peer = transport.getPeer()
        host = transport.getHost()
        self.remote = (_unmapped(peer.host), peer.port)
        self.local = (host.host, host.port)
        self.setTimeout(self.idle_timeout)

    def dataReceived(self, data: bytes) -> None:
        self.resetTimeout()
        buf = self._buffer + data if self._buffer else data
        # Walk the buffer with an offset and keep the rest once: slicing off each message would
        # copy what follows it every time, quadratic in a burst of pipelined queries.
        off, end = 0, len(buf)
        while end - off >= 2:
            (size,) = _LENGTH.unpack_from(buf, off)
            if end - off - 2 < size:
                break
            self._message(buf[off + 2 : off + 2 + size])
            off += 2 + size
        self._buffer = buf[off:]

    def _message(self, data: bytes) -> None:
        if len(data) < 12 or data[2] & _QR_BIT:
            return
        try:
            request = Request(data, self.remote, "tcp", self.local, self.router.address)
        except MalformedQuery as exc:
            self._write(reject(data, exc))
            return
        result = self.router.dispatch(request)
        if type(result) is Response:
            self._write(finish(request, result))
        else:
            result.addCallback(lambda r: self._write(finish(request, r)))  # type: ignore[union-attr]

    def _write(self, wire: bytes) -> None:
        transport: Any = self.transport
        if transport is not None and self.connected:
            transport.write(_LENGTH.pack(len(wire)) + wire)

    def timeoutConnection(self) -> None:
        transport: Any = self.transport
        transport.loseConnection()

    def connectionLost(self, reason: Any = None) -> None:
        self.setTimeout(None)


class DNSStreamFactory(Factory):
    noisy = False

    def __init__(self, router: ZoneRouter) -> None:
        self.router = router

    def buildProtocol(self, addr: Any) -> DNSStreamProtocol:
        proto = DNSStreamProtocol(self.router)
        proto.factory = self
        return proto
