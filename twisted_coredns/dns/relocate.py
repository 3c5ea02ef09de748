"""The records of a message put in a new order on the wire, compression pointers kept valid.

A plugin that reorders records (loadbalance) works on the reply's bytes in two steps:

- ``layout(wire)`` walks the message once: where the question ends, where each record starts,
  each record's type, and the furthest offset any compression pointer in the records reaches
  (owner names, and the names in the data of the types ``rdata_names`` lists, whose names may be
  compressed); a SIG or NXT record, whose names are not walked, makes it give up;
- ``reorder(wire, layout, order)`` writes the records in ``order``.

Most replies need no pointer touched: when every pointer reaches below the first record that
moves (the question, or records that keep their place), the moved records' bytes are joined as
they are. Otherwise (an MX reply whose glue points into the MX data, a record whose name is
written in full in a record that now comes later) the records are copied name by name: a pointer
follows its target to where that name now lies, and a name whose target now comes later is
written out, so every pointer still points backwards (what RFC 1035 asks and truncation needs).
"""

from __future__ import annotations

import struct

from .rdata_names import CHARACTER_STRING, NAME, NAME_LAYOUTS, UNWALKED
from .wire import WireError, skip_question

__all__ = ["Layout", "layout", "question_end", "reorder"]

Layout = tuple[int, list[int], list[int], int]
"""``(end of question, starts, types, furthest pointer target)``: ``starts`` holds each record's
first offset, then the offset after the last record; ``types`` each record's type. The furthest
target is -1 when no record has a pointer."""

_COUNTS = struct.Struct("!HHHH")
_U16 = struct.Struct("!H")
_TYPE_RDLEN = struct.Struct("!H6xH")
_POINTER = struct.Struct("!H")
_RDLEN = struct.Struct("!H")
_MAX_POINTERS = 126
_REACHABLE = 0x4000
"""A pointer holds 14 bits: a name at or past this offset cannot be pointed at."""


def question_end(wire: bytes) -> int:
    """The offset after the question section."""
    off = skip_question(wire, _U16.unpack_from(wire, 4)[0])
    if off > len(wire):
        raise WireError("question truncated")
    return off


def layout(wire: bytes, end_of_question: int = 0) -> Layout:
    """Walk the records of ``wire`` once, from ``end_of_question`` (found here when 0). A name
    or a record that runs past the end, or a pointer that does not point backwards, raises
    ``WireError`` (``IndexError`` or ``struct.error`` for a header or fixed part cut short)."""
    _qd, an, ns, ar = _COUNTS.unpack_from(wire, 4)
    length = len(wire)
    off = end_of_question or question_end(wire)
    end_of_question = off
    starts: list[int] = []
    types: list[int] = []
    furthest = -1
    unpack = _TYPE_RDLEN.unpack_from
    for _ in range(an + ns + ar):
        starts.append(off)
        n = wire[off]
        while n and n < 64:  # the owner's labels, to its pointer or its end
            off += n + 1
            n = wire[off]
        if n:
            if n < 0xC0:
                raise WireError("unknown label type")
            target = (n & 0x3F) << 8 | wire[off + 1]
            if target >= off:
                raise WireError("compression pointer points forward")
            if target > furthest:
                furthest = target
            off += 2
        else:
            off += 1
        rtype, rdlen = unpack(wire, off)
        types.append(rtype)
        rdata = off + 10
        off = rdata + rdlen
        if off > length:
            raise WireError("record data truncated")
        fields = NAME_LAYOUTS.get(rtype)
        if fields is not None:
            target = _furthest_in_data(wire, rdata, off, fields)
            if target > furthest:
                furthest = target
        elif rtype in UNWALKED:
            raise WireError("a record whose names are not walked (SIG, NXT)")
    starts.append(off)
    return end_of_question, starts, types, furthest


