"""The PROXY protocol (HAProxy's v1 text and v2 binary headers) in front of a listener.

A load balancer that forwards a client's connection puts the client's address in a header before
the client's bytes. With the ``proxyproto`` plugin the servers read it and give every plugin the
client's address (``Request.remote``) instead of the balancer's. Who may send a header, and what
happens to one from anyone else, is the block's ``ProxyPolicy`` (CoreDNS's ``ConnPolicy`` with
pires/go-proxyproto's policies):

- ``use``: a header is read when one comes, and its source address is the client's;
- ``ignore``: a header is read and thrown away, the connection's own address stays;
- ``reject``: a connection that starts with a header is closed;
- ``skip``: nothing is read; the bytes go to the server as they came.

A header that starts like one and is malformed (a bad length, a bad CRC32c, an unknown version)
closes the connection, or drops the datagram. A stream has the read timeout to send its header.
On UDP, only v2 headers exist; ``udp_session_tracking`` remembers, for a while, the client of each
balancer address, for the datagrams that come without a header.
"""

from __future__ import annotations

import ipaddress
import struct
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

from twisted.internet.address import IPv4Address, IPv6Address
from twisted.protocols.policies import ProtocolWrapper, WrappingFactory

V2_SIGNATURE = b"\r\n\r\n\x00\r\nQUIT\n"
V1_PREFIX = b"PROXY "
_V1_MAX = 107
_V2_HEAD = struct.Struct("!12sBBH")
_TLV_CRC32C = 0x03

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


class ProxyHeaderError(ValueError):
    """A header that begins like a PROXY header and is not a valid one."""


@dataclass
class ProxyPolicy:
    """What the ``proxyproto`` plugin set for a block."""

    allow: list[Network] = field(default_factory=list)
    default: str | None = None
    """``use``, ``ignore``, ``reject`` or ``skip``; None when ``default`` was not given."""
    session_ttl: float = 0.0
    """``udp_session_tracking`` seconds; 0: no tracking."""
    max_sessions: int = 10240
    """The most sessions kept (CoreDNS's default LRU size); the least recently used go first."""

    def decide(self, host: str) -> str:
        """The policy for a connection from ``host`` (CoreDNS's ``ConnPolicy``)."""
        if not self.allow:
            return self.default if self.default is not None else "use"
        try:
            ip = ipaddress.ip_address(host.split("%")[0])
        except ValueError:
            return "reject"
        if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
            ip = ip.ipv4_mapped
        if any(ip in net for net in self.allow if net.version == ip.version):
            return "use"
        return self.default if self.default is not None else "ignore"


# -- parsing -----------------------------------------------------------------------------------


def parse(buf: bytes, *, stream: bool = True) -> tuple[int, tuple[str, int] | None] | None:
    """The header at the start of ``buf``: ``(bytes it takes, source address or None)``.

    ``(0, None)``: ``buf`` does not start with a header. ``None``: too few bytes to tell yet.
    The source is None for a header that carries none (v2 LOCAL, v1 UNKNOWN, AF_UNSPEC).
    ``ProxyHeaderError`` for a malformed header. UDP (``stream=False``) knows only v2."""
    if buf[:1] == b"\r":
        n = min(len(buf), len(V2_SIGNATURE))
        if buf[:n] != V2_SIGNATURE[:n]:
            return (0, None)
        if len(buf) < _V2_HEAD.size:
            return None
        return _parse_v2(buf)
    if stream and buf[:1] == b"P":
        n = min(len(buf), len(V1_PREFIX))
        if buf[:n] != V1_PREFIX[:n]:
            return (0, None)
        end = buf.find(b"\r\n", 0, _V1_MAX + 1)
        if end < 0:
            if len(buf) >= _V1_MAX:
                raise ProxyHeaderError("PROXY v1 header too long")
            return None
        return end + 2, _parse_v1(buf[:end])
    return (0, None)


