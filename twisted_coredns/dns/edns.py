"""EDNS0 at the wire level: a message's OPT record found, read and replaced, and its options split
and joined, without building a dnspython message.

Plugins that change the OPT record of a query (``bufsize``, ``rewrite edns0``) or of a reply
(``nsid``, ``rewrite``'s revert) use these; the record itself is the one RFC 6891 describes: the
root as owner, the UDP size in the class, the extended rcode, version and flags in the TTL.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from .constants import OPT, TSIG
from .header import HEADER, U16
from .wire import records, skip_question

__all__ = ["Opt", "join_options", "read_opt", "split_options", "with_opt", "without_opt"]

_OPT_FIXED = struct.Struct("!HHBBHH")  # type, udp size, extended rcode, version, flags, rdlength
_OPTION = struct.Struct("!HH")


@dataclass
class Opt:
    """An OPT record's fields; ``options`` as ``(code, data)`` pairs in their order."""

    udp_size: int
    ext_rcode: int = 0
    version: int = 0
    flags: int = 0
    options: list[tuple[int, bytes]] | None = None

    def to_wire(self) -> bytes:
        rdata = join_options(self.options or [])
        return b"\x00" + _OPT_FIXED.pack(OPT, self.udp_size, self.ext_rcode, self.version, self.flags,
                                         len(rdata)) + rdata


def split_options(rdata: bytes) -> list[tuple[int, bytes]]:
    """The options of an OPT record's data; a truncated last option is dropped."""
    found = []
    off = 0
    while off + 4 <= len(rdata):
        code, length = _OPTION.unpack_from(rdata, off)
        end = off + 4 + length
        if end > len(rdata):
            break
        found.append((code, rdata[off + 4 : end]))
        off = end
    return found


def join_options(options: list[tuple[int, bytes]]) -> bytes:
    return b"".join(_OPTION.pack(code, len(data)) + data for code, data in options)


def _find(wire: bytes) -> tuple[int, int] | None:
    """Where the OPT record starts and ends, or None."""
    _id, _flags, qd, an, ns, ar = HEADER.unpack_from(wire)
    off = skip_question(wire, qd)
    for section, start, rtype, _class, _ttl, _rdata, end in records(wire, off, an, ns, ar):
        if section == 2 and rtype == OPT:
            return start, end
    return None


def _tsig_start(wire: bytes) -> int:
    """Where a TSIG record that ends the message starts, or the message's length."""
    _id, _flags, qd, an, ns, ar = HEADER.unpack_from(wire)
    last = len(wire)
    off = skip_question(wire, qd)
    for section, start, rtype, _class, _ttl, _rdata, end in records(wire, off, an, ns, ar):
        if section == 2 and rtype == TSIG and end == len(wire):
            last = start
    return last


def read_opt(wire: bytes) -> Opt | None:
    """The OPT record of a message, or None when it has none. ``WireError`` for a message whose
    records do not parse."""
    where = _find(wire)
    if where is None:
        return None
    start = where[0]
    _type, size, ext, version, flags, rdlen = _OPT_FIXED.unpack_from(wire, start + 1)
    return Opt(size, ext, version, flags, split_options(wire[start + 11 : start + 11 + rdlen]))


def without_opt(wire: bytes) -> bytes:
    """The message with its OPT record taken out (ARCOUNT lowered), or as it is without one."""
    where = _find(wire)
    if where is None:
        return wire
    start, end = where
    arcount = U16.unpack_from(wire, 10)[0]
    return wire[:10] + U16.pack(arcount - 1) + wire[12:start] + wire[end:]


def with_opt(wire: bytes, opt: Opt) -> bytes:
    """The message with ``opt`` as its OPT record: in the old one's place, or last in the
    additional section (before a TSIG record, which must stay last)."""
    where = _find(wire)
    if where is not None:
        start, end = where
        return wire[:start] + opt.to_wire() + wire[end:]
    arcount = U16.unpack_from(wire, 10)[0]
    at = _tsig_start(wire)
    return wire[:10] + U16.pack(arcount + 1) + wire[12:at] + opt.to_wire() + wire[at:]
