"""DNS over UDP and TCP: bytes in, bytes out, never a response to a response.

Both transports take the same steps: drop what is not a query, reject what is malformed with
FORMERR (or NOTIMP), route the rest, and write the finished reply, now or when the chain's Deferred
fires. The UDP path is written out in ``datagramReceived`` rather than shared, because it runs for
every query and each extra call shows in the benchmark.

A TCP connection is where a client can hold on to the server, so the stream side is bounded
(``limits.py``, docs/limits.md): connections per listening socket and per process, time to send
a query, time idle, time to read a reply, queries per connection and queries in flight.
"""

from __future__ import annotations

import errno
from typing import TYPE_CHECKING, Any

from twisted.internet.interfaces import IPushProducer
from twisted.internet.protocol import DatagramProtocol, Factory, Protocol
from zope.interface import implementer

from ..clog import PluginLogger
from ..dns.constants import QR
from ..dns.header import HEADER, U16, pack_header, reply_flags
from ..request import MalformedQuery, Request
from ..response import Response, finish
from .limits import PROCESS_CONNECTIONS, StreamLimits
from .router import ZoneRouter

if TYPE_CHECKING:
    from .transports import ServeContext

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
        if not data:
            return  # Response.no_reply
        try:
            self._sendto(data, addr)
        except OSError as exc:
            self._send_failed(exc, data, addr)

    def datagramReceived(self, data: bytes, addr: Any, remote: Any = None) -> None:
        """One query from ``addr``, answered to ``addr``; ``remote`` is the client when it is not
        ``addr`` (a PROXY header named it)."""
        if len(data) < 12 or data[2] & _QR_BIT:
            return  # too short for a header, or a response: silence (no reflection loops)
        if remote is None:
            remote = addr if "ffff" not in addr[0] else (_unmapped(addr[0]), addr[1])
        try:
            request = Request(data, remote, "udp", self.local, self.router.address)
        except MalformedQuery as exc:
            self._send(reject(data, exc), addr)
            return
        result = self.router.dispatch(request)
        if type(result) is Response:
            wire = finish(request, result)
            if not wire:
                return  # Response.no_reply
            try:
                self._sendto(wire, addr)
            except OSError as exc:
                self._send_failed(exc, wire, addr)
        else:
            result.addCallback(self._reply, request, addr)  # type: ignore[union-attr]

    def _reply(self, response: Response, request: Request, addr: Any) -> None:
        if self.transport is not None and self._transport.socket is not None:
            self._send(finish(request, response), addr)


