"""The reply put back for the client, edited in its bytes (CoreDNS's ``ResponseReverter``): the
client's question in place of the one the chain was asked, the names the matched rules turn back,
TTLs clamped, the rcode changed, EDNS options restored.

Re-encoding a reply with dnspython costs some 250 µs; these edits cost a few. The subtle part is
compression. A name in a reply is often a pointer to an earlier one, most often to the question,
and the question is exactly what changes:

- each name is read with the names it points to, giving its text before the edit and the text it
  would have after it if its bytes were kept (a pointer into the question now reaches the client's
  name);
- the rules' rewriters give the text it must have; when keeping the bytes gives that text, they are
  kept (with the pointer moved, when something before its target changed length), otherwise the
  name is written out in full;
- a name that pointed into the middle of something rewritten is written out in full too, as is one
  that points nowhere a name was read.

A reply that spells out the name the query was rewritten to gets that name replaced. What the walk
does not know how to edit (a name that points forward, a SIG record) raises ``Fallback`` and the
caller re-encodes the reply with dnspython.

Most replies take a shorter lane: when every name in them is the root or ends in a pointer to the
question (``whoami``'s, a cache's, most upstreams' simple answers) and the rewriters turn the name
asked back into the client's, putting the client's question in place is the whole edit. Whether a
reply's records have that shape depends on their bytes alone, so it is remembered for short ones.
"""

from __future__ import annotations

import re
import struct
from bisect import bisect_right
from collections.abc import Sequence
from typing import Any

from ...dns.constants import OPT, RCODE_MASK
from ...dns.edns import Opt, read_opt, with_opt
from ...dns.header import COUNTS, RR_FIXED, U16, U32
from ...dns.names import label_text, name_wire
from ...dns.rdata_names import CHARACTER_STRING, NAME, NAME_LAYOUTS, UNWALKED
from ...dns.wire import WireError, read_name, records
from .answers import VALUE_TYPES, FieldRule, RcodeAnswer, Reversal
from .matching import StringRewriter

__all__ = ["Fallback", "edit_message_fields", "edit_reply"]

_PLAIN = re.compile(rb"[A-Za-z0-9_*/.-]*").fullmatch
_DEFAULT_PAYLOAD = 1232
"""The UDP size of an OPT record added to carry an extended rcode (dnspython's ``use_edns(0)``)."""


class Fallback(Exception):
    """A reply the byte-level edit does not handle; the caller re-encodes it with dnspython."""


def _prefix(raw: list[bytes]) -> str:
    """Labels as presentation text, each followed by its dot."""
    if not raw:
        return ""
    joined = b".".join(raw)
    if _PLAIN(joined) is not None and joined.count(b".") == len(raw) - 1:
        return joined.decode("ascii") + "."
    return "".join(label_text(label) + "." for label in raw)


def _join(prefix: str, tail: str) -> str:
    """A name from labels and the (fully qualified) name they sit in front of."""
    if tail == ".":
        return prefix or "."
    return prefix + tail


_RAW, _PLACES, _TAIL_OLD, _TAIL_NEW, _WRITTEN = range(5)
"""The fields of a name read in place (a list, cheaper to make than an object): its labels, where
each label (and the final pointer or root) sits, the texts of what its pointer reaches before
the edit and after it if the bytes are kept (None when the edit cuts what it reaches), and its
new text when it was written out again (None when kept)."""


