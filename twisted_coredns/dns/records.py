"""Resource records built straight to wire bytes, for ``reply()`` and ``reply_records()``.

Each builder returns one encoded record. An owner is either presentation text (written in full)
or wire bytes; ``QNAME`` is the two-byte pointer to the question's name, which every reply built by
``reply()`` starts with, so an answer owned by the question costs two bytes and no name encoding.
``below("_udp")`` is a label in front of the question's name, as a pointer too. Names inside the
record data (targets, hosts) are written in full: some must never be compressed (SRV, RFC 2782),
and the rest need not be.

Builders are small and cheap enough to call per query; a plugin that answers the same record again
and again can still build it once and keep the bytes.
"""

from __future__ import annotations

import socket
import struct

from .constants import AAAA as TYPE_AAAA
from .constants import CLASS_IN, HINFO, MX, NS, PTR, SOA, SRV, TXT
from .constants import CNAME as TYPE_CNAME
from .constants import DNAME as TYPE_DNAME
from .constants import A as TYPE_A
from .header import RR_FIXED
from .names import name_wire

__all__ = [
    "QNAME",
    "a",
    "aaaa",
    "below",
    "character_strings",
    "cname",
    "dname",
    "hinfo",
    "mx",
    "ns",
    "ptr",
    "rr",
    "soa",
    "srv",
    "txt",
]

QNAME = b"\xc0\x0c"
"""The owner "the question's name": a compression pointer to offset 12, where the question starts."""

Owner = str | bytes
# The fixed part of a record and of its data in one struct: SRV is built per query by whoami.
_SRV_RR = struct.Struct("!HHIHHHH")
_MX_FIXED = struct.Struct("!H")
_SOA_FIXED = struct.Struct("!IIIII")


def _owner(owner: Owner) -> bytes:
    return owner if type(owner) is bytes else name_wire(owner)


def below(label: str | bytes, parent: Owner = QNAME) -> bytes:
    """The owner ``label.parent`` in wire form (``below("_tcp")`` is ``_tcp.<question name>``)."""
    raw = label.encode("ascii") if isinstance(label, str) else label
    if not 0 < len(raw) < 64:
        raise ValueError(f"a label is 1 to 63 octets, not {len(raw)}")
    return bytes((len(raw),)) + raw + _owner(parent)


def rr(owner: Owner, rtype: int, ttl: int, rdata: bytes, *, rclass: int = CLASS_IN) -> bytes:
    """Any record, from its rdata in wire form."""
    return _owner(owner) + RR_FIXED.pack(rtype, rclass, ttl, len(rdata)) + rdata


def a(owner: Owner, ttl: int, address: str, *, rclass: int = CLASS_IN) -> bytes:
    """An A record; ``address`` in dotted-quad form (``ValueError`` for anything else)."""
    try:
        packed = socket.inet_pton(socket.AF_INET, address)
    except OSError:
        raise ValueError(f"not an IPv4 address: {address!r}") from None
    return rr(owner, TYPE_A, ttl, packed, rclass=rclass)


def aaaa(owner: Owner, ttl: int, address: str, *, rclass: int = CLASS_IN) -> bytes:
    """An AAAA record; a zone suffix (``fe80::1%eth0``) is not part of the address and is dropped."""
    try:
        packed = socket.inet_pton(socket.AF_INET6, address.partition("%")[0])
    except OSError:
        raise ValueError(f"not an IPv6 address: {address!r}") from None
    return rr(owner, TYPE_AAAA, ttl, packed, rclass=rclass)


def character_strings(*texts: str | bytes) -> bytes:
    """``<character-string>``s: each text cut into strings of at most 255 octets (a longer TXT
    string becomes several, as CoreDNS's ``split255`` makes them); an empty text is one empty
    string. ``str`` is encoded as UTF-8."""
    out = bytearray()
    for text in texts:
        raw = text.encode("utf-8", "surrogateescape") if isinstance(text, str) else text
        if not raw:
            out.append(0)
            continue
        for i in range(0, len(raw), 255):
            chunk = raw[i : i + 255]
            out.append(len(chunk))
            out += chunk
    return bytes(out)


def txt(owner: Owner, ttl: int, *texts: str | bytes, rclass: int = CLASS_IN) -> bytes:
    """A TXT record holding ``texts`` (none at all is one empty string)."""
    return rr(owner, TXT, ttl, character_strings(*texts) if texts else b"\x00", rclass=rclass)


def hinfo(owner: Owner, ttl: int, cpu: str | bytes, os: str | bytes, *, rclass: int = CLASS_IN) -> bytes:
    """An HINFO record (what RFC 8482 answers ANY with)."""
    return rr(owner, HINFO, ttl, character_strings(cpu) + character_strings(os), rclass=rclass)


def _name_record(rtype: int, owner: Owner, ttl: int, target: str, rclass: int) -> bytes:
    return rr(owner, rtype, ttl, name_wire(target), rclass=rclass)


def ptr(owner: Owner, ttl: int, target: str, *, rclass: int = CLASS_IN) -> bytes:
    return _name_record(PTR, owner, ttl, target, rclass)


def cname(owner: Owner, ttl: int, target: str, *, rclass: int = CLASS_IN) -> bytes:
    return _name_record(TYPE_CNAME, owner, ttl, target, rclass)


def dname(owner: Owner, ttl: int, target: str, *, rclass: int = CLASS_IN) -> bytes:
    return _name_record(TYPE_DNAME, owner, ttl, target, rclass)


def ns(owner: Owner, ttl: int, host: str, *, rclass: int = CLASS_IN) -> bytes:
    return _name_record(NS, owner, ttl, host, rclass)


def mx(owner: Owner, ttl: int, preference: int, exchange: str, *, rclass: int = CLASS_IN) -> bytes:
    return rr(owner, MX, ttl, _MX_FIXED.pack(preference) + name_wire(exchange), rclass=rclass)


def srv(
    owner: Owner, ttl: int, priority: int, weight: int, port: int, target: str, *, rclass: int = CLASS_IN
) -> bytes:
    """An SRV record; the target is never compressed (RFC 2782)."""
    target_wire = name_wire(target)
    fixed = _SRV_RR.pack(SRV, rclass, ttl, 6 + len(target_wire), priority, weight, port)
    return _owner(owner) + fixed + target_wire


def soa(
    owner: Owner,
    ttl: int,
    mname: str,
    rname: str,
    serial: int,
    refresh: int,
    retry: int,
    expire: int,
    minimum: int,
    *,
    rclass: int = CLASS_IN,
) -> bytes:
    """An SOA record (the authority of a negative answer)."""
    rdata = name_wire(mname) + name_wire(rname) + _SOA_FIXED.pack(serial, refresh, retry, expire, minimum)
    return rr(owner, SOA, ttl, rdata, rclass=rclass)


_OPT_FIXED = struct.Struct("!BHHBBHH")  # root owner, type, size, ext rcode, version, flags, rdlength


def opt_with_ede(info_code: int, extra_text: str = "", udp_size: int = 4096, do: bool = True) -> bytes:
    """An OPT record carrying one Extended DNS Error (RFC 8914), as miekg's ``SetEdns0`` plus an
    ``EDNS0_EDE`` option builds it (``acl``'s Blocked and Filtered, ``template``'s ``ederror``)."""
    text = extra_text.encode()
    option = struct.pack("!HHH", 15, 2 + len(text), info_code) + text
    return _OPT_FIXED.pack(0, 41, udp_size, 0, 0, 0x8000 if do else 0, len(option)) + option