def _parse_v1(line: bytes) -> tuple[str, int] | None:
    parts = line.decode("ascii", "replace").split(" ")
    if len(parts) >= 2 and parts[1] == "UNKNOWN":
        return None
    if len(parts) != 6 or parts[1] not in ("TCP4", "TCP6"):
        raise ProxyHeaderError("malformed PROXY v1 header")
    try:
        source = ipaddress.ip_address(parts[2])
        ipaddress.ip_address(parts[3])
        sport, dport = int(parts[4]), int(parts[5])
    except ValueError:
        raise ProxyHeaderError("malformed PROXY v1 header") from None
    if source.version != (4 if parts[1] == "TCP4" else 6) or not (0 <= sport < 65536 and 0 <= dport < 65536):
        raise ProxyHeaderError("malformed PROXY v1 header")
    if parts[4] != str(sport) or parts[5] != str(dport):
        raise ProxyHeaderError("malformed PROXY v1 header")  # no leading zeroes or signs
    return str(source), sport


def _parse_v2(buf: bytes) -> tuple[int, tuple[str, int] | None] | None:
    _sig, ver_cmd, family, length = _V2_HEAD.unpack_from(buf)
    if ver_cmd >> 4 != 2 or ver_cmd & 0x0F not in (0, 1):
        raise ProxyHeaderError("unsupported PROXY v2 version or command")
    total = _V2_HEAD.size + length
    if len(buf) < total:
        return None
    body = buf[_V2_HEAD.size : total]
    address_family = family >> 4
    need = {0: 0, 1: 12, 2: 36, 3: 216}.get(address_family)
    if need is None or family & 0x0F > 2:
        raise ProxyHeaderError("unsupported PROXY v2 address family")
    if length < need:
        raise ProxyHeaderError("PROXY v2 header length too short for its addresses")
    _check_tlvs(buf[:total], need)
    if ver_cmd & 0x0F == 0 or address_family in (0, 3):
        return total, None  # LOCAL, or no IP address: the connection's own address stays
    if address_family == 1:
        source = str(ipaddress.IPv4Address(body[0:4]))
        sport = struct.unpack_from("!H", body, 8)[0]
    else:
        source = str(ipaddress.IPv6Address(body[0:16]))
        sport = struct.unpack_from("!H", body, 32)[0]
    return total, (source, sport)


def _check_tlvs(header: bytes, addresses: int) -> None:
    off = _V2_HEAD.size + addresses
    while off < len(header):
        if len(header) - off < 3:
            raise ProxyHeaderError("truncated PROXY v2 TLV")
        kind, size = header[off], struct.unpack_from("!H", header, off + 1)[0]
        if off + 3 + size > len(header):
            raise ProxyHeaderError("truncated PROXY v2 TLV")
        if kind == _TLV_CRC32C:
            if size != 4:
                raise ProxyHeaderError("bad PROXY v2 CRC32c TLV")
            expected = header[off + 3 : off + 7]
            zeroed = header[: off + 3] + b"\0\0\0\0" + header[off + 7 :]
            if struct.pack("!I", crc32c(zeroed)) != expected:
                raise ProxyHeaderError("PROXY v2 header checksum mismatch")
        off += 3 + size


def _crc32c_table() -> list[int]:
    table = []
    for i in range(256):
        crc = i
        for _ in range(8):
            crc = (crc >> 1) ^ 0x82F63B78 if crc & 1 else crc >> 1
        table.append(crc)
    return table


_CRC_TABLE = _crc32c_table()


def crc32c(data: bytes) -> int:
    """CRC32c (Castagnoli), as PROXY v2's checksum TLV uses it."""
    crc = 0xFFFFFFFF
    table = _CRC_TABLE
    for byte in data:
        crc = table[(crc ^ byte) & 0xFF] ^ (crc >> 8)
    return crc ^ 0xFFFFFFFF


def _address(host: str, port: int) -> IPv4Address | IPv6Address:
    if ":" in host:
        return IPv6Address("TCP", host, port)
    return IPv4Address("TCP", host, port)


# -- streams -----------------------------------------------------------------------------------