class _Editor:
    """One reply's edits, in the order of the bytes they replace."""

    __slots__ = ("changes", "ends", "q_end", "q_new", "q_old", "read", "registered", "seen", "totals",
                 "wire")

    def __init__(self, wire: bytes, q_end: int, q_old: str, q_new: str) -> None:
        self.wire = wire
        self.q_end = q_end
        self.q_old = q_old
        self.q_new = q_new
        self.changes: list[tuple[int, int, bytes]] = []
        self.ends: list[int] = []
        """The old end of each change that alters the length, in order..."""
        self.totals: list[int] = []
        """...and the length gained (or lost) up to and including it."""
        self.read: list[list[Any]] = []
        """The names read so far, in order."""
        self.seen: dict[int, tuple[list[Any], int]] = {}
        """Each place a later pointer may reach in the first ``registered`` names read: the name
        and the index of its label there. Filled when a pointer reaches past the question."""
        self.registered = 0

    def change(self, start: int, end: int, data: bytes) -> None:
        self.changes.append((start, end, data))
        grown = len(data) - (end - start)
        if grown:
            self.ends.append(end)
            self.totals.append((self.totals[-1] if self.totals else 0) + grown)

    def grown(self) -> int:
        return self.totals[-1] if self.totals else 0

    def moved(self, offset: int) -> int:
        """Where the old offset ``offset`` is after the changes made before it."""
        index = bisect_right(self.ends, offset)
        return offset + self.totals[index - 1] if index else offset

    def reach(self, target: int) -> tuple[str, str | None]:
        """The text a pointer to ``target`` reaches, before and after the edit (None: cut)."""
        if target < self.q_end:
            if target == 12:
                return self.q_old, self.q_new
            if target < 12:
                raise Fallback
            return read_name(self.wire, target, False)[0], None  # a suffix of the old question
        seen = self.seen
        found = seen.get(target)
        if found is None:
            while self.registered < len(self.read):
                name = self.read[self.registered]
                self.registered += 1
                for index, place in enumerate(name[_PLACES]):
                    seen[place] = (name, index)
            found = seen.get(target)
            if found is None:
                raise Fallback  # not where a name was read: forward, or into data not walked
        name, index = found
        prefix = _prefix(name[_RAW][index:])
        written = name[_WRITTEN]
        if written is not None:
            if index == 0:
                return _join(prefix, name[_TAIL_OLD]), written
            return _join(prefix, name[_TAIL_OLD]), None
        tail_new = name[_TAIL_NEW]
        return _join(prefix, name[_TAIL_OLD]), None if tail_new is None else _join(prefix, tail_new)

    def name(self, start: int, rewriters: Sequence[StringRewriter]) -> int:
        """Read the name at ``start``, keep or replace it; the offset after it in place."""
        wire = self.wire
        n = wire[start]
        if n == 0xC0 and wire[start + 1] == 12:
            # The question's name, the most common name of all in a reply.
            raw: list[bytes] = []
            places = [start]
            end = start + 2
            target = 12
            tail_old: str = self.q_old
            tail_new: str | None = self.q_new
        else:
            off = start
            raw = []
            places = []
            while True:
                places.append(off)
                if n == 0:
                    end, target = off + 1, -1
                    break
                if n >= 0xC0:
                    end, target = off + 2, ((n & 0x3F) << 8) | wire[off + 1]
                    break
                if n > 63:
                    raise Fallback
                raw.append(wire[off + 1 : off + 1 + n])
                off += n + 1
                n = wire[off]
            if target < 0:
                tail_old = tail_new = "."
            elif target >= start:
                raise Fallback  # a pointer forward (or to itself)
            else:
                tail_old, tail_new = self.reach(target)
        name: list[Any] = [raw, places, tail_old, tail_new, None]
        self.read.append(name)
        if rewriters:
            prefix = _prefix(raw)
            wanted = _join(prefix, tail_old)
            for rewrite in rewriters:
                wanted = rewrite(wanted)
            keep = tail_new is not None and wanted == _join(prefix, tail_new)
        else:
            keep = tail_new == tail_old
            if not keep:
                wanted = _join(_prefix(raw), tail_old)
        if keep:
            if target > 12:  # the question never moves
                moved = self.moved(target)
                if moved != target:
                    if moved >= 0x4000:
                        raise Fallback
                    self.change(end - 2, end, U16.pack(0xC000 | moved))
            return end
        try:
            data = name_wire(wanted)
        except ValueError:
            raise Fallback from None  # not a name: dnspython's path reports it
        self.change(start, end, data)
        name[_WRITTEN] = wanted
        return end

    def output(self) -> bytes:
        wire = self.wire
        chunks = []
        pos = 0
        for start, end, data in sorted(self.changes):
            chunks.append(wire[pos:start])
            chunks.append(data)
            pos = end
        chunks.append(wire[pos:])
        return b"".join(chunks)


