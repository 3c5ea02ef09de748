"""Names of types, classes and rcodes, and the encoding of resource records to wire format.

These are small and hot (the log plugin names every query's type), so the names come from
dnspython once and are kept in dictionaries.
"""

from __future__ import annotations

import struct
from functools import lru_cache

import dns.name
import dns.rcode
import dns.rdataclass
import dns.rdatatype

_RR_FIXED = struct.Struct("!HHIH")

A = 1
NS = 2
CNAME = 5
SOA = 6
PTR = 12
HINFO = 13
MX = 15
TXT = 16
AAAA = 28
SRV = 33
DS = 43
OPT = 41
ANY = 255
CLASS_IN = 1
CLASS_CH = 3

NOERROR = 0
FORMERR = 1
SERVFAIL = 2
NXDOMAIN = 3
NOTIMP = 4
REFUSED = 5
BADVERS = 16


@lru_cache(maxsize=1024)
def type_name(rdtype: int) -> str:
    """``A``, ``AAAA``, ... or ``TYPE65280`` for an unknown type, as dnspython and miekg print them."""
    return dns.rdatatype.to_text(rdtype)  # type: ignore[arg-type]


@lru_cache(maxsize=64)
def class_name(rdclass: int) -> str:
    return dns.rdataclass.to_text(rdclass)  # type: ignore[arg-type]


@lru_cache(maxsize=64)
def rcode_name(rcode: int) -> str:
    """``NOERROR``, ``NXDOMAIN``, ... as CoreDNS logs them (``RCODE23`` for an unknown one)."""
    try:
        return dns.rcode.to_text(rcode)  # type: ignore[arg-type]
    except ValueError:
        return f"RCODE{rcode}"


def type_value(text: str) -> int:
    return int(dns.rdatatype.from_text(text))


def rcode_value(text: str) -> int:
    return int(dns.rcode.from_text(text))


@lru_cache(maxsize=4096)
def name_wire(name: str) -> bytes:
    """The uncompressed wire form of a presentation-format name."""
    return dns.name.from_text(name).to_wire()  # type: ignore[return-value]


def encode_rr(owner: bytes, rtype: int, rclass: int, ttl: int, rdata: bytes) -> bytes:
    """One resource record. ``owner`` is wire form, possibly a compression pointer such as
    ``b"\\xc0\\x0c"`` (the question name in a reply that starts with the question)."""
    return owner + _RR_FIXED.pack(rtype, rclass, ttl, len(rdata)) + rdata


QNAME_POINTER = b"\xc0\x0c"
"""Compression pointer to the question name, which always starts at offset 12."""
