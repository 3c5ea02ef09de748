"""coredns_server, dns_client and DNSClient, used as a plugin author uses them."""

from __future__ import annotations

import socket
import struct
from collections.abc import Callable, Iterator
from typing import Any

import dns.edns
import dns.message
import dns.rdatatype
import pytest
import pytest_twisted
from twisted.internet import defer, error, protocol, task
from twisted.internet import reactor as global_reactor

from twisted_coredns.testing import DNSClient, DNSTimeoutError
from twisted_coredns.testing.fixtures import DEFAULT_COREFILE, CoreDNSServer

reactor: Any = global_reactor

DOTTED = b"\x03a.b\x07example\x03org\x00"
"""Three labels, the first ``a.b``: a name dnspython would print as ``a\\.b.example.org.``."""


def _query_wire(qname: bytes, qid: int, qtype: int = dns.rdatatype.A) -> bytes:
    return struct.pack("!HHHHHH", qid, 0x0100, 1, 0, 0, 0) + qname + struct.pack("!HH", qtype, 1)


def _whoami(reply: dns.message.Message) -> tuple[str, str]:
    """whoami's answer: the client's address and the SRV record's transport label."""
    by_type = {rrset.rdtype: rrset for rrset in reply.additional}
    address = by_type.get(dns.rdatatype.A) or by_type[dns.rdatatype.AAAA]
    return address[0].address, by_type[dns.rdatatype.SRV].name.labels[0].decode().lstrip("_")


class _ReactorState:
    """What the reactor watches and has scheduled, to show an exchange left nothing behind."""

    def __init__(self) -> None:
        self.readers = set(reactor.getReaders())
        self.writers = set(reactor.getWriters())
        self.calls = {c for c in reactor.getDelayedCalls() if c.active()}

    def left_over(self) -> list[object]:
        now = _ReactorState()
        return [*(now.readers - self.readers), *(now.writers - self.writers), *(now.calls - self.calls)]


@pytest.fixture
def silent_udp() -> Iterator[int]:
    """A UDP port that takes queries and never answers."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    try:
        yield sock.getsockname()[1]
    finally:
        sock.close()


@pytest.fixture
def silent_tcp() -> Iterator[int]:
    """A TCP port whose connections the kernel completes (the backlog) and nobody reads."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    sock.listen(8)
    try:
        yield sock.getsockname()[1]
    finally:
        sock.close()


def test_pytest_twisted_is_active(request: pytest.FixtureRequest, twisted_greenlet: Any) -> None:
    # The second pytest run must really have pytest-twisted: pyproject's addopts turn it off.
    assert request.config.pluginmanager.hasplugin("twisted")
    assert twisted_greenlet is not None


def test_default_corefile(coredns_corefile: str) -> None:
    assert coredns_corefile == DEFAULT_COREFILE == ". {\n    whoami\n}\n"


@pytest.mark.parametrize("tcp", [False, True], ids=["udp", "tcp"])
@pytest_twisted.ensureDeferred
async def test_default_server_is_whoami(coredns_server: CoreDNSServer, tcp: bool) -> None:
    assert reactor.running  # the test is a coroutine on pytest-twisted's reactor
    reply = await coredns_server.query("a.example.", "A", tcp=tcp)
    assert reply.rcode() == 0
    assert reply.answer == []
    assert _whoami(reply) == ("127.0.0.1", "tcp" if tcp else "udp")


@pytest_twisted.ensureDeferred
async def test_server_attributes(coredns_server: CoreDNSServer) -> None:
    assert coredns_server.host == "127.0.0.1"
    assert coredns_server.port > 0
    # Keyed by the listen address as configured: a key without a port asks for a free one (:0).
    assert coredns_server.ports == {"dns://127.0.0.1:0": coredns_server.port}
    assert [b.handlers[0].name for b in coredns_server.instance.blocks] == ["whoami"]


@pytest.mark.corefile(". {\n    hosts {\n        192.0.2.7 a.example.org\n    }\n}\n")
@pytest_twisted.ensureDeferred
async def test_corefile_marker(coredns_server: CoreDNSServer, coredns_corefile: str) -> None:
    assert "192.0.2.7" in coredns_corefile
    reply = await coredns_server.query("a.example.org.", "A")
    assert [rd.address for rd in reply.answer[0]] == ["192.0.2.7"]
    assert reply.flags & dns.flags.AA


@pytest.mark.parametrize("tcp", [False, True], ids=["udp", "tcp"])
@pytest_twisted.ensureDeferred
async def test_exchange_keeps_the_wire(coredns_server: CoreDNSServer, tcp: bool) -> None:
    question = DOTTED + struct.pack("!HH", dns.rdatatype.A, 1)
    wire = _query_wire(DOTTED, 0x4A4B)
    reply = await coredns_server.exchange(wire, tcp=tcp)
    assert reply[:2] == b"\x4a\x4b"
    assert reply[2] & 0x80  # QR
    assert struct.unpack("!H", reply[4:6]) == (1,)
    assert reply[12 : 12 + len(question)] == question
    assert dns.message.from_wire(reply).question[0].name.labels[0] == b"a.b"


@pytest_twisted.ensureDeferred
async def test_exchange_returns_edns(coredns_server: CoreDNSServer) -> None:
    query = dns.message.make_query("a.example.", "A", use_edns=0, payload=4096,
                                   options=[dns.edns.GenericOption(dns.edns.OptionType.NSID, b"")])
    reply = dns.message.from_wire(await coredns_server.exchange(query.to_wire()))
    assert reply.edns == 0
    assert reply.id == query.id