def edit_reply(
    wire: bytes,
    question: bytes,
    qname: str,
    asked_question: bytes,
    asked: str,
    reversal: Reversal,
    inverse: bool = False,
) -> bytes:
    """``wire`` with ``question`` (the client's, type and class included; ``qname`` its name as
    text) as its question, and ``reversal``'s edits: the owner names through its ``owner``
    rewriters and the names of ``VALUE_TYPES``'s values through its ``value`` rewriters (each list
    applied in order), TTLs clamped by each of its ``ttls`` in order, the OPT record aside (its
    ``fields`` are ``edit_message_fields``'s). ``asked_question`` and ``asked`` are the question the
    chain was asked and its name (the reply's question, usually). With ``inverse`` the caller
    knows that the rewriters turn ``asked``, with any labels in front, into ``qname`` with the same
    labels (``Reversal.inverse``). ``Fallback`` when the reply is not one these edits handle."""
    try:
        qd, an, ns, ar = COUNTS.unpack_from(wire, 4)
        if qd != 1:
            raise Fallback
        lane_tried = False
        if wire.startswith(asked_question, 12):
            q_end = 8 + len(asked_question)
            q_old = asked
            if inverse and reversal.owner:
                # The commonest reply to a renamed query first (see ``_pointers_to_question``).
                edited = _pointers_to_question(wire, q_end, an + ns + ar, question, q_old, qname, reversal,
                                               True)
                if edited is not None:
                    return edited
                lane_tried = True
        else:
            inverse = False
            off = 12
            n = wire[off]
            while n:
                if n > 63:
                    raise Fallback
                off += n + 1
                n = wire[off]
            q_end = off + 1
            q_old = read_name(wire, 12, False)[0]
        owner, value, ttls = reversal.owner, reversal.value, reversal.ttls
        if not owner and not value and wire[12:q_end] == question[:-4]:
            # Names, and what points at them, stay as they are: only the type and class change.
            out = wire[:12] + question + wire[q_end + 4 :]
            return _clamped(out, q_end + 4, an + ns + ar, ttls) if ttls else out
        if not lane_tried and (inverse or _keeps_question(owner, q_old, qname)):
            edited = _pointers_to_question(wire, q_end, an + ns + ar, question, q_old, qname, reversal,
                                           inverse)
            if edited is not None:
                return edited
        editor = _Editor(wire, q_end, q_old, qname)
        if wire[12 : q_end + 4] != question:
            editor.change(12, q_end + 4, question)
        off = q_end + 4
        length = len(wire)
        name = editor.name
        for _ in range(an + ns + ar):
            if wire[off] == 0 and wire[off + 1] == 0 and wire[off + 2] == OPT:
                end = off + 1  # the OPT record: its root owner is not a name the rules rename
            else:
                end = name(off, owner)
            rtype, _rclass, ttl, rdlen = RR_FIXED.unpack_from(wire, end)
            if ttls and rtype != OPT:
                clamped = ttl
                for low, high in ttls:
                    if clamped < low:
                        clamped = low
                    elif clamped > high:
                        clamped = high
                if clamped != ttl:
                    editor.change(end + 4, end + 8, U32.pack(clamped))
            data = end + 10
            off = data + rdlen
            if off > length:
                raise Fallback
            layout = NAME_LAYOUTS.get(rtype)
            if layout is not None:
                before = len(editor.changes)
                grown = editor.grown()
                rewriters = value if rtype in VALUE_TYPES else ()
                at = data
                for item in layout:
                    if item == NAME:
                        at = name(at, rewriters)
                        rewriters = ()
                    elif item == CHARACTER_STRING:
                        at += 1 + wire[at]
                    else:
                        at += item
                if at != off:
                    raise Fallback
                if editor.grown() != grown:
                    size = rdlen + editor.grown() - grown
                    if size > 0xFFFF:
                        raise Fallback
                    editor.changes.insert(before, (end + 8, end + 10, U16.pack(size)))
            elif rtype in UNWALKED:
                raise Fallback
        return editor.output()
    except (IndexError, struct.error, WireError):
        raise Fallback from None


