"""Structure-aware DNS packets for fuzzing a server: valid queries first, then mutations of them.

``queries()`` builds a query from parts a DNS server has to get right: the names the fuzz Corefile
answers in different ways (whoami, forward, chaos, any, the multisocket worker's own name), names of
exactly 255 and 256 octets, odd labels, unknown types, classes and opcodes, several questions,
records in every section, zero, one or two OPT records with options, and compression pointers
that point backward, forward, at themselves, into the header or past the end. ``packets()``
then applies up to three mutations to the wire bytes: flipped bits, truncation (anywhere, inside
the OPT record, below a header), inserted, deleted or overwritten bytes, huge section counts, QR
set, another opcode, a pointer written anywhere. ``batches(n)`` is ``n`` packets, the unit a test
sends before it checks the server is still well.

The strategies are hypothesis strategies, so a failure shrinks to a small packet and the CI run
is reproducible (``derandomize``); ``bench/fuzz.py`` draws from the same strategies with fresh
seeds.
"""

from __future__ import annotations

import itertools
import struct

from hypothesis import strategies as st

from twisted_coredns.dns import (
    AAAA,
    ANY,
    AXFR,
    CLASS_ANY,
    CLASS_CH,
    CLASS_HS,
    CLASS_IN,
    CLASS_NONE,
    DNSKEY,
    DS,
    IXFR,
    MX,
    NS,
    OPT,
    PTR,
    SOA,
    SRV,
    TXT,
    A,
)
from twisted_coredns.dns.header import HEADER, RR_FIXED, TYPE_CLASS, U16

__all__ = ["NAME_255", "NAME_256", "batches", "name_wire", "packets", "queries"]

# -- names -----------------------------------------------------------------------------------------

SERVED = (
    "whoami.example", "WhoAmI.Example", "a.fwd.test", "txt.fwd.test", "nx.fwd.test", "fwd.test",
    "version.bind", "VERSION.SERVER", "authors.bind", "hostname.bind", "id.server",
    "worker.multisocket", "", "example.org", "sub.a.fwd.test",
)  # fmt: skip
"""Names the fuzz Corefile answers in different ways (see ``target.corefile``)."""

ODD_LABELS = (
    b"a", b"*", b"a.b", b"\\", b"\\.", b"_udp", b"\x00", b" ", b"\xff" * 3, b'"', b"(", b"@", b"$",
    b"x" * 63, b"-", b"\xc0",
)  # fmt: skip


def _labels(text: str) -> list[bytes]:
    return [label.encode("ascii") for label in text.split(".") if label]


def name_wire(labels: list[bytes]) -> bytes:
    """Labels as an uncompressed wire name (lengths are not checked: a fuzzer wants bad ones)."""
    return b"".join(bytes([len(label) & 0xFF]) + label for label in labels) + b"\x00"


NAME_255 = [b"a" * 63, b"b" * 63, b"c" * 63, b"d" * 61]
"""The longest name there is: 255 octets on the wire, root included."""
NAME_256 = [b"a" * 63, b"b" * 63, b"c" * 63, b"d" * 62]
"""One octet too long."""
assert len(name_wire(NAME_255)) == 255 and len(name_wire(NAME_256)) == 256

_label = st.one_of(st.sampled_from(ODD_LABELS), st.binary(min_size=1, max_size=63))
_name_labels = st.one_of(
    st.sampled_from(SERVED).map(_labels),
    st.sampled_from(SERVED).map(_labels),
    st.tuples(st.lists(_label, min_size=1, max_size=3), st.sampled_from(SERVED)).map(
        lambda pair: pair[0] + _labels(pair[1])
    ),
    st.sampled_from([NAME_255, NAME_256, [b"a"] * 127, [b"a"] * 128, [*NAME_255[:3], b"fwd", b"test"]]),
)

POINTER_KINDS = ("backward", "question", "self", "forward", "past-end", "header", "loop")
"""Where a compression pointer may point: at an earlier name, at the question (the usual one),
at itself, at something later, past the end of the packet, into the header, or at a pointer that
points back at it."""

_pointer = st.sampled_from((None,) * 10 + POINTER_KINDS)

# -- header, record types, classes -----------------------------------------------------------------

