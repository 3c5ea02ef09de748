"""Sockets to one upstream, on twisted.names' client protocols, relaying wire bytes.

twisted.names' ``DNSDatagramProtocol`` and ``DNSProtocol`` keep the machinery a DNS client needs:
``liveMessages`` (message ID to Deferred and timeout), ``pickID`` (an unused random ID) and the
reactor hooks. What they cost per query is the ``Message`` they build and parse, and what they lose
is the upstream reply itself (flags, EDNS, extended rcodes). The subclasses here keep the
machinery and replace those two steps: a query goes out as the client's bytes with a fresh ID, a
reply is matched by its first two bytes and handed back whole.

One connection carries several queries at once (UDP up to ``capacity``, each with its own ID); a
stream connection carries one at a time, as CoreDNS's do, so an upstream that answers in order is
never made to wait. ``Proxy`` decides which connection a query uses.
"""

from __future__ import annotations

import os
import struct
from typing import TYPE_CHECKING, Any, Protocol

from twisted.internet import error as ierror
from twisted.internet.defer import Deferred, succeed
from twisted.internet.protocol import ClientFactory
from twisted.names import dns as tdns
from twisted.python.failure import Failure

from ...dns.header import U16

if TYPE_CHECKING:
    from twisted.internet.interfaces import IConnector

_CLOSED = "use of closed network connection"


class UpstreamError(Exception):
    """An exchange with an upstream failed; ``str()`` reads as Go's net errors read."""


class CachedClosed(UpstreamError):
    """A reused stream connection was closed by the upstream: CoreDNS retries at once."""


class Owner(Protocol):
    """What a connection tells its proxy."""

    max_idle_conns: int

    def discard(self, conn: Any) -> None: ...

    def went_idle(self, conn: Any) -> None: ...


def _hostport(address: Any) -> str:
    host = getattr(address, "host", "?")
    port = getattr(address, "port", 0)
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


class _RandomIDs:
    """16-bit IDs from the OS's CSPRNG, read 4096 at a time: as unpredictable as CoreDNS's
    (crypto/rand), without a getrandom(2) per query."""

    _BATCH = 4096

    def __init__(self) -> None:
        self._ids: list[int] = []

    def next(self) -> int:
        if not self._ids:
            self._ids = list(struct.unpack(f"!{self._BATCH}H", os.urandom(2 * self._BATCH)))
        return self._ids.pop()


_random_ids = _RandomIDs()


class _Relay:
    """What both connection kinds share: send bytes under a fresh ID, match replies by ID."""

    liveMessages: dict[int, tuple[Deferred[Any], Any]]
    _reactor: Any
    capacity = 1
    kind = ""
    owner: Owner | None
    created: float
    used: float
    closed: bool
    retired: bool
    replies: int
    local: str
    remote: str


    def _send(self, wire: bytes) -> None:
        raise NotImplementedError

    def close(self, reason: UpstreamError | None = None) -> Deferred[None]:
        raise NotImplementedError

    @property
    def inflight(self) -> int:
        return len(self.liveMessages)

    def pickID(self) -> int:
        """An unpredictable ID not in flight. DNSMixin's reads os.urandom for every ID, a system
        call that was a fifth of the forward path's CPU; ``_random_ids`` reads them in bulk."""
        while True:
            qid = _random_ids.next()
            if qid not in self.liveMessages:
                return qid

    def relay(self, wire: bytes, timeout: float) -> Deferred[bytes]:
        """Send ``wire`` (a whole DNS message) under a new ID; the Deferred fires with the
        reply's bytes (still carrying that ID) or fails with ``UpstreamError``."""
        qid = self.pickID()
        d: Deferred[bytes] = Deferred(lambda _d: self._cancelled(qid))
        # Registered before the write: a refused UDP write reports synchronously.
        self.liveMessages[qid] = (d, self._reactor.callLater(timeout, self._timed_out, qid))
        self._send(U16.pack(qid) + wire[2:])
        return d

    def _deliver(self, data: bytes) -> None:
        if len(data) < 12:
            return  # miekg reads past a short message and keeps waiting
        entry = self.liveMessages.pop((data[0] << 8) | data[1], None)
        if entry is None:
            return  # a late or foreign reply: dropped, as CoreDNS drops out-of-order ones
        entry[1].cancel()
        self.used = self._reactor.seconds()
        self.replies += 1
        entry[0].callback(data)
        if not self.liveMessages:
            if self.retired:
                self.close()
            elif self.owner is not None and self.owner.max_idle_conns:
                self.owner.went_idle(self)

    def _cancelled(self, qid: int) -> None:
        """The waiter gave up (the ``cancel`` plugin's deadline): the query is forgotten at once, so
        its timer stops, its ID and its place in the connection are free, and a late reply is
        dropped as a foreign one. The connection stays usable: nothing is known to be wrong with it."""
        entry = self.liveMessages.pop(qid, None)
        if entry is not None and entry[1].active():
            entry[1].cancel()
        if not self.liveMessages:
            if self.retired:
                self.close()
            elif self.owner is not None and self.owner.max_idle_conns:
                self.owner.went_idle(self)

    def _timed_out(self, qid: int) -> None:
        entry = self.liveMessages.pop(qid, None)
        if not self.retired:
            # CoreDNS closes a connection whose read timed out. Retired before the errback, so a
            # retry does not pick it again: a late reply is never read on it, and its ID can
            # never answer a later query that drew the same one.
            self.retired = True
            if self.owner is not None:
                self.owner.discard(self)
        if entry is not None:
            error = UpstreamError(f"read {self.kind} {self.local}->{self.remote}: i/o timeout")
            entry[0].errback(Failure(error))
        if not self.liveMessages:
            self.close()

    def _fail_all(self, error: UpstreamError) -> None:
        live, self.liveMessages = self.liveMessages, {}
        for d, timer in live.values():
            if timer.active():
                timer.cancel()
            d.errback(Failure(error))

    def retire(self) -> None:
        """Take no new queries; close once the ones in flight are answered."""
        self.retired = True
        if not self.liveMessages:
            self.close()


