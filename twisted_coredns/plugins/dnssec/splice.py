"""A reply's records read from its bytes, and the reply written again with records added.

The dnssec handler signs what the rest of the chain wrote without building a message object:
``ReplyRecords`` walks the reply once (where each record lies, its type, class and TTL) and groups
the records into RRsets by section, lower-cased owner, type and class; ``splice`` writes the reply
with new records (signatures, an NSEC) at the end of any section, the OPT record kept last (what
truncation to the client's size expects), the header's counts and rcode set.

New records name their owner with a compression pointer to a name already in the reply. Where
nothing after the first insertion point is pointed at, the parts are joined as they are; else
``twisted_coredns.dns.relocate`` moves the records that shift and keeps their pointers right.
"""

from __future__ import annotations

import struct

from ...dns.classify import RRSIG_FIXED, signatures_expired, typify
from ...dns.constants import NS, OPT, RRSIG, SOA
from ...dns.header import COUNTS, RR_FIXED
from ...dns.rdata_names import CHARACTER_STRING, NAME, NAME_LAYOUTS, UNWALKED
from ...dns.relocate import layout, reorder
from ...dns.wire import WireError, expand_name, skip_name, skip_question

__all__ = ["ReplyRecords", "owner_at", "rrsig_records"]

_U16 = struct.Struct("!H")
_POINTER_LIMIT = 0x4000  # a pointer holds 14 bits
_RCODE_CLEAR = 0xFFF0

Record = tuple[int, int, int, int, int, int, int]
"""``(section, start, type, class, TTL, rdata offset, end)``."""


