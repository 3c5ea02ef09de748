"""The dnstap payload (``dnstap.proto``'s ``Dnstap`` and ``Message``), encoded by hand.

Only what a DNS server's client-side taps need is here: the top-level ``Dnstap`` (identity,
version, extra, type MESSAGE) around one ``Message`` (type, socket family and protocol, addresses,
ports, times, wire messages). Protobuf's wire format for these is small: a key byte (field number
and wire type), then a varint, a little-endian fixed32, or a varint length and the bytes. Fields
are written in field-number order, as Go's ``proto.Marshal`` writes them.

The parts of a message that do not change per query are encoded once: the identity and version
per tap, the address fields per client (``address_fields``), shared by a query's two messages.
"""

from __future__ import annotations

import socket
import struct

__all__ = [
    "CLIENT_QUERY",
    "CLIENT_RESPONSE",
    "INET",
    "INET6",
    "TCP",
    "UDP",
    "PayloadEncoder",
    "address_fields",
    "client_query",
    "client_response",
    "varint",
]

# Message.Type
CLIENT_QUERY = 5
CLIENT_RESPONSE = 6
# SocketFamily
INET = 1
INET6 = 2
# SocketProtocol
UDP = 1
TCP = 2

_PROTOCOLS = {"udp": UDP, "tcp": TCP}

# Keys: (field number << 3) | wire type (0 varint, 2 length-delimited, 5 fixed32); all below 128.
_VARINT, _BYTES, _FIXED32 = 0, 2, 5


def _key(field: int, wire_type: int) -> bytes:
    return bytes(((field << 3) | wire_type,))


# Dnstap
_IDENTITY = _key(1, _BYTES)
_VERSION = _key(2, _BYTES)
_EXTRA = _key(3, _BYTES)
_MESSAGE = _key(14, _BYTES)
_TYPE_MESSAGE = _key(15, _VARINT) + b"\x01"  # Dnstap.Type MESSAGE
# Message
_TYPE = _key(1, _VARINT)
_SOCKET_FAMILY = _key(2, _VARINT)
_SOCKET_PROTOCOL = _key(3, _VARINT)
_QUERY_ADDRESS = _key(4, _BYTES)
_RESPONSE_ADDRESS = _key(5, _BYTES)
_QUERY_PORT = _key(6, _VARINT)
_RESPONSE_PORT = _key(7, _VARINT)
_QUERY_TIME_SEC = _key(8, _VARINT)
_QUERY_TIME_NSEC = _key(9, _FIXED32)
_QUERY_MESSAGE = _key(10, _BYTES)
_RESPONSE_TIME_SEC = _key(12, _VARINT)
_RESPONSE_TIME_NSEC = _key(13, _FIXED32)
_RESPONSE_MESSAGE = _key(14, _BYTES)

_QUERY_TYPE = _TYPE + bytes((CLIENT_QUERY,))
_RESPONSE_TYPE = _TYPE + bytes((CLIENT_RESPONSE,))

_SMALL = [bytes((n,)) for n in range(128)]
_FIXED = struct.Struct("<I")
_FRAME_LENGTH = struct.Struct(">I")
_NS = 1_000_000_000


def varint(n: int) -> bytes:
    """Protobuf's base-128 varint of a non-negative ``n``: seven bits a byte, low bits first."""
    if n < 0x80:
        return _SMALL[n]
    out = bytearray()
    while n >= 0x80:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def _length_delimited(key: bytes, data: bytes) -> bytes:
    return key + varint(len(data)) + data


def _ip(host: str) -> tuple[int, bytes] | None:
    """The dnstap family and address bytes of ``host``: 4 bytes for IPv4 (an IPv4-mapped IPv6
    address included, as CoreDNS maps it), 16 for IPv6; None for what is no IP address."""
    if ":" in host:
        host = host.partition("%")[0]  # a link-local zone is no part of the address
        try:
            packed = socket.inet_pton(socket.AF_INET6, host)
        except OSError:
            return None
        if packed[:12] == b"\x00" * 10 + b"\xff\xff":
            return INET, packed[12:]
        return INET6, packed
    try:
        return INET, socket.inet_pton(socket.AF_INET, host)
    except OSError:
        return None