@implementer(IPushProducer)
class DNSStreamProtocol(Protocol):
    """One TCP connection: length-prefixed queries, answered as each is ready, in any order.

    What a client may hold is bounded (``limits.StreamLimits``):
    - the first query must arrive whole within the read timeout of the connect, and so must any
      later query once its first byte has arrived: a client that sends a byte a second, or a
      length and then less, is cut off;
    - a connection that owes and is owed nothing is closed after the idle timeout; while its
      queries are being answered no timer runs against it;
    - a client that does not read its replies is not read either once our send buffer is full
      (Twisted's 64 KiB), and is dropped after the write timeout if it still does not read;
    - with ``max_in_flight`` queries unanswered the connection is not read until one is answered;
    - after ``max_queries`` queries it is closed once their replies are written.
    """

    def __init__(self, router: ZoneRouter, limits: StreamLimits | None = None, reactor: Any = None) -> None:
        self.router = router
        self.limits = limits if limits is not None else StreamLimits()
        if reactor is None:
            from twisted.internet import reactor
        self._reactor: Any = reactor
        self.owner: DNSStreamFactory | None = None
        """The listener that counts this connection."""
        self._buffer = b""
        self.remote: tuple[str, int] = ("", 0)
        self.local: tuple[str, int] | None = None
        self.queries = 0
        """Messages read from this connection."""
        self.in_flight = 0
        """Queries read and not answered yet."""
        self._blocked = False  # our send buffer is full: the client does not read
        self._reading = True
        self._closing = False
        self._lost = False
        self._resting = False  # owes the client nothing (a candidate for eviction)
        self._timer: Any = None
        self._timing: str | None = None  # what the timer is for: "read", "idle", "write", "close"

    # -- the connection's life -----------------------------------------------------------------

    def connectionMade(self) -> None:
        transport: Any = self.transport
        peer = transport.getPeer()
        host = transport.getHost()
        self.remote = (_unmapped(peer.host), peer.port)
        self.local = (host.host, host.port)
        transport.registerProducer(self, True)
        self._settle(False)

    def connectionLost(self, reason: Any = None) -> None:
        self._lost = True
        self._timing = None
        if self._timer is not None and self._timer.active():
            self._timer.cancel()
        self._timer = None
        if self.owner is not None:
            self.owner.lost(self, self._closing)

    def close(self) -> None:
        """Close once the replies written so far are sent, or abort if they are not sent within
        the write timeout. Replies to queries still being answered are not sent."""
        if self._closing or self._lost:
            return
        self._closing = True
        self._reading = False  # loseConnection stops reading
        if self.owner is not None:
            self.owner.closing(self)
        transport: Any = self.transport
        transport.unregisterProducer()
        transport.loseConnection()
        self._settle(False)

    # -- reading -------------------------------------------------------------------------------

    def dataReceived(self, data: bytes) -> None:
        self._buffer = self._buffer + data if self._buffer else data
        self._settle(self._take())

    def _may_take(self) -> bool:
        limits = self.limits
        return not (
            self._blocked
            or self._closing
            or self.in_flight >= limits.max_in_flight
            or 0 < limits.max_queries <= self.queries
        )

    def _take(self) -> bool:
        """Answer the whole messages buffered, while the limits allow; True if any was read."""
        buf = self._buffer
        # Walk the buffer with an offset and keep the rest once: slicing off each message would
        # copy what follows it every time, quadratic in a burst of pipelined queries.
        off, end = 0, len(buf)
        max_queries = self.limits.max_queries
        while end - off >= 2 and self._may_take():
            (size,) = _LENGTH.unpack_from(buf, off)
            if end - off - 2 < size:
                break
            message = buf[off + 2 : off + 2 + size]
            off += 2 + size
            self.queries += 1
            self._message(message)
            if self.queries == max_queries:
                off = end  # what follows the last query allowed is never read (as miekg)
        if off:
            self._buffer = buf[off:]
        return off > 0

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
            self.in_flight += 1
            result.addCallback(self._answered, request)  # type: ignore[union-attr]

    def _answered(self, response: Response, request: Request) -> None:
        self.in_flight -= 1
        if self._lost:
            return
        self._write(finish(request, response))
        if type(response) is not Response:
            for wire in getattr(response, "more", ()):  # a StreamResponse: a zone transfer
                self._write(wire)
        # The timer restarts by itself when the last answer makes the connection idle.
        self._settle(self._take() if self._buffer else False)

    def _write(self, wire: bytes) -> None:
        if wire and not self._lost:  # an empty wire is Response.no_reply
            transport: Any = self.transport
            transport.writeSequence((_LENGTH.pack(len(wire)), wire))

    # -- IPushProducer: the transport says when our replies back up ----------------------------

    def pauseProducing(self) -> None:
        self._blocked = True
        self._settle(False)

    def resumeProducing(self) -> None:
        self._blocked = False
        took = self._take() if self._buffer else False
        self._settle(took)

    def stopProducing(self) -> None:
        pass

    # -- the state after each event: reading or not, which timer, eviction ---------------------

    def _settle(self, progressed: bool) -> None:
        """Bring reading, the timer and the factory's idle list in line with the state.

        ``progressed``: a query was read or the last answer written, which restarts the read or
        idle timer; anything else leaves a running timer alone, so trickling bytes never
        extends a deadline."""
        if self._lost:
            return
        limits = self.limits
        done = 0 < limits.max_queries <= self.queries
        if done and self.in_flight == 0 and not self._closing:
            self.close()  # settles again
            return
        reading = self._may_take()
        if reading != self._reading:
            self._reading = reading
            transport: Any = self.transport
            if reading:
                transport.resumeProducing()
            else:
                transport.pauseProducing()
        if self._closing:
            timing, seconds = "close", limits.write_timeout
        elif self._blocked:
            timing, seconds = "write", limits.write_timeout
        elif reading and (self._buffer or self.queries == 0):
            timing, seconds = "read", limits.read_timeout  # a query has begun (or is awaited)
        elif self.in_flight or not reading:
            timing, seconds = None, 0.0  # we owe the replies: no timer
        else:
            timing, seconds = "idle", limits.idle_timeout
        if timing != self._timing or (progressed and timing in ("read", "idle")):
            self._arm(timing, seconds)
        resting = not (self._closing or self._blocked or self.in_flight)
        if self.owner is not None and (resting != self._resting or (resting and progressed)):
            self._resting = resting
            self.owner.resting(self, resting)

    def _arm(self, timing: str | None, seconds: float) -> None:
        self._timing = timing
        if timing is None:
            return  # a timer still pending finds nothing to do
        timer = self._timer
        if timer is not None and timer.active():
            timer.reset(seconds)
        else:
            self._timer = self._reactor.callLater(seconds, self._expired)

    def _expired(self) -> None:
        self._timer = None
        timing = self._timing
        if timing in ("read", "idle"):
            self.close()
        elif timing in ("write", "close"):
            transport: Any = self.transport
            transport.abortConnection()