COMMON_TYPES = (A, AAAA, TXT, ANY, NS, SOA, MX, PTR, SRV, DS, DNSKEY, AXFR, IXFR, OPT, 250, 249, 0, 65535)
_qtype = st.one_of(st.sampled_from(COMMON_TYPES), st.integers(0, 0xFFFF))
_qclass = st.one_of(
    st.sampled_from((CLASS_IN, CLASS_IN, CLASS_IN, CLASS_CH, CLASS_CH, CLASS_HS, CLASS_NONE, CLASS_ANY, 0)),
    st.integers(0, 0xFFFF),
)
_OPCODES = (0, 0, 0, 0, 0, 0, 0, 0, 4, 5, 1, 2, 3, 6, 15)
_FLAGS = (0x0100, 0x0100, 0x0000, 0x0110, 0x0120)  # RD, none, RD+CD, RD+AD
_header_flags = st.one_of(
    st.sampled_from([flags | opcode << 11 for opcode, flags in itertools.product(_OPCODES, _FLAGS)]),
    st.integers(0, 0x7FFF),  # any bits but QR
)


def _weighted(*choices: tuple[int, ...]) -> list[tuple[int, ...]]:
    # Each argument lists one field's values, repeated for weight, the most common first (so a
    # shrunk packet has the common shape).
    return list(itertools.product(*choices))


_shape = st.sampled_from(_weighted(
    (1, 1, 1, 1, 1, 1, 0, 2, 3),  # questions
    (0, 0, 0, 0, 0, 0, 0, 1, 2),  # answer records
    (0, 0, 0, 0, 0, 0, 0, 1, 2),  # authority records
    (1, 1, 1, 0, 2),  # OPT records
    (0, 0, 0, 0, 1, 2),  # other additional records
))  # fmt: skip

# -- EDNS ------------------------------------------------------------------------------------------

# NSID, ECS, EXPIRE, COOKIE, TCP-KEEPALIVE, PADDING, EDE, and anything else.
_option = st.tuples(
    st.one_of(st.sampled_from((3, 8, 9, 10, 11, 12, 15)), st.integers(0, 0xFFFF)),
    st.one_of(st.binary(max_size=40), st.integers(0, 1500).map(bytes)),  # short, or padding-sized
)
_options = st.lists(_option, max_size=3).map(
    lambda options: b"".join(U16.pack(code) + U16.pack(len(data)) + data for code, data in options)
)
_udp_size = st.one_of(
    st.sampled_from((1232, 0, 1, 511, 512, 513, 1400, 4096, 65535)), st.integers(0, 0xFFFF)
)
_opt_fixed = st.sampled_from(_weighted(
    (0, 0, 0, 1, 255),  # extended rcode
    (0, 0, 0, 0, 1, 255),  # version
    (0, 0x8000, 0xFFFF),  # flags (DO)
))  # fmt: skip
# Options, or now and then bytes that may not read as options at all.
_opt_rdata = st.one_of(_options, _options, _options, st.binary(max_size=20))


def _opt(draw: st.DrawFn) -> bytes:
    size = draw(_udp_size)
    ext_rcode, version, flags = draw(_opt_fixed)
    rdata = draw(_opt_rdata)
    return b"\x00" + struct.pack("!HHBBHH", OPT, size, ext_rcode, version, flags, len(rdata)) + rdata


# -- a query ---------------------------------------------------------------------------------------

_FRACTION = st.integers(0, 0xFFFF)


def _scaled(draw: st.DrawFn, n: int) -> int:
    """A number below ``n`` (``n`` > 0), drawn from one fixed strategy: building a strategy per
    draw (``st.integers(0, n - 1)``) costs more than the draw, and a batch makes thousands."""
    return draw(_FRACTION) * n >> 16


class _Builder:
    """The packet as it is assembled, and where its names' pointers are, to aim them once the
    whole packet is known."""

    def __init__(self) -> None:
        self.wire = bytearray()
        self.names: list[int] = []  # where each name starts
        self.pointers: list[tuple[int, str]] = []  # (offset, kind)

    def name(self, labels: list[bytes], pointer: str | None) -> None:
        self.names.append(len(self.wire))
        if pointer is None:
            self.wire += name_wire(labels)
            return
        self.wire += name_wire(labels)[:-1]
        self.pointers.append((len(self.wire), pointer))
        self.wire += b"\xc0\x00"
        if pointer == "loop":
            self.pointers.append((len(self.wire), "loop-back"))
            self.wire += b"\xc0\x00"

    def record(self, draw: st.DrawFn, ttl: int) -> None:
        self.name(draw(_name_labels), draw(_pointer))
        rdata = draw(_rdata)
        self.wire += RR_FIXED.pack(draw(_qtype), draw(_qclass), ttl, len(rdata)) + rdata

    def aim(self, draw: st.DrawFn) -> None:
        """Write each pointer's target, now that the packet's length is known."""
        wire = self.wire
        length = len(wire)
        for offset, kind in self.pointers:
            if kind == "question":
                target = 12
            elif kind == "self":
                target = offset
            elif kind == "backward":
                earlier = [start for start in self.names if start < offset] or [12]
                target = earlier[_scaled(draw, len(earlier))]
            elif kind == "forward":
                target = offset + 1 + _scaled(draw, max(1, length - offset - 1))
            elif kind == "past-end":
                target = length + _scaled(draw, 64)
            elif kind == "header":
                target = _scaled(draw, 12)
            elif kind == "loop":
                target = offset + 2
            else:  # loop-back: the second half of a loop points at the first
                target = offset - 2
            wire[offset : offset + 2] = U16.pack(0xC000 | (target & 0x3FFF))


