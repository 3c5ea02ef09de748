"""CoreDNS's ``pb.DnsPacket``, the one message of its gRPC service, encoded by hand.

The proto (coredns/pb/dns.proto) is ``message DnsPacket { bytes msg = 1; }`` in package
``coredns.dns``, served as ``DnsService/Query``. A message with one bytes field is the tag byte
``0x0a`` (field 1, wire type 2), a varint length and the bytes, so encoding it here costs a few
lines and needs neither protobuf nor a code-generation step. ``decode_packet`` still reads any valid
protobuf for the message (unknown fields skipped, the last ``msg`` kept, as protobuf does), so a
client built from the .proto with another library is served the same.
"""

from __future__ import annotations

QUERY_METHOD = "/coredns.dns.DnsService/Query"
"""The gRPC method path of ``DnsService.Query``."""

MAX_PACKET = 65535 + 4
"""CoreDNS's ``maxProtobufPayloadBytes``: a 64 KiB DNS message, its tag and a 3-byte length."""


class PacketError(ValueError):
    """Bytes that are not a ``DnsPacket``."""


def encode_packet(msg: bytes) -> bytes:
    """``DnsPacket{msg}`` as protobuf bytes (an empty ``msg`` is no field at all, as proto3 has it)."""
    if not msg:
        return b""
    n = len(msg)
    length = bytearray()
    while n >= 0x80:
        length.append((n & 0x7F) | 0x80)
        n >>= 7
    length.append(n)
    return b"\x0a" + bytes(length) + msg


def _varint(data: bytes, pos: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        if pos >= len(data) or shift > 63:
            raise PacketError("truncated varint")
        byte = data[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value, pos
        shift += 7


def decode_packet(data: bytes) -> bytes:
    """The ``msg`` field of a ``DnsPacket``; raises ``PacketError`` for bytes that are no protobuf."""
    if data[:1] == b"\x0a":
        # The common case, one field and nothing else: no loop.
        length, pos = _varint(data, 1)
        if pos + length == len(data):
            return data[pos:]
    msg = b""
    pos = 0
    end = len(data)
    while pos < end:
        key, pos = _varint(data, pos)
        field, wire_type = key >> 3, key & 7
        if field == 0:
            raise PacketError("field number 0")
        if wire_type == 0:
            _, pos = _varint(data, pos)
        elif wire_type == 1:
            pos += 8
        elif wire_type == 2:
            length, pos = _varint(data, pos)
            if field == 1:
                msg = data[pos : pos + length]
            pos += length
        elif wire_type == 5:
            pos += 4
        else:
            raise PacketError(f"wire type {wire_type}")
        if pos > end:
            raise PacketError("truncated field")
    return msg
