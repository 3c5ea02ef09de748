"""Walking DNS messages in wire format, without building a message object.

Requests (EDNS), replies on their way out (is there an OPT record? what to keep when truncating),
the cache (TTL offsets, SOA and NS records) and the log plugin (the reply's type) all read the
records of a message straight from its bytes. They share the walk here, so that every one of them
accepts and rejects the same packets: a name that runs past the end, a label type other than a
length or a compression pointer, a record whose fixed part or data runs past the end all raise
``WireError``.
"""

from __future__ import annotations

import re
import struct
from collections.abc import Iterator

from .constants import OPT
from .header import U16
from .names import label_text

__all__ = [
    "Record",
    "WireError",
    "expand_name",
    "find_opt",
    "read_name",
    "read_qname",
    "records",
    "skip_name",
    "skip_question",
]

_TYPE_CLASS_RDLEN = struct.Struct("!HH4xH")  # type, class, (ttl), rdlength
_TYPE_RDLEN = struct.Struct("!H6xH")  # type, (class, ttl), rdlength
_MAX_POINTERS = 126
_PLAIN_NAME = re.compile(rb"[A-Za-z0-9_*/-]+(?:\.[A-Za-z0-9_*/-]+)*").fullmatch

Record = tuple[int, int, int, int, int, int, int]
"""``(section, start, type, class, ttl offset, rdata offset, end)`` of one record: section 0 is
the answer, 1 the authority, 2 the additional section; ``start`` is where its owner name begins
and ``end`` the offset after its data."""


class WireError(ValueError):
    """The bytes do not parse as a DNS message; ``str()`` says where it failed."""


def read_name(wire: bytes, offset: int, compressed: bool = True) -> tuple[str, int]:
    """The name at ``offset`` as presentation text with a trailing dot, and the offset after it in
    place (after a pointer, not after its target). With ``compressed`` False a pointer is an error,
    as it is in a question. This reads every query's question: keep the loop lean."""
    labels: list[bytes] = []
    length = len(wire)
    end = 0  # where the name ends in place, once a pointer is followed (no name ends at 0)
    hops = 0
    while True:
        if offset >= length:
            raise WireError("name runs past the end of the packet")
        n = wire[offset]
        if n == 0:
            offset += 1
            break
        if n & 0xC0:
            if not compressed:
                raise WireError("compressed or extended label in the question")
            if n & 0xC0 != 0xC0:
                raise WireError("unknown label type")
            if offset + 1 >= length:
                raise WireError("pointer runs past the end of the packet")
            if not end:
                end = offset + 2
            hops += 1
            if hops > _MAX_POINTERS:
                raise WireError("compression loop")
            offset = ((n & 0x3F) << 8) | wire[offset + 1]
            continue
        start = offset + 1
        offset = start + n
        if offset > length:
            raise WireError("label runs past the end of the packet")
        labels.append(wire[start:offset])
    joined = b".".join(labels)
    if len(joined) > 253:
        raise WireError("name longer than 255 octets")
    # The shortcut is only right when every dot in the joined text is one the join put there: a
    # label holding a dot (or any byte that needs an escape) takes the label-by-label path, and so
    # does the root (no labels at all).
    if joined.count(b".") == len(labels) - 1 and _PLAIN_NAME(joined) is not None:
        return joined.decode("ascii") + ".", end or offset
    return ".".join(label_text(raw) for raw in labels) + ".", end or offset


def expand_name(wire: bytes, offset: int) -> tuple[bytes, int]:
    """The name at ``offset`` in uncompressed wire form (its pointers followed), and the offset
    after it in place. The same checks as ``read_name``, without making text."""
    parts: list[bytes] = []
    length = len(wire)
    end = 0
    hops = 0
    size = 1
    while True:
        if offset >= length:
            raise WireError("name runs past the end of the packet")
        n = wire[offset]
        if n == 0:
            offset += 1
            break
        if n & 0xC0:
            if n & 0xC0 != 0xC0:
                raise WireError("unknown label type")
            if offset + 1 >= length:
                raise WireError("pointer runs past the end of the packet")
            if not end:
                end = offset + 2
            hops += 1
            if hops > _MAX_POINTERS:
                raise WireError("compression loop")
            offset = ((n & 0x3F) << 8) | wire[offset + 1]
            continue
        start = offset
        offset += 1 + n
        if offset > length:
            raise WireError("label runs past the end of the packet")
        size += 1 + n
        parts.append(wire[start:offset])
    if size > 255:
        raise WireError("name longer than 255 octets")
    parts.append(b"\x00")
    return b"".join(parts), end or offset


def read_qname(wire: bytes, offset: int) -> tuple[str, int]:
    """The question's name at ``offset`` (never compressed), as ``read_name`` reads it."""
    return read_name(wire, offset, False)


def skip_name(wire: bytes, off: int) -> int:
    """The offset after the (possibly compressed) name at ``off``; pointers are not followed."""
    length = len(wire)
    while True:
        if off >= length:
            raise WireError("name runs past the end of the packet")
        n = wire[off]
        if n == 0:
            return off + 1
        if n & 0xC0 == 0xC0:
            return off + 2
        if n & 0xC0:
            raise WireError("unknown label type")
        off += 1 + n


def skip_question(wire: bytes, qdcount: int) -> int:
    """The offset after ``qdcount`` questions (each a name, a type and a class) from offset 12."""
    off = 12
    for _ in range(qdcount):
        off = skip_name(wire, off) + 4
    return off


def records(wire: bytes, off: int, an: int, ns: int, ar: int) -> Iterator[Record]:
    """Each record of the three sections that start at ``off``, as a ``Record``."""
    length = len(wire)
    unpack = _TYPE_CLASS_RDLEN.unpack_from
    for section, count in ((0, an), (1, ns), (2, ar)):
        for _ in range(count):
            start = off
            off = skip_name(wire, off)
            if off + 10 > length:
                raise WireError("record truncated")
            rtype, rclass, rdlen = unpack(wire, off)
            rdata = off + 10
            end = rdata + rdlen
            if end > length:
                raise WireError("record data truncated")
            yield section, start, rtype, rclass, off + 4, rdata, end
            off = end


def find_opt(wire: bytes, off: int, skip: int, count: int) -> int:
    """Where the OPT record among ``count`` records begins (its owner name), or -1.

    The walk starts at ``off``, steps over ``skip`` records whose type does not matter, then looks
    at ``count`` more. Every record is checked to lie within the packet, and a second OPT record is
    a ``WireError``. A plain loop rather than ``records``: this runs for every EDNS query.
    """
    length = len(wire)
    unpack = U16.unpack_from
    unpack_rr = _TYPE_RDLEN.unpack_from
    for _ in range(skip):
        off = skip_name(wire, off)
        if off + 10 > length:
            raise WireError("record truncated")
        off += 10 + unpack(wire, off + 8)[0]
    found = -1
    for _ in range(count):
        start = off
        off = skip_name(wire, off)
        if off + 10 > length:
            raise WireError("record truncated")
        rtype, rdlen = unpack_rr(wire, off)
        off += 10 + rdlen
        if off > length:
            raise WireError("record data truncated")
        if rtype == OPT:
            if found >= 0:
                raise WireError("more than one OPT record")
            found = start
    return found