def _keeps_question(rewriters: Sequence[StringRewriter], old: str, new: str) -> bool:
    """Whether every name made of labels in front of a pointer to the question (the name ``old``)
    turns, through ``rewriters``, into the same labels in front of ``new``: then such names keep
    their bytes when the question's name becomes ``new``."""
    for rewrite in rewriters:
        if not rewrite.keeps_labels(old):
            return False
        old = rewrite(old)
    return old == new


class _Shape:
    """What the records of a reply are, as far as the question lane cares: each name is the root
    or labels in front of a pointer to the question."""

    __slots__ = ("question_other", "question_value", "root_owner", "root_value", "ttls")

    def __init__(self) -> None:
        self.question_value = False
        """A value (of ``VALUE_TYPES``) points at the question."""
        self.question_other = False
        """Another name in record data points at the question."""
        self.root_owner = False
        self.root_value = False
        self.ttls: list[tuple[int, int]] = []
        """Where each record's TTL is (from the end of the question) and its value, OPT aside."""


_SHAPES: dict[bytes, _Shape] = {}
_SHAPES_KEPT = 4096
_SHAPE_LONGEST = 1024
"""Replies whose records are no longer than this have their shape remembered (at most
``_SHAPES_KEPT`` of them): a whoami or cache answer, or an upstream's for a popular name, repeats
byte for byte after its question."""
_OTHER_SHAPE = _Shape()
"""The shape of records that are not all the root or pointers to the question."""


def _shape(records: bytes, count: int) -> _Shape:
    """The shape of ``count`` records (the reply after its question), or ``_OTHER_SHAPE`` when a
    name in them is neither the root nor ends in a pointer to the question, or a SIG record is
    there. Offsets are from the start of ``records``, and a pointer to the question is ``c0 0c``."""
    shape = _Shape()
    off = 0
    try:
        for _ in range(count):
            n = records[off]
            opt = False
            if n == 0:
                opt = records[off + 1] == 0 and records[off + 2] == OPT
                shape.root_owner = shape.root_owner or not opt
                off += 1
            else:
                while n and n < 0x40:
                    off += n + 1
                    n = records[off]
                if n != 0xC0 or records[off + 1] != 12:
                    return _OTHER_SHAPE
                off += 2
            rtype, _rclass, ttl, rdlen = RR_FIXED.unpack_from(records, off)
            if not opt:
                shape.ttls.append((off + 4, ttl))
            at = off + 10
            off = at + rdlen
            layout = NAME_LAYOUTS.get(rtype)
            if layout is not None:
                is_value = rtype in VALUE_TYPES
                for item in layout:
                    if item == NAME:
                        n = records[at]
                        if n == 0:
                            if is_value:
                                shape.root_value = True
                            at += 1
                        else:
                            while n and n < 0x40:
                                at += n + 1
                                n = records[at]
                            if n != 0xC0 or records[at + 1] != 12:
                                return _OTHER_SHAPE
                            if is_value:
                                shape.question_value = True
                            else:
                                shape.question_other = True
                            at += 2
                        is_value = False
                    elif item == CHARACTER_STRING:
                        at += 1 + records[at]
                    else:
                        at += item
                if at != off:
                    return _OTHER_SHAPE
            elif rtype in UNWALKED:
                return _OTHER_SHAPE
    except (IndexError, struct.error):
        return _OTHER_SHAPE
    return shape if off <= len(records) else _OTHER_SHAPE


