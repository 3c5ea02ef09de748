"""A DNS client that runs on the reactor, for tests that ``await`` their queries.

``testing.query_in_thread`` lets a trial test ask a server in its own reactor by blocking a thread;
a pytest-twisted test is a coroutine on the reactor and wants a client that is one too. Twisted's
own client (``twisted.names.client``) parses every reply into its ``Message``, which drops what
plugin tests look at (EDNS options, flags it does not model, the exact question bytes), so this one
keeps the wire: it sends the bytes it is given and returns the bytes that came back, matched by
message ID the way twisted.names' ``DNSDatagramProtocol`` and ``DNSProtocol`` match theirs (their
``liveMessages``). ``query`` is the dnspython convenience on top.

Each exchange opens its own UDP port or TCP connection and closes it before returning, and every
timer it starts is cancelled, so nothing is left for trial's or anyone's dirty-reactor check.
"""

from __future__ import annotations

import ipaddress
from typing import Any, cast

import dns.message
from twisted.internet import defer, error
from twisted.internet.abstract import isIPv6Address
from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IDelayedCall
from twisted.internet.protocol import ClientFactory, connectionDone
from twisted.names import dns as tdns
from twisted.names.error import DNSQueryTimeoutError
from twisted.python.failure import Failure

from ..dns.dnspython import parse_message
from ..dns.header import HEADER

__all__ = ["DNSClient", "DNSTimeoutError"]

HEADER_SIZE = HEADER.size


class DNSTimeoutError(DNSQueryTimeoutError, TimeoutError):
    """No reply in time. Both Twisted's timeout (what twisted.names' clients raise) and the
    built-in ``TimeoutError``, so either ``except`` works."""

    def __init__(self, id: int, message: str) -> None:
        TimeoutError.__init__(self, message)
        self.id = id


def _message_id(wire: bytes) -> int:
    if len(wire) < HEADER_SIZE:
        raise ValueError(f"a DNS message is at least {HEADER_SIZE} bytes (its header), got {len(wire)}")
    return int.from_bytes(wire[:2], "big")


class _WireMatching:
    """The reply bookkeeping both transports share; mixed in before the twisted.names protocol,
    whose ``liveMessages`` it fills with Deferreds of bytes instead of Messages."""

    _reactor: Any

    @property
    def _live(self) -> dict[int, tuple[Deferred[bytes], IDelayedCall]]:
        # twisted.names types the dict for its Message Deferreds; here it holds Deferreds of bytes.
        live: dict[int, tuple[Deferred[bytes], IDelayedCall]] = cast(Any, self).liveMessages
        return live

    def _expect(self, id: int, timeout: float, where: str, shown: float | None = None) -> Deferred[bytes]:
        if id in self._live:
            raise ValueError(f"a query with ID {id} is already waiting for its reply on this connection")

        def forget(d: Deferred[bytes]) -> None:
            # A caller that gives up (Deferred.cancel) must not leave the timer behind.
            entry = self._live.pop(id, None)
            if entry is not None and entry[1].active():
                entry[1].cancel()

        d: Deferred[bytes] = Deferred(forget)
        # ``shown``: the caller's whole timeout, when part of it went on connecting.
        shown = timeout if shown is None else shown
        timer = self._reactor.callLater(timeout, self._timed_out, id, shown, where)
        self._live[id] = (d, timer)
        return d

    def _timed_out(self, id: int, timeout: float, where: str) -> None:
        entry = self._live.pop(id, None)
        if entry is not None:
            entry[0].errback(DNSTimeoutError(id, f"no reply from {where} within {timeout:g}s (ID {id})"))

    def _deliver(self, data: bytes) -> bool:
        if len(data) < HEADER_SIZE:
            return False
        entry = self._live.pop(int.from_bytes(data[:2], "big"), None)
        if entry is None:
            return False
        d, timer = entry
        if timer.active():
            timer.cancel()
        d.callback(data)
        return True

    def _fail_all(self, where: str, reason: Failure) -> None:
        pending = dict(self._live)
        self._live.clear()
        for id, (d, timer) in pending.items():
            if timer.active():
                timer.cancel()
            d.errback(error.ConnectionClosed(
                f"{where} closed the connection before replying (ID {id}): {reason.getErrorMessage()}"
            ))


class _DatagramProtocol(_WireMatching, tdns.DNSDatagramProtocol):
    def send(self, wire: bytes, address: tuple[str, int], timeout: float) -> Deferred[bytes]:
        id = _message_id(wire)
        d = self._expect(id, timeout, f"{address[0]}:{address[1]} over udp")
        # A reply counts only from the address asked, as twisted.names' own UDP client insists.
        self._addressValidation[id] = address
        self.transport.write(wire, address)
        return d

    def datagramReceived(self, data: bytes, addr: tuple[str, int]) -> None:
        if len(data) < HEADER_SIZE:
            return
        id = int.from_bytes(data[:2], "big")
        if self._addressValidation.get(id) == addr:
            del self._addressValidation[id]
            self._deliver(data)


