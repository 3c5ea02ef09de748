"""The numbers of the DNS: header flags, opcodes, rcodes, record types and classes, and their names.

One set for the whole project, re-exported by ``twisted_coredns.dns``. Names come from dnspython
once per value and are kept (the log plugin names every query's type), so naming is a dictionary
hit on the hot path.
"""

from __future__ import annotations

from functools import lru_cache

import dns.rcode
import dns.rdataclass
import dns.rdatatype

# -- header flags (the 16 bits after the ID) -----------------------------------------------------
QR = 0x8000
AA = 0x0400
TC = 0x0200
RD = 0x0100
RA = 0x0080
Z = 0x0040
AD = 0x0020
CD = 0x0010
OPCODE_MASK = 0x7800
RCODE_MASK = 0x000F

EDNS_DO = 0x8000
EDNS_ECS = 8
"""EDNS option codes (RFC 7871 client subnet, RFC 7873 cookie)."""
EDNS_COOKIE = 10
"""The DNSSEC OK bit of an OPT record's flags."""

# -- opcodes -------------------------------------------------------------------------------------
OPCODE_QUERY = 0
OPCODE_IQUERY = 1
OPCODE_STATUS = 2
OPCODE_NOTIFY = 4
OPCODE_UPDATE = 5

# -- rcodes (values above 15 live partly in the OPT record) ---------------------------------------
NOERROR = 0
FORMERR = 1
SERVFAIL = 2
NXDOMAIN = 3
NOTIMP = 4
REFUSED = 5
YXDOMAIN = 6
YXRRSET = 7
NXRRSET = 8
NOTAUTH = 9
NOTZONE = 10
BADVERS = 16

# -- record types --------------------------------------------------------------------------------
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
NAPTR = 35
DNAME = 39
OPT = 41
DS = 43
RRSIG = 46
NSEC = 47
DNSKEY = 48
NSEC3 = 50
TLSA = 52
HTTPS = 65
TSIG = 250
IXFR = 251
AXFR = 252
ANY = 255
CAA = 257

# -- classes -------------------------------------------------------------------------------------
CLASS_IN = 1
CLASS_CH = 3
CLASS_HS = 4
CLASS_NONE = 254
CLASS_ANY = 255


@lru_cache(maxsize=1024)
def type_name(rdtype: int) -> str:
    """``A``, ``AAAA``, ... or ``TYPE65280`` for an unknown type, as dnspython and miekg print them."""
    return dns.rdatatype.to_text(rdtype)  # type: ignore[arg-type]


@lru_cache(maxsize=64)
def class_name(rdclass: int) -> str:
    """``IN``, ``CH``, ... or ``CLASS42``."""
    return dns.rdataclass.to_text(rdclass)  # type: ignore[arg-type]


@lru_cache(maxsize=64)
def rcode_name(rcode: int) -> str:
    """``NOERROR``, ``NXDOMAIN``, ... as CoreDNS logs them (``RCODE23`` for an unknown one)."""
    try:
        return dns.rcode.to_text(rcode)  # type: ignore[arg-type]
    except ValueError:
        return f"RCODE{rcode}"


def type_value(text: str) -> int:
    """The number of a type name (``AAAA`` is 28, ``TYPE65280`` is 65280); ``ValueError`` for an
    unknown name."""
    try:
        return int(dns.rdatatype.from_text(text))
    except dns.rdatatype.UnknownRdatatype:
        raise ValueError(f"unknown type {text}") from None


def class_value(text: str) -> int:
    """The number of a class name; ``ValueError`` for an unknown name."""
    try:
        return int(dns.rdataclass.from_text(text))
    except dns.rdataclass.UnknownRdataclass:
        raise ValueError(f"unknown class {text}") from None


def rcode_value(text: str) -> int:
    """The number of an rcode name; ``ValueError`` for an unknown name."""
    try:
        return int(dns.rcode.from_text(text))
    except dns.rcode.UnknownRcode:
        raise ValueError(f"unknown rcode {text}") from None