def _pointers_to_question(
    wire: bytes, q_end: int, count: int, question: bytes, q_old: str, qname: str, reversal: Reversal,
    inverse: bool,
) -> bytes | None:
    """The edit of the commonest reply, whose every name is the root or ends in a pointer to the
    question (a reply that ``whoami``, ``file`` or most upstreams write): when the rewriters turn
    each such name into the same labels in front of the client's name (``_keeps_question``; the
    caller checked the owners), the client's question in place is the whole edit, and no name
    needs reading. None when the reply is not of that shape."""
    records = wire[q_end + 4 :]
    shape = _SHAPES.get(records)
    if shape is None:
        shape = _shape(records, count)
        if len(records) <= _SHAPE_LONGEST:
            if len(_SHAPES) >= _SHAPES_KEPT:
                _SHAPES.clear()
            _SHAPES[records] = shape
    if shape is _OTHER_SHAPE:
        return None
    if shape.question_other and q_old != qname:
        return None  # no rule turns that name back: it must keep its text, so it cannot point here
    if shape.question_value and not (inverse or _keeps_question(reversal.value, q_old, qname)):
        return None
    if shape.root_owner and not reversal.owner_keeps_root:
        return None
    if shape.root_value and not reversal.value_keeps_root:
        return None
    ttls = reversal.ttls
    if not ttls:
        return wire[:12] + question + records
    out = bytearray(records)
    for at, ttl in shape.ttls:
        clamped = ttl
        for low, high in ttls:
            if clamped < low:
                clamped = low
            elif clamped > high:
                clamped = high
        if clamped != ttl:
            U32.pack_into(out, at, clamped)
    return wire[:12] + question + bytes(out)


def _clamped(wire: bytes, off: int, count: int, ttls: Sequence[tuple[int, int]]) -> bytes:
    """``wire`` with the TTL of each record (the OPT record aside) clamped by each range in turn."""
    out = bytearray(wire)
    for _section, _start, rtype, _rclass, at, _rdata, _end in records(wire, off, count, 0, 0):
        if rtype == OPT:
            continue
        ttl = clamped = U32.unpack_from(wire, at)[0]
        for low, high in ttls:
            if clamped < low:
                clamped = low
            elif clamped > high:
                clamped = high
        if clamped != ttl:
            U32.pack_into(out, at, clamped)
    return bytes(out)


def edit_message_fields(wire: bytes, rules: Sequence[FieldRule]) -> tuple[bytes, int]:
    """The rcode and OPT option rules of a reply (in the order to apply them), as CoreDNS applies
    them: once for each record of the reply, or once when it has none (an option rule then has
    no OPT record to act on anyway). The edited reply and its rcode."""
    _qd, an, ns, ar = COUNTS.unpack_from(wire, 4)
    opt = read_opt(wire)
    rcode = (wire[3] & RCODE_MASK) | (opt.ext_rcode << 4 if opt is not None else 0)
    old_rcode = rcode
    options = list(opt.options or []) if opt is not None else None
    old_options = list(options) if options is not None else None
    for _ in range(max(an + ns + ar, 1)):
        for rule in rules:
            if isinstance(rule, RcodeAnswer):
                if rcode == rule.old:
                    rcode = rule.new
            elif options is not None:
                rule.options(options)
    if rcode == old_rcode and options == old_options:
        return wire, rcode
    flags = (U16.unpack_from(wire, 2)[0] & ~RCODE_MASK) | (rcode & RCODE_MASK)
    wire = wire[:2] + U16.pack(flags) + wire[4:]
    if opt is None:
        if rcode <= RCODE_MASK:
            return wire, rcode
        # CoreDNS cannot write an extended rcode without an OPT record (miekg's
        # ErrExtendedRcode) and the client gets nothing; one is added instead.
        opt = Opt(_DEFAULT_PAYLOAD, 0, 0, 0, [])
    opt.ext_rcode = rcode >> 4
    opt.options = options
    return with_opt(wire, opt), rcode