class UDPConnection(_Relay, tdns.DNSDatagramProtocol):
    """A connected UDP socket: only the upstream's datagrams reach it."""

    kind = "udp"
    capacity = 32
    noisy = False

    def __init__(
        self, owner: Owner | None, host: str, port: int, reactor: Any, source: str | None = None
    ) -> None:
        tdns.DNSMixin.__init__(self, None, reactor)
        self.owner = owner
        self.created = self.used = reactor.seconds()
        self.closed = self.retired = False
        self.replies = 0
        self.remote = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
        interface = source or ("::" if ":" in host else "")
        self.local = ""
        self._port = reactor.listenUDP(0, self, interface=interface, maxPacketSize=65535)
        transport: Any = self.transport
        try:
            transport.connect(host, port)
        except OSError as exc:
            # No route to the upstream (ENETUNREACH and the like): Go's dial error, no socket left.
            self.closed = True
            self._port.stopListening()
            reason = (exc.strerror or str(exc)).lower()
            raise OSError(exc.errno, f"dial udp {self.remote}: connect: {reason}") from None
        self.local = _hostport(transport.getHost())

    def _send(self, wire: bytes) -> None:
        transport: Any = self.transport
        try:
            transport.write(wire)
        except OSError as exc:
            self._fail_all(UpstreamError(f"write udp {self.local}->{self.remote}: {exc.strerror or exc}"))
            self.close()

    def datagramReceived(self, data: bytes, addr: Any) -> None:
        self._deliver(data)

    def connectionRefused(self) -> None:
        # ICMP port unreachable: every query on this socket is lost, and CoreDNS would close it.
        self.close(UpstreamError(f"read udp {self.local}->{self.remote}: read: connection refused"))

    def stopProtocol(self) -> None:
        if not self.closed:
            # The epoll reactor sees the ICMP error of a connected UDP socket as EPOLLERR without
            # EPOLLIN and drops the port without calling connectionRefused: same meaning.
            self.closed = True
            if self.owner is not None:
                self.owner.discard(self)
            self._fail_all(UpstreamError(f"read udp {self.local}->{self.remote}: read: connection refused"))
        super().stopProtocol()

    def close(self, reason: UpstreamError | None = None) -> Deferred[None]:
        if self.closed:
            return succeed(None)
        self.closed = True
        if self.owner is not None:
            self.owner.discard(self)
        self._fail_all(reason or UpstreamError(f"read udp {self.local}->{self.remote}: {_CLOSED}"))
        d = self._port.stopListening()
        return d if isinstance(d, Deferred) else succeed(None)