class ProxyHeaderProtocol(ProtocolWrapper):
    """Reads the header, then hands the connection (and the rest of the bytes) to the server
    it wraps, which sees the client's address in ``getPeer()``."""

    factory: ProxyHeaderFactory

    def makeConnection(self, transport: Any) -> None:
        # The wrapped protocol is connected only once the header is settled.
        self.connected = 1
        self.transport = transport
        self.factory.registerProtocol(self)
        self._buffer = b""
        self._peer: Any = None
        self._settled = False
        peer = transport.getPeer()
        self._policy = self.factory.policy.decide(getattr(peer, "host", ""))
        if self._policy == "skip":
            self._settle()
            return
        self._timer: Any = self.factory.reactor.callLater(self.factory.timeout, transport.abortConnection)

    def _settle(self, rest: bytes = b"") -> None:
        self._settled = True
        timer = getattr(self, "_timer", None)
        if timer is not None and timer.active():
            timer.cancel()
        inner: Any = self.wrappedProtocol
        inner.makeConnection(self)
        if rest:
            self.wrappedProtocol.dataReceived(rest)

    def getPeer(self) -> Any:
        transport: Any = self.transport
        return self._peer if self._peer is not None else transport.getPeer()

    def dataReceived(self, data: bytes) -> None:
        if self._settled:
            self.wrappedProtocol.dataReceived(data)
            return
        self._buffer += data
        transport: Any = self.transport
        try:
            found = parse(self._buffer)
        except ProxyHeaderError:
            transport.abortConnection()
            return
        if found is None:
            return  # more bytes needed
        size, source = found
        rest, self._buffer = self._buffer[size:], b""
        if size and self._policy == "reject":
            transport.abortConnection()
            return
        if size and source is not None and self._policy == "use":
            self._peer = _address(*source)
        self._settle(rest)

    def connectionLost(self, reason: Any = None) -> None:
        timer = getattr(self, "_timer", None)
        if timer is not None and timer.active():
            timer.cancel()
        self.factory.unregisterProtocol(self)
        if self._settled:
            self.wrappedProtocol.connectionLost(reason)
        else:
            # The server never saw this connection, but a DNS stream factory counted it when it
            # was built (against its cap and the process's descriptors): give that back.
            inner: Any = self.wrappedProtocol
            while hasattr(inner, "wrappedProtocol"):
                inner = inner.wrappedProtocol
            owner = getattr(inner, "owner", None)
            if owner is not None:
                owner.lost(inner, False)


class ProxyHeaderFactory(WrappingFactory):
    protocol = ProxyHeaderProtocol
    noisy = False

    def __init__(self, policy: ProxyPolicy, wrapped: Any, reactor: Any, timeout: float = 3.0) -> None:
        super().__init__(wrapped)
        self.policy = policy
        self.reactor = reactor
        self.timeout = timeout

    def buildProtocol(self, addr: Any) -> Any:
        inner = self.wrappedFactory.buildProtocol(addr)
        if inner is None:
            return None
        return self.protocol(self, inner)  # type: ignore[arg-type]


# -- datagrams ---------------------------------------------------------------------------------


class UDPSessions:
    """``udp_session_tracking``: the client behind each balancer address, for a while."""

    def __init__(self, ttl: float, max_sessions: int, clock: Any) -> None:
        self.ttl = ttl
        self.max_sessions = max_sessions
        self.clock = clock
        self._sessions: OrderedDict[tuple[str, int], tuple[tuple[str, int], float]] = OrderedDict()

    def remember(self, balancer: tuple[str, int], client: tuple[str, int]) -> None:
        self._sessions.pop(balancer, None)
        self._sessions[balancer] = (client, self.clock.seconds() + self.ttl)
        if self.max_sessions > 0:
            while len(self._sessions) > self.max_sessions:
                self._sessions.popitem(last=False)

    def client(self, balancer: tuple[str, int]) -> tuple[str, int] | None:
        found = self._sessions.get(balancer)
        if found is None:
            return None
        client, until = found
        now = self.clock.seconds()
        if now > until:
            del self._sessions[balancer]
            return None
        # Each datagram the session applies to keeps it alive, as CoreDNS's LRU does.
        self._sessions[balancer] = (client, now + self.ttl)
        self._sessions.move_to_end(balancer)
        return client


def datagram_source(
    policy: ProxyPolicy, sessions: UDPSessions | None, data: bytes, addr: tuple[str, int]
) -> tuple[bytes, tuple[str, int]] | None:
    """The DNS message of a datagram and the client it is from; None: drop it."""
    decision = policy.decide(addr[0])
    if decision == "skip":
        return data, addr
    try:
        found = parse(data, stream=False)
    except ProxyHeaderError:
        return None
    if found is None:
        return None  # a datagram too short for its own header
    size, source = found
    if size == 0:
        if sessions is not None and decision == "use":
            tracked = sessions.client(addr)
            if tracked is not None:
                return data, tracked
        return data, addr
    if decision == "reject":
        return None
    if decision == "use" and source is not None:
        if sessions is not None:
            sessions.remember(addr, source)
        return data[size:], source
    return data[size:], addr