_rdata = st.one_of(
    st.just(b"\x7f\x00\x00\x01"), st.binary(max_size=24), st.just(b""), st.just(b"\x03abc\x00"),
)


def _query(draw: st.DrawFn) -> bytes:
    b = _Builder()
    questions, answers, authorities, opts, others = draw(_shape)
    b.wire += HEADER.pack(0, draw(_header_flags), questions, answers, authorities, opts + others)
    for _ in range(questions):
        b.name(draw(_name_labels), draw(_pointer))
        b.wire += TYPE_CLASS.pack(draw(_qtype), draw(_qclass))
    for _ in range(answers + authorities):
        b.record(draw, 0)
    opt_at = _scaled(draw, others + 1)
    for index in range(others + 1):
        if index == opt_at:
            for _ in range(opts):
                b.wire += _opt(draw)
        if index < others:
            b.record(draw, 300)
    b.aim(draw)
    return bytes(b.wire)


@st.composite
def queries(draw: st.DrawFn) -> bytes:
    """A query, valid or close to it: the header's counts match the sections."""
    return _query(draw)


# -- mutations -------------------------------------------------------------------------------------

_COUNTS = st.one_of(st.sampled_from((0, 1, 2, 3, 255, 0x7FFF, 0xFFFF)), st.integers(0, 0xFFFF))


_MUTATIONS = st.sampled_from((
    "flip", "flip", "truncate", "truncate", "insert", "delete", "overwrite", "count", "count",
    "qr", "opcode", "short", "pointer", "truncate-opt",
))  # fmt: skip
_BIT = st.integers(0, 7)
_INSERTED = st.binary(min_size=1, max_size=16)
_OVERWRITE = st.binary(min_size=1, max_size=4)
_SMALL = st.integers(1, 16)
_FLIPS = st.integers(1, 4)
_MUTATION_COUNT = st.sampled_from((0, 0, 0, 1, 1, 1, 1, 2, 2, 3))


def _mutate(draw: st.DrawFn, wire: bytes) -> bytes:
    """One mutation of ``wire``."""
    data = bytearray(wire)
    kind = draw(_MUTATIONS)
    size = len(data)
    if kind == "flip":
        for _ in range(draw(_FLIPS)):
            if data:
                data[_scaled(draw, len(data))] ^= 1 << draw(_BIT)
    elif kind == "truncate":
        del data[_scaled(draw, size + 1) :]
    elif kind == "insert":
        at = _scaled(draw, size + 1)
        data[at:at] = draw(_INSERTED)
    elif kind == "delete":
        at = _scaled(draw, size + 1)
        del data[at : at + draw(_SMALL)]
    elif kind == "overwrite":
        at = _scaled(draw, size + 1)
        data[at : at + 4] = draw(_OVERWRITE)
    elif kind == "count" and size >= 12:
        at = 4 + 2 * _scaled(draw, 4)
        data[at : at + 2] = U16.pack(draw(_COUNTS))
    elif kind == "qr" and size >= 3:
        data[2] |= 0x80
    elif kind == "opcode" and size >= 3:
        data[2] = (data[2] & 0x87) | (_scaled(draw, 16) << 3)
    elif kind == "short":
        del data[_scaled(draw, 12) :]
    elif kind == "pointer" and size > 12:
        at = 12 + _scaled(draw, size - 12)
        data[at : at + 2] = U16.pack(0xC000 | _scaled(draw, 0x4000))
    elif kind == "truncate-opt":
        # Cut the packet inside its last OPT record (its fixed part, or its options).
        at = wire.rfind(b"\x00\x00\x29")
        if at >= 12:
            del data[at + 1 + _scaled(draw, size - at) :]
    return bytes(data)


@st.composite
def packets(draw: st.DrawFn) -> bytes:
    """A query, then none to three mutations of it (none for about a third of packets)."""
    wire = _query(draw)
    for _ in range(draw(_MUTATION_COUNT)):
        wire = _mutate(draw, wire)
    return wire


def batches(size: int) -> st.SearchStrategy[list[bytes]]:
    """``size`` packets. A failing batch shrinks packet by packet, not in length: the culprit
    ends up among packets that are the simplest query."""
    return st.lists(packets(), min_size=size, max_size=size)