class ReplyRecords:
    """The records of one reply (``WireError``, ``IndexError`` or ``struct.error`` for bytes that
    are not a message), and the facts ``response.Typify`` looks at, gathered on the same walk."""

    __slots__ = ("counts", "do", "end", "end_of_question", "ns", "opt", "records", "signatures", "soa",
                 "wire")

    def __init__(self, wire: bytes) -> None:
        self.wire = wire
        qd, an, ns, ar = COUNTS.unpack_from(wire, 4)
        self.counts = (an, ns, ar)
        off = self.end_of_question = skip_question(wire, qd)
        length = len(wire)
        unpack = RR_FIXED.unpack_from
        found: list[Record] = []
        opt = -1
        soa = False
        delegations = 0
        do = False
        signatures: list[int] = []
        authority_end = an + ns
        for index in range(an + ns + ar):
            start = off
            n = wire[off]
            while n and n < 64:  # the owner's labels, to its pointer or its end
                off += n + 1
                n = wire[off]
            if n:
                if n < 0xC0:
                    raise WireError("unknown label type")
                off += 2
            else:
                off += 1
            rtype, rclass, ttl, rdlen = unpack(wire, off)
            rdata = off + 10
            off = rdata + rdlen
            if off > length:
                raise WireError("record data truncated")
            if index < an:
                section = 0
            elif index < authority_end:
                section = 1
                if rtype == SOA:
                    soa = True
                elif rtype == NS:
                    delegations += 1
            else:
                section = 2
                if rtype == OPT:
                    opt = index
                    do = bool(ttl & 0x8000)
            if rtype == RRSIG and rdlen >= RRSIG_FIXED:
                signatures.append(rdata)
            found.append((section, start, rtype, rclass, ttl, rdata, off))
        self.records = found
        self.opt = opt
        self.end = off
        self.soa = soa
        self.ns = delegations
        self.do = do
        self.signatures = signatures

    def kind(self, qtype: int, now: float) -> str:
        """``response.Typify`` of the reply (``classify.typify_wire`` without a second walk)."""
        wire = self.wire
        flags = _U16.unpack_from(wire, 2)[0]
        expired = self.do and bool(self.signatures) and signatures_expired(wire, self.signatures, int(now))
        return typify((flags >> 11) & 0xF, qtype, flags & 0xF, self.counts[0], self.soa, self.ns, expired)

    def rrsets(self) -> list[dict[tuple[bytes, int, int], list[Record]]]:
        """The RRsets of each section (RRSIG and OPT records left out), keyed by (lower-cased
        owner in wire form, type, class), in the order of their first record."""
        wire = self.wire
        sets: list[dict[tuple[bytes, int, int], list[Record]]] = [{}, {}, {}]
        owners: dict[bytes, bytes] = {}  # a pointer's two bytes -> the name it leads to
        if wire[4:6] == b"\x00\x01":
            # Most owners point into the question's name, which is never compressed: a pointer
            # to its label k is the name from there on.
            qname = wire[12 : self.end_of_question - 4].lower()
            off = 0
            while off < len(qname) - 1:
                owners[_U16.pack(0xC00C + off)] = qname[off:]
                off += qname[off] + 1
        for record in self.records:
            section, start, rtype = record[0], record[1], record[2]
            if rtype == RRSIG or rtype == OPT:
                continue
            if wire[start] >= 0xC0:
                pointer = wire[start : start + 2]
                owner = owners.get(pointer)
                if owner is None:
                    owner = owners[pointer] = expand_name(wire, start)[0].lower()
            else:
                owner = expand_name(wire, start)[0].lower()
            key = (owner, rtype, record[3])
            rrset = sets[section].get(key)
            if rrset is None:
                sets[section][key] = [record]
            else:
                rrset.append(record)
        return sets

    def splice(self, added: tuple[list[bytes], list[bytes], list[bytes]], rcode: int | None = None) -> bytes:
        """The reply with ``added[s]`` at the end of section ``s`` (before the OPT record in the
        additional section), and the header's rcode set to ``rcode`` when given. ``WireError``
        when a record's names cannot be walked (SIG, NXT) and something after it moves."""
        wire = self.wire
        found = self.records
        an, ns, ar = self.counts
        opt = self.opt
        head = self._head(rcode)
        counts = COUNTS.pack(an + len(added[0]), ns + len(added[1]), ar + len(added[2]), 0)[:6]
        if opt < 0 or opt == len(found) - 1:
            joined = self._join(head + counts, added)
            if joined is not None:
                return joined
        # The general way: the new records appended, then every record put in its place.
        order: list[int] = []
        index = len(found)
        for section in range(3):
            order.extend(i for i, r in enumerate(found) if r[0] == section and i != opt)
            order.extend(range(index, index + len(added[section])))
            index += len(added[section])
        if opt >= 0:
            order.append(opt)
        appended = b"".join([*added[0], *added[1], *added[2]])
        big = head + COUNTS.pack(an, ns, ar + index - len(found), 0)[:6] + wire[12 : self.end] + appended
        moved = reorder(big, layout(big, self.end_of_question), order)
        return head + counts + moved[12:]

    def answer_instead(self, answer: list[bytes], rcode: int | None = None) -> bytes:
        """The reply with ``answer`` as its answer section and no authority section (the records
        of a denial, which has no answer). The additional section is kept when nothing in it
        points into what goes, else only its OPT record."""
        wire = self.wire
        found = self.records
        an, ns, _ar = self.counts
        start = found[an][1] if an < len(found) else self.end
        after = found[an + ns][1] if an + ns < len(found) else self.end
        additional = found[an + ns :]
        tail = wire[after : self.end]
        opt = self.opt
        if (opt >= 0 and opt != len(found) - 1) or _pointers(wire, additional, start):
            additional = [found[opt]] if opt >= 0 else []
            tail = wire[found[opt][1] : found[opt][6]] if opt >= 0 else b""
        counts = COUNTS.pack(len(answer), 0, len(additional), 0)[:6]
        return b"".join([self._head(rcode), counts, wire[12:start], *answer, tail])

    def _head(self, rcode: int | None) -> bytes:
        """The ID, the flags (the rcode set when given) and the question count."""
        wire = self.wire
        if rcode is None:
            return wire[:6]
        flags = (_U16.unpack_from(wire, 2)[0] & _RCODE_CLEAR) | (rcode & 0xF)
        return wire[:2] + _U16.pack(flags) + wire[4:6]

    def _join(self, head: bytes, added: tuple[list[bytes], list[bytes], list[bytes]]) -> bytes | None:
        """The parts joined, the pointers into what moved patched in place (a pointer stays two
        bytes); None when a patched pointer would reach past 14 bits."""
        wire = self.wire
        found = self.records
        an, ns, _ar = self.counts
        end = self.end
        count = len(found)
        points = (
            found[an][1] if an < count else end,
            found[an + ns][1] if an + ns < count else end,
            found[self.opt][1] if self.opt >= 0 else end,
        )
        sizes = (sum(map(len, added[0])), sum(map(len, added[1])), sum(map(len, added[2])))
        parts = [
            head, wire[12 : points[0]], *added[0], wire[points[0] : points[1]], *added[1],
            wire[points[1] : points[2]], *added[2], wire[points[2] : end],
        ]
        first = end
        for section in range(3):
            if sizes[section]:
                first = points[section]
                break
        if first >= end:
            return b"".join(parts)
        # Where pointers reach what moved: in the records after the first insertion, and in the
        # owners of the new records (which point at the names of the records they sign).
        patches = _pointers(wire, found, first)  # (where in ``wire``, target in ``wire``)
        placed: list[tuple[int, int]] = []  # (where in the output, target in ``wire``)
        for section in range(3):
            at = points[section] + sum(sizes[:section])  # where the section's new records go
            for record in added[section]:
                if record[0] >= 0xC0:
                    target = ((record[0] & 0x3F) << 8) | record[1]
                    if target >= first:
                        placed.append((at, target))
                at += len(record)
        if not patches and not placed:
            return b"".join(parts)
        out = bytearray(b"".join(parts))

        def moved(offset: int) -> int:
            shift = 0
            for point, size in zip(points, sizes, strict=True):
                if offset >= point:
                    shift += size
            return offset + shift

        for where, target in [*((moved(at), target) for at, target in patches), *placed]:
            new = moved(target)
            if new >= _POINTER_LIMIT:
                return None
            _U16.pack_into(out, where, 0xC000 | new)
        return bytes(out)