_UNSPECIFIED = (b"\x00" * 4, b"\x00" * 16)
_REMEMBERED = 4096
_address_cache: dict[tuple[str, int, str, tuple[str, int] | None], bytes] = {}


def address_fields(remote: tuple[str, int], proto: str, local: tuple[str, int] | None) -> bytes:
    """``socket_family``, ``socket_protocol``, ``query_address``/``query_port`` (the client) and,
    when the server's own address is known and is no wildcard, ``response_address``/
    ``response_port``. Kept per client: they are the same for both messages of a query, and
    clients repeat."""
    key = (remote[0], remote[1], proto, local)
    found = _address_cache.get(key)
    if found is not None:
        return found
    client = _ip(remote[0])
    family = client[0] if client is not None else INET
    parts = [
        _SOCKET_FAMILY, _SMALL[family], _SOCKET_PROTOCOL, _SMALL[_PROTOCOLS.get(proto, UDP)],
    ]
    server = _ip(local[0]) if local is not None else None
    # A socket's two ends have one family; a wildcard listener does not know the address it got
    # the query on. In both cases the field is better left out than wrong.
    if server is not None and (server[0] != family or server[1] in _UNSPECIFIED):
        server = None
    if client is not None:
        parts.append(_length_delimited(_QUERY_ADDRESS, client[1]))
    if server is not None:
        parts.append(_length_delimited(_RESPONSE_ADDRESS, server[1]))
    parts += [_QUERY_PORT, varint(remote[1])]
    if server is not None and local is not None:
        parts += [_RESPONSE_PORT, varint(local[1])]
    found = b"".join(parts)
    if len(_address_cache) >= _REMEMBERED:
        _address_cache.clear()
    _address_cache[key] = found
    return found


def client_query(addresses: bytes, query_time_ns: int, query_message: bytes | None) -> bytes:
    """A ``Message`` of type CLIENT_QUERY: ``addresses`` from ``address_fields``, the time the
    query came in (nanoseconds since the epoch), and the query's wire bytes when given."""
    sec, nsec = divmod(query_time_ns, _NS)
    body = _QUERY_TYPE + addresses + _QUERY_TIME_SEC + varint(sec) + _QUERY_TIME_NSEC + _FIXED.pack(nsec)
    if query_message is not None:
        body += _QUERY_MESSAGE + varint(len(query_message)) + query_message
    return body


def client_response(
    addresses: bytes, query_time_ns: int, response_time_ns: int, response_message: bytes | None
) -> bytes:
    """A ``Message`` of type CLIENT_RESPONSE: the query's time and the reply's, and the reply's
    wire bytes when given."""
    qsec, qnsec = divmod(query_time_ns, _NS)
    rsec, rnsec = divmod(response_time_ns, _NS)
    body = (
        _RESPONSE_TYPE + addresses
        + _QUERY_TIME_SEC + varint(qsec) + _QUERY_TIME_NSEC + _FIXED.pack(qnsec)
        + _RESPONSE_TIME_SEC + varint(rsec) + _RESPONSE_TIME_NSEC + _FIXED.pack(rnsec)
    )
    if response_message is not None:
        body += _RESPONSE_MESSAGE + varint(len(response_message)) + response_message
    return body


class PayloadEncoder:
    """One tap's ``Dnstap`` payloads: its identity and version encoded once, then each message
    wrapped with them (and the ``extra`` text of that message, if any) into a Frame Streams data
    frame, ready to write."""

    __slots__ = ("_head",)

    def __init__(self, identity: bytes, version: bytes) -> None:
        self._head = _length_delimited(_IDENTITY, identity) + _length_delimited(_VERSION, version)

    def payload(self, message: bytes, extra: bytes | None = None) -> bytes:
        """The encoded ``Dnstap`` holding ``message``."""
        head = self._head
        if extra:
            head += _EXTRA + varint(len(extra)) + extra
        return head + _MESSAGE + varint(len(message)) + message + _TYPE_MESSAGE

    def frame(self, message: bytes, extra: bytes | None = None) -> bytes:
        """The payload as a data frame: its length (four bytes, big-endian), then itself."""
        payload = self.payload(message, extra)
        return _FRAME_LENGTH.pack(len(payload)) + payload