class StreamConnection(_Relay, tdns.DNSProtocol):
    """A TCP (or DNS-over-TLS) connection: length-prefixed messages, one query at a time."""

    capacity = 1
    noisy = False

    def __init__(
        self,
        owner: Owner | None,
        host: str,
        port: int,
        reactor: Any,
        *,
        tls: Any = None,
        source: str | None = None,
        dial_timeout: float = 30.0,
        on_dialed: Any = None,
    ) -> None:
        tdns.DNSMixin.__init__(self, None, reactor)
        self.liveMessages = {}
        self.owner = owner
        self.kind = "tcp"
        self.created = self.used = reactor.seconds()
        self.closed = self.retired = False
        self.replies = 0
        self.remote = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
        self.local = "?"
        self._queue: list[bytes] = []
        self._up = False
        self._lost: Deferred[None] = Deferred()
        self._on_dialed = on_dialed
        factory = _OneConnectionFactory(self)
        bind = (source, 0) if source else None
        self.connector: IConnector
        if tls is not None:
            self.connector = reactor.connectSSL(
                host, port, factory, tls, timeout=dial_timeout, bindAddress=bind
            )
        else:
            self.connector = reactor.connectTCP(host, port, factory, timeout=dial_timeout, bindAddress=bind)

    def connectionMade(self) -> None:
        # Not DNSProtocol's: it would forget the queries written while we were dialing.
        self._up = True
        transport: Any = self.transport
        self.local = _hostport(transport.getHost())
        if self._on_dialed is not None:
            self._on_dialed(self._reactor.seconds() - self.created)
        queue, self._queue = self._queue, []
        for wire in queue:
            self.sendString(wire)

    def _send(self, wire: bytes) -> None:
        if self._up:
            self.sendString(wire)
        else:
            self._queue.append(wire)

    def stringReceived(self, data: bytes) -> None:
        if len(data) < 12:
            # miekg fails a stream read shorter than a header (a datagram that short is skipped),
            # and CoreDNS closes the connection and moves on.
            self.close(UpstreamError("dns: short read"))
            return
        self._deliver(data)

    def dial_failed(self, reason: Failure) -> None:
        self.closed = True
        if self.owner is not None:
            self.owner.discard(self)
        if reason.check(ierror.ConnectionRefusedError):
            why = "connect: connection refused"
        elif reason.check(ierror.TimeoutError, ierror.UserError):
            why = "i/o timeout"
        else:
            why = reason.getErrorMessage()
        self._fail_all(UpstreamError(f"dial tcp {self.remote}: {why}"))
        self._lost.callback(None)

    def connectionLost(self, reason: Failure = ierror.ConnectionDone) -> None:  # type: ignore[assignment]
        self._up = False
        was_closed, self.closed = self.closed, True
        if self.owner is not None:
            self.owner.discard(self)
        if self.liveMessages:
            if was_closed:
                error = UpstreamError(f"read tcp {self.local}->{self.remote}: {_CLOSED}")
            elif self.replies:
                error = CachedClosed("cached connection was closed by peer")
            elif reason.check(ierror.ConnectionDone):
                error = UpstreamError("EOF")
            else:
                error = UpstreamError(f"read tcp {self.local}->{self.remote}: {reason.getErrorMessage()}")
            self._fail_all(error)
        self._lost.callback(None)

    def close(self, reason: UpstreamError | None = None) -> Deferred[None]:
        if self._lost.called:
            return succeed(None)
        self.closed = True
        if self.owner is not None:
            self.owner.discard(self)
        if reason is not None:
            self._fail_all(reason)
        transport: Any = self.transport
        if self._up and transport is not None:
            transport.loseConnection()
        else:
            connector: Any = self.connector
            connector.stopConnecting()
        d: Deferred[None] = Deferred()
        self._lost.addBoth(lambda _: d.callback(None))
        return d


class _OneConnectionFactory(ClientFactory):
    """Builds the one protocol it was made for (the queries are queued on it already)."""

    noisy = False

    def __init__(self, conn: StreamConnection) -> None:
        self.conn = conn

    def buildProtocol(self, addr: Any) -> StreamConnection:
        return self.conn

    def clientConnectionFailed(self, connector: Any, reason: Failure) -> None:
        self.conn.dial_failed(reason)


Connection = UDPConnection | StreamConnection