def _pointers(wire: bytes, found: list[Record], first: int) -> list[tuple[int, int]]:
    """Each compression pointer in the records from offset ``first`` on that reaches ``first`` or
    further, as (where it is, where it points). ``WireError`` for a record whose names are not
    walked (SIG, NXT)."""
    out: list[tuple[int, int]] = []
    for _section, start, rtype, _rclass, _ttl, rdata, end in found:
        if start < first:
            continue
        at = _name_pointer(wire, start)
        if at >= 0:
            target = ((wire[at] & 0x3F) << 8) | wire[at + 1]
            if target >= first:
                out.append((at, target))
        fields = NAME_LAYOUTS.get(rtype)
        if fields is None:
            if rtype in UNWALKED:
                raise WireError("a record whose names are not walked")
            continue
        off = rdata
        for field in fields:
            if field == NAME:
                at = _name_pointer(wire, off)
                if at >= 0:
                    target = ((wire[at] & 0x3F) << 8) | wire[at + 1]
                    if target >= first:
                        out.append((at, target))
                    off = at + 2
                else:
                    off = skip_name(wire, off)
            elif field == CHARACTER_STRING:
                off += 1 + wire[off]
            else:
                off += field
            if off > end:
                raise WireError("name runs past the record data")
    return out


def _name_pointer(wire: bytes, off: int) -> int:
    """Where the name at ``off`` ends in a pointer, or -1 when it ends in the root label."""
    while True:
        n = wire[off]
        if n == 0:
            return -1
        if n >= 0xC0:
            return off
        if n >= 64:
            raise WireError("unknown label type")
        off += n + 1


def owner_at(wire: bytes, start: int) -> bytes:
    """A name to write for the owner of the record at ``start``: its own pointer, a pointer to it,
    or (past what a pointer reaches) the name in full."""
    if wire[start] >= 0xC0:
        return wire[start : start + 2]
    if start < _POINTER_LIMIT:
        return _U16.pack(0xC000 | start)
    return expand_name(wire, start)[0]


def rrsig_records(owner: bytes, rclass: int, ttl: int, rdatas: tuple[bytes, ...]) -> list[bytes]:
    """RRSIG records owned by ``owner`` (wire form) with TTL ``ttl``."""
    pack = RR_FIXED.pack
    return [owner + pack(RRSIG, rclass, ttl, len(rdata)) + rdata for rdata in rdatas]