@pytest_twisted.ensureDeferred
async def test_query_passes_make_query_options(coredns_server: CoreDNSServer) -> None:
    reply = await coredns_server.query("a.example.", "A", edns=0, payload=1400)
    assert reply.edns == 0


@pytest_twisted.ensureDeferred
async def test_dns_client_fixture(coredns_server: CoreDNSServer,
                                  dns_client: Callable[..., DNSClient]) -> None:
    client = dns_client(coredns_server.port)
    assert (client.host, client.port) == ("127.0.0.1", coredns_server.port)
    reply = await client.query("b.example.", "A", tcp=True)
    assert _whoami(reply) == ("127.0.0.1", "tcp")


@pytest_twisted.ensureDeferred
async def test_udp_timeout(silent_udp: int, dns_client: Callable[..., DNSClient]) -> None:
    before = _ReactorState()
    started = reactor.seconds()
    with pytest.raises(TimeoutError, match=rf"no reply from 127\.0\.0\.1:{silent_udp} over udp within 0\.3s"):
        await dns_client(silent_udp, timeout=0.3).query("a.example.")
    assert 0.25 < reactor.seconds() - started < 2
    assert before.left_over() == []


@pytest_twisted.ensureDeferred
async def test_tcp_timeout(silent_tcp: int) -> None:
    before = _ReactorState()
    with pytest.raises(DNSTimeoutError, match=rf"127\.0\.0\.1:{silent_tcp} over tcp within 0\.3s") as caught:
        await DNSClient("127.0.0.1", silent_tcp, timeout=0.3).exchange(_query_wire(DOTTED, 7), tcp=True)
    assert isinstance(caught.value, defer.TimeoutError)  # what twisted.names' clients raise
    assert caught.value.id == 7
    assert before.left_over() == []


@pytest_twisted.ensureDeferred
async def test_cancelled_exchange_leaves_nothing(silent_udp: int) -> None:
    before = _ReactorState()
    pending = defer.ensureDeferred(DNSClient("127.0.0.1", silent_udp).exchange(_query_wire(DOTTED, 9)))
    pending.cancel()
    with pytest.raises(defer.CancelledError):
        await pending
    # stopListening finishes on the next reactor turn
    await _turn()
    assert before.left_over() == []


class _ClockedReactor:
    """The global reactor for sockets, a ``Clock`` for time: shows whose timers the client uses."""

    def __init__(self) -> None:
        self.clock = task.Clock()

    def callLater(self, delay: float, f: Callable[..., object], *args: object) -> Any:
        return self.clock.callLater(delay, f, *args)

    def seconds(self) -> float:
        return self.clock.seconds()

    def __getattr__(self, name: str) -> Any:
        return getattr(reactor, name)


@pytest_twisted.ensureDeferred
async def test_timeout_runs_on_the_given_reactor(silent_udp: int) -> None:
    clocked = _ClockedReactor()
    client = DNSClient("127.0.0.1", silent_udp, reactor=clocked, timeout=30)
    pending = defer.ensureDeferred(client.exchange(_query_wire(DOTTED, 3)))
    await _turn()
    assert not pending.called
    clocked.clock.advance(30)
    with pytest.raises(DNSTimeoutError, match="within 30s"):
        await pending
    assert clocked.clock.getDelayedCalls() == []


async def _turn() -> None:
    d: defer.Deferred[None] = defer.Deferred()
    reactor.callLater(0, d.callback, None)
    await d


class _HangUp(protocol.Protocol):
    def connectionMade(self) -> None:
        self.transport.loseConnection()  # type: ignore[union-attr]


@pytest_twisted.ensureDeferred
async def test_tcp_hang_up_fails_at_once() -> None:
    factory = protocol.ServerFactory.forProtocol(_HangUp)
    port = reactor.listenTCP(0, factory, interface="127.0.0.1")
    try:
        started = reactor.seconds()
        with pytest.raises(error.ConnectionClosed, match="closed the connection before replying"):
            client = DNSClient("127.0.0.1", port.getHost().port, timeout=5)
            await client.exchange(_query_wire(DOTTED, 1), tcp=True)
        assert reactor.seconds() - started < 2
    finally:
        await port.stopListening()


class _WrongIDFirst(protocol.DatagramProtocol):
    """Answers every query twice: first with another ID, which the client must ignore."""

    def datagramReceived(self, data: bytes, addr: Any) -> None:
        other = ((int.from_bytes(data[:2], "big") + 1) % 65536).to_bytes(2, "big")
        reply = bytes([data[2] | 0x80]) + data[3:]
        assert self.transport is not None
        self.transport.write(other + reply, addr)
        self.transport.write(data[:2] + reply + b"right", addr)


@pytest_twisted.ensureDeferred
async def test_replies_match_by_id() -> None:
    port = reactor.listenUDP(0, _WrongIDFirst(), interface="127.0.0.1")
    try:
        wire = _query_wire(DOTTED, 0x1234)
        reply = await DNSClient("127.0.0.1", port.getHost().port).exchange(wire)
        assert reply[:2] == b"\x12\x34"
        assert reply.endswith(b"right")
    finally:
        await defer.maybeDeferred(port.stopListening)


def test_client_needs_an_address() -> None:
    with pytest.raises(ValueError, match="needs an IP address"):
        DNSClient("localhost", 53)


@pytest_twisted.ensureDeferred
async def test_short_wire_is_refused() -> None:
    with pytest.raises(ValueError, match="at least 12 bytes"):
        await DNSClient("127.0.0.1", 53).exchange(b"\x00\x01")