def _furthest_in_data(wire: bytes, off: int, end: int, fields: tuple[int, ...]) -> int:
    """The furthest pointer target among the names of one record's data (-1 for none)."""
    furthest = -1
    for field in fields:
        if field == NAME:
            while True:
                if off >= end:
                    raise WireError("name runs past the record data")
                n = wire[off]
                if n < 64:
                    off += n + 1
                    if n == 0:
                        break
                elif n >= 0xC0:
                    target = (n & 0x3F) << 8 | wire[off + 1]
                    if target >= off:
                        raise WireError("compression pointer points forward")
                    if target > furthest:
                        furthest = target
                    off += 2
                    break
                else:
                    raise WireError("unknown label type")
        elif field == CHARACTER_STRING:
            off += 1 + wire[off]
        else:
            off += field
    if off > end:
        raise WireError("record data runs past its length")
    return furthest


def reorder(wire: bytes, found: Layout, order: list[int]) -> bytes:
    """``wire`` with its records in ``order`` (indexes into the layout, each once; the section
    counts are the caller's to keep). The same ``wire`` object when nothing moves."""
    _end_of_question, starts, types, furthest = found
    count = len(order)
    first = 0
    while first < count and order[first] == first:
        first += 1
    if first == count:
        return wire
    stable = starts[first]
    if furthest < stable:
        parts = [wire[:stable]]
        parts.extend([wire[starts[k] : starts[k + 1]] for k in order[first:]])
        parts.append(wire[starts[count]:])
        return b"".join(parts)
    return _rewrite(wire, stable, starts, types, order[first:], first)


def _rewrite(wire: bytes, stable: int, starts: list[int], types: list[int], moved: list[int],
             first: int) -> bytes:
    """The records from ``first`` on rewritten name by name after the unchanged prefix."""
    out = bytearray(wire[:stable])
    placed: dict[int, int] = {}  # a label's offset in ``wire`` -> the same name's offset in ``out``
    for k in moved:
        start = starts[k]
        end = starts[k + 1]
        off = _copy_name(wire, start, out, placed, stable)
        fields = NAME_LAYOUTS.get(types[k])
        if fields is None:
            out += wire[off:end]
            continue
        if off + 10 > end:
            raise WireError("record truncated")
        out += wire[off : off + 8]
        rdlen_at = len(out)
        out += b"\x00\x00"
        off += 10
        for field in fields:
            if field == NAME:
                off = _copy_name(wire, off, out, placed, stable)
            elif field == CHARACTER_STRING:
                size = 1 + wire[off]
                out += wire[off : off + size]
                off += size
            else:
                out += wire[off : off + field]
                off += field
        if off > end:
            raise WireError("name runs past the record data")
        out += wire[off:end]
        _RDLEN.pack_into(out, rdlen_at, len(out) - rdlen_at - 2)
    out += wire[starts[-1]:]
    return bytes(out)


def _copy_name(wire: bytes, off: int, out: bytearray, placed: dict[int, int], stable: int) -> int:
    """Write the name at ``off`` to ``out``; return the offset after it in ``wire``.

    A pointer below ``stable`` is kept (that part did not move); one to a name already written
    points there; any other is followed and its labels written out."""
    after = -1
    hops = 0
    size = 0
    while True:
        n = wire[off]
        if n >= 0xC0:
            if after < 0:
                after = off + 2
            target = (n & 0x3F) << 8 | wire[off + 1]
            if target < stable:
                out += _POINTER.pack(0xC000 | target)
                return after
            hops += 1
            if hops > _MAX_POINTERS:
                raise WireError("compression loop")
            off = target
            continue
        if n >= 64:
            raise WireError("unknown label type")
        there = placed.get(off)
        if there is not None:
            out += _POINTER.pack(0xC000 | there)
            return after if after >= 0 else _skip_name(wire, off)
        if n == 0:
            out.append(0)
            return after if after >= 0 else off + 1
        size += n + 1
        if size > 254:
            raise WireError("name longer than 255 octets")
        if off + n >= len(wire):
            raise WireError("label runs past the end of the packet")
        if len(out) < _REACHABLE:
            placed[off] = len(out)
        out += wire[off : off + n + 1]
        off += n + 1


def _skip_name(wire: bytes, off: int) -> int:
    while True:
        n = wire[off]
        if n == 0:
            return off + 1
        if n >= 0xC0:
            return off + 2
        off += n + 1