class DNSStreamFactory(Factory):
    """One TCP listening socket: its connections, at most ``limits.max_connections`` at once.

    At the cap, a new connection closes the connection that has owed its client nothing for the
    longest (a client that never finished a query first); when every one is waiting for replies,
    the new one is refused (accepted and closed at once). At the process's file descriptor budget
    (``limits.connection_budget``, closing connections included) a new connection is refused,
    and closes this listener's idlest so that the next one finds room."""

    noisy = False
    _WARN_EVERY = 60.0

    def __init__(self, router: ZoneRouter, limits: StreamLimits | None = None, reactor: Any = None) -> None:
        self.router = router
        if limits is None:
            limits = StreamLimits.of(dict.fromkeys(router.table.values()))
        self.limits = limits
        if reactor is None:
            from twisted.internet import reactor
        self.reactor: Any = reactor
        self.open = 0
        """Connections not closing."""
        self.refused = 0
        self.evicted = 0
        self._resting: dict[DNSStreamProtocol, None] = {}  # longest resting first
        self._warned = -self._WARN_EVERY

    def buildProtocol(self, addr: Any) -> DNSStreamProtocol | None:
        cap = self.limits.max_connections
        at_cap = 0 < cap <= self.open
        if at_cap or PROCESS_CONNECTIONS.full():
            victim = next(iter(self._resting), None)
            if victim is not None:
                victim.close()  # leaves the resting list and the count against the cap
                self.evicted += 1
                why = f"{cap} TCP connections open (the cap)" if at_cap else self._budget_text()
                self._warn(why + ": closing the idlest for new ones")
            elif at_cap:
                self._refuse(f"{self.open} TCP connections open (the cap), all owed replies")
                return None
        # A closing connection holds its descriptor until it is gone: the budget counts it, so a
        # connection that had to make room there is refused, and the next one finds the room.
        if not PROCESS_CONNECTIONS.admit():
            self._refuse(self._budget_text())
            return None
        self.open += 1
        proto = DNSStreamProtocol(self.router, self.limits, self.reactor)
        proto.factory = self
        proto.owner = self
        return proto

    def resting(self, proto: DNSStreamProtocol, resting: bool) -> None:
        """``proto`` owes its client nothing (now, or again after an answer), or no longer; the
        list keeps them in the order they came to rest."""
        self._resting.pop(proto, None)
        if resting:
            self._resting[proto] = None

    def closing(self, proto: DNSStreamProtocol) -> None:
        """``proto`` is closing: no longer counted against the cap, nor a candidate."""
        self._resting.pop(proto, None)
        self.open -= 1

    def lost(self, proto: DNSStreamProtocol, closing: bool) -> None:
        self._resting.pop(proto, None)
        if not closing:
            self.open -= 1
        PROCESS_CONNECTIONS.release()

    @staticmethod
    def _budget_text() -> str:
        return (
            f"{PROCESS_CONNECTIONS.open} TCP connections open in this process, the most its "
            "file descriptor limit allows"
        )

    def _refuse(self, why: str) -> None:
        self.refused += 1
        self._warn(why + ": refusing new ones")

    def _warn(self, text: str) -> None:
        # Once a minute at most: a flood of connections must not become a flood of log lines.
        now = self.reactor.seconds()
        if now - self._warned >= self._WARN_EVERY:
            self._warned = now
            _log.warning(f"{self.router.address}: {text}")


class ProxiedDatagramProtocol(DNSDatagramProtocol):
    """A UDP socket behind a PROXY-protocol balancer (``proxyproto``): a v2 header names the
    client; the reply goes back to the balancer it came from."""

    def __init__(self, router: ZoneRouter, policy: Any, reactor: Any) -> None:
        super().__init__(router)
        from .proxyheader import UDPSessions

        self.policy = policy
        tracking = policy.session_ttl > 0
        self.sessions = UDPSessions(policy.session_ttl, policy.max_sessions, reactor) if tracking else None

    def datagramReceived(self, data: bytes, addr: Any, remote: Any = None) -> None:
        from .proxyheader import datagram_source

        peer = addr if "ffff" not in addr[0] else (_unmapped(addr[0]), addr[1])
        found = datagram_source(self.policy, self.sessions, data, peer)
        if found is None:
            return  # a malformed or refused header: the datagram is dropped
        data, remote = found  # the header names the client; the reply still goes to ``addr``
        super().datagramReceived(data, addr, remote)


def serve_udp(ctx: ServeContext) -> DNSDatagramProtocol:
    """The ``dns://`` transport's UDP server (``transports.py``)."""
    policy = ctx.settings.get("proxyproto")
    if policy is not None:
        return ProxiedDatagramProtocol(ctx.router, policy, ctx.reactor)
    return DNSDatagramProtocol(ctx.router)


def serve_tcp(ctx: ServeContext) -> Any:
    """The ``dns://`` transport's TCP server (``transports.py``)."""
    factory = DNSStreamFactory(ctx.router, reactor=ctx.reactor)
    policy = ctx.settings.get("proxyproto")
    if policy is not None:
        from .proxyheader import ProxyHeaderFactory

        return ProxyHeaderFactory(policy, factory, ctx.reactor, factory.limits.read_timeout)
    return factory