class _StreamProtocol(_WireMatching, tdns.DNSProtocol):
    controller: _StreamFactory

    def send(self, wire: bytes, timeout: float, shown: float) -> Deferred[bytes]:
        d = self._expect(_message_id(wire), timeout, self._where(), shown)
        self.sendString(wire)
        return d

    def _where(self) -> str:
        assert self.transport is not None
        peer: Any = self.transport.getPeer()
        return f"{peer.host}:{peer.port} over tcp"

    def stringReceived(self, data: bytes) -> None:
        self._deliver(data)

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        # twisted.names leaves its waiters to time out; a test should hear at once that the
        # server hung up without answering.
        self._fail_all(self._where(), reason)
        super().connectionLost(reason)


class _StreamFactory(ClientFactory):
    """The controller twisted.names' ``DNSProtocol`` reports to: it says when the connection is
    made and when it is gone, which is all an exchange waits for."""

    def __init__(self, reactor: Any) -> None:
        self.reactor = reactor
        self.connected: Deferred[_StreamProtocol] = Deferred()
        self.lost: Deferred[None] = Deferred()

    def buildProtocol(self, addr: Any) -> _StreamProtocol:
        protocol = _StreamProtocol(self, self.reactor)
        protocol.factory = self
        return protocol

    def connectionMade(self, protocol: _StreamProtocol) -> None:
        self.connected.callback(protocol)

    def connectionLost(self, protocol: _StreamProtocol) -> None:
        self.lost.callback(None)

    def clientConnectionFailed(self, connector: Any, reason: Failure) -> None:
        self.connected.errback(reason)


class DNSClient:
    """Asks one server (``host``, an IP address, and ``port``) over UDP or TCP on ``reactor``.

    ``timeout`` bounds each exchange, the TCP connect included; when it passes, the exchange
    raises ``DNSTimeoutError`` (a ``TimeoutError``). Holds nothing open between exchanges.
    """

    def __init__(self, host: str = "127.0.0.1", port: int = 53, *, reactor: Any = None,
                 timeout: float = 3.0) -> None:
        try:
            # The canonical spelling: UDP replies are matched against the address the socket reports.
            self.host = str(ipaddress.ip_address(host))
        except ValueError:
            raise ValueError(f"DNSClient needs an IP address, not {host!r}") from None
        self.port = port
        self.timeout = timeout
        self._given_reactor = reactor

    @property
    def reactor(self) -> Any:
        # Looked up late: importing the global reactor installs one, which a client built at import
        # time (a module constant) must not do before pytest-twisted or trial picks theirs.
        if self._given_reactor is None:
            from twisted.internet import reactor

            return reactor
        return self._given_reactor

    def __repr__(self) -> str:
        return f"DNSClient({self.host!r}, {self.port}, timeout={self.timeout:g})"

    async def exchange(self, wire: bytes, *, tcp: bool = False) -> bytes:
        """Send ``wire`` as it is and return the reply's bytes, whatever they hold."""
        _message_id(wire)
        if tcp:
            return await self._exchange_tcp(wire)
        return await self._exchange_udp(wire)

    async def query(self, name: str, rdtype: str | int = "A", rdclass: str | int = "IN", *,
                    tcp: bool = False, **kw: Any) -> dns.message.Message:
        """``testing.make_query(name, rdtype, rdclass, **kw)`` sent, and the reply parsed by dnspython."""
        from . import make_query

        wire = await self.exchange(make_query(name, rdtype, rdclass, **kw).to_wire(), tcp=tcp)
        return parse_message(wire)

    async def _exchange_udp(self, wire: bytes) -> bytes:
        protocol = _DatagramProtocol(None, self.reactor)
        interface = "::" if isIPv6Address(self.host) else ""
        # 65535: the client must not be the one to cut a large EDNS reply short.
        port = self.reactor.listenUDP(0, protocol, interface=interface, maxPacketSize=65535)
        try:
            return await protocol.send(wire, (self.host, self.port), self.timeout)
        finally:
            await defer.maybeDeferred(port.stopListening)

    async def _exchange_tcp(self, wire: bytes) -> bytes:
        reactor = self.reactor
        started = reactor.seconds()
        factory = _StreamFactory(reactor)
        reactor.connectTCP(self.host, self.port, factory, timeout=self.timeout)
        try:
            protocol = await factory.connected
        except error.TimeoutError:
            raise DNSTimeoutError(
                _message_id(wire), f"no TCP connection to {self.host}:{self.port} within {self.timeout:g}s"
            ) from None
        try:
            left = max(self.timeout - (reactor.seconds() - started), 0.0)
            return await protocol.send(wire, left, self.timeout)
        finally:
            assert protocol.transport is not None
            protocol.transport.loseConnection()
            await factory.lost
