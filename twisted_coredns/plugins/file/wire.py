"""The answer's sections in wire form, with name compression, without dnspython's encoder.

An answer that is not in the answer cache is encoded here. dnspython's ``RRset.to_wire`` builds a
``Name`` for every suffix of every name it compresses and a ``BytesIO`` per record; that was 80%
of the cost of a cache miss. Here each RRset is turned once into a template (its owner's labels,
its type, class and TTL, and each record's data as bytes, with the names that RFC 1035 lets a
server compress kept apart as labels), and encoding a reply is joining bytes and looking up
suffixes in one dict. Templates are kept per zone, by RRset, in a bounded map.

Compression follows dnspython's (and CoreDNS's) choices: owner names always; names inside the
data of NS, CNAME, PTR, MB, MD, MF, MG, MR, MX and SOA; never inside other types (SRV, DNAME,
RRSIG, NSEC... RFC 3597 4). Suffixes are matched case-insensitively, as both do.
"""

from __future__ import annotations

import struct

import dns.name
import dns.rdata
import dns.rdtypes.ANY.SOA
import dns.rdtypes.mxbase
import dns.rdtypes.nsbase
import dns.rrset

__all__ = ["SectionWriter", "Templates", "question_suffixes"]

_HEADER = struct.Struct("!HHIH")
_POINTER = struct.Struct("!H")
_SOA_NUMBERS = struct.Struct("!IIIII")
_MAX_POINTER = 0x3FFF
_TEMPLATE_LIMIT = 50_000
"""Templates kept per zone beyond its own RRsets; past that the map starts again (wildcard and
DNAME answers make new RRsets for each name asked)."""

_NamePart = tuple[tuple[bytes, ...], tuple[tuple[bytes, ...], ...]]
"""A name to write: its labels, and for each label the lower-case suffix from it on (the key)."""
_Data = bytes | list[bytes | _NamePart]


def _name_part(name: dns.name.Name) -> _NamePart:
    labels = name.labels
    lowered = tuple(label.lower() for label in labels)
    return labels, tuple(lowered[i:] for i in range(len(labels)))


def _data(rdata: dns.rdata.Rdata) -> _Data:
    """A record's data: bytes, or, when it holds names that may be compressed, a list of bytes
    and names."""
    if isinstance(rdata, dns.rdtypes.nsbase.NSBase) and not isinstance(
        rdata, dns.rdtypes.nsbase.UncompressedNS
    ):
        return [_name_part(rdata.target)]
    if isinstance(rdata, dns.rdtypes.mxbase.MXBase) and not isinstance(
        rdata, dns.rdtypes.mxbase.UncompressedMX
    ):
        return [_POINTER.pack(rdata.preference), _name_part(rdata.exchange)]
    if isinstance(rdata, dns.rdtypes.ANY.SOA.SOA):
        numbers = _SOA_NUMBERS.pack(rdata.serial, rdata.refresh, rdata.retry, rdata.expire, rdata.minimum)
        return [_name_part(rdata.mname), _name_part(rdata.rname), numbers]
    wire = rdata.to_wire()
    assert wire is not None  # without a file, to_wire returns the bytes
    return wire


class _Template:
    __slots__ = ("data", "fixed", "owner", "rrset")

    def __init__(self, rrset: dns.rrset.RRset) -> None:
        self.rrset = rrset  # held, so that the id this template is kept under stays its own
        self.owner = _name_part(rrset.name)
        self.fixed = (rrset.rdtype, rrset.rdclass, rrset.ttl)
        self.data = [_data(rdata) for rdata in rrset]


class Templates:
    """The templates of one zone's RRsets, made on first use."""

    __slots__ = ("_by_id", "limit")

    def __init__(self, rrsets: int = 0) -> None:
        self._by_id: dict[int, _Template] = {}
        self.limit = rrsets + _TEMPLATE_LIMIT
        """``rrsets``: how many the zone holds, so that a large zone's templates all stay."""

    def of(self, rrset: dns.rrset.RRset) -> _Template:
        found = self._by_id.get(id(rrset))
        if found is None or found.rrset is not rrset:
            if len(self._by_id) >= self.limit:
                self._by_id.clear()
            found = self._by_id[id(rrset)] = _Template(rrset)
        return found


class SectionWriter:
    """Writes records after a message's header and question, compressing names against what it
    has written (and against the question, when the caller says where its suffixes are)."""

    __slots__ = ("compress", "out")

    def __init__(self, head: bytes, compress: dict[tuple[bytes, ...], int] | None = None) -> None:
        self.out = bytearray(head)
        self.compress: dict[tuple[bytes, ...], int] = compress if compress is not None else {}

    def name(self, part: _NamePart) -> None:
        labels, keys = part
        out = self.out
        compress = self.compress
        for i in range(len(labels) - 1):
            key = keys[i]
            offset = compress.get(key)
            if offset is not None:
                out += _POINTER.pack(0xC000 | offset)
                return
            here = len(out)
            if here <= _MAX_POINTER:
                compress[key] = here
            label = labels[i]
            out.append(len(label))
            out += label
        out.append(0)

    def rrset(self, templates: Templates, rrset: dns.rrset.RRset) -> int:
        """Write every record of ``rrset``; the number written."""
        template = templates.of(rrset)
        rdtype, rdclass, ttl = template.fixed
        out = self.out
        for data in template.data:
            self.name(template.owner)
            if type(data) is bytes:
                out += _HEADER.pack(rdtype, rdclass, ttl, len(data))
                out += data
                continue
            at = len(out)
            out += _HEADER.pack(rdtype, rdclass, ttl, 0)
            start = len(out)
            for piece in data:
                if type(piece) is bytes:
                    out += piece
                else:
                    self.name(piece)  # type: ignore[arg-type]
            out[at + 8 : at + 10] = _POINTER.pack(len(out) - start)
        return len(template.data)


def question_suffixes(labels: tuple[bytes, ...]) -> dict[tuple[bytes, ...], int]:
    """The compression table of a question name spelled ``labels`` (lower case) at offset 12."""
    table: dict[tuple[bytes, ...], int] = {}
    offset = 12
    for i in range(len(labels) - 1):
        table[labels[i:]] = offset
        offset += len(labels[i]) + 1
    return table
