"""Reading a reply once, by hand, to decide whether and for how long the cache keeps it.

A miss costs one walk over the reply's records: the offset of every TTL field (so that hits can
patch them in place), the smallest TTL, the SOA and NS records of the authority section, the OPT
record, and the answer's owner names and CNAME targets (to tell an answer from a CNAME chain that
ends nowhere). That is everything CoreDNS's ``response.Typify``, ``dnsutil.MinimalTTL`` and the
cache's own ``key``/``answersQuestion`` look at, without building a dnspython message.
"""

from __future__ import annotations

import time

from ...dns import ANY, CLASS_ANY, CNAME, NOERROR, NS, OPT, QR, RRSIG, SOA, TC, WireError, read_name
from ...dns.classify import (
    META,
    NAME_ERROR,
    NO_DATA,
    NO_ERROR,
    OTHER_ERROR,
    RRSIG_FIXED,
    UPDATE,
    signatures_expired,
    typify,
)
from ...dns.header import HEADER, TYPE_CLASS, U32
from ...dns.wire import records

MINIMAL_DEFAULT_TTL = 5

Malformed = WireError
"""The reply does not parse: the cache passes it on untouched and keeps nothing."""


def _read_name(wire: bytes, off: int) -> tuple[str, int]:
    """A possibly compressed name, lower-cased, as text; and the offset after it in the record."""
    name, end = read_name(wire, off)
    return name.lower(), end


class Reply:
    """What the cache needs to know about one reply."""

    __slots__ = (
        "ancount",
        "answer",
        "arcount",
        "end_of_question",
        "expired_sig",
        "flags",
        "has_soa",
        "min_ttl",
        "ns_records",
        "nscount",
        "opt_do",
        "opt_end",
        "opt_start",
        "qclass",
        "qdcount",
        "qname",
        "qtype",
        "rcode",
        "ttl_offsets",
        "wire",
    )

    def __init__(self, wire: bytes) -> None:
        if len(wire) < 12:
            raise Malformed("shorter than a header")
        self.wire = wire
        _id, flags, qd, an, ns, ar = HEADER.unpack_from(wire)
        self.flags = flags
        self.qdcount = qd
        self.qname = ""
        self.qtype = 0
        self.qclass = 0
        off = 12
        length = len(wire)
        for i in range(qd):
            name, off = _read_name(wire, off)
            if off + 4 > length:
                raise Malformed("question truncated")
            if i == 0:
                self.qname = name
                self.qtype, self.qclass = TYPE_CLASS.unpack_from(wire, off)
            off += 4
        self.end_of_question = off
        self.ttl_offsets: list[int] = []
        # (owner, type, class, cname target or "") of the answer section
        self.answer: list[tuple[str, int, int, str]] = []
        self.has_soa = False
        self.ns_records = 0
        self.min_ttl: int | None = None
        self.opt_start = -1
        self.opt_end = -1
        self.opt_do = False
        self.expired_sig = False
        ext_rcode = 0
        plain_ar = 0
        sigs: list[int] = []
        for section, start, rtype, rclass, ttl_at, rdata, end in records(wire, off, an, ns, ar):
            if rtype == OPT:
                if self.opt_start >= 0:
                    raise Malformed("two OPT records")
                self.opt_start, self.opt_end = start, end
                ext_rcode = wire[ttl_at]
                self.opt_do = bool(wire[ttl_at + 2] & 0x80)
                continue
            self.ttl_offsets.append(ttl_at)
            ttl = U32.unpack_from(wire, ttl_at)[0]
            if self.min_ttl is None or ttl < self.min_ttl:
                self.min_ttl = ttl
            if section == 0:
                target = _read_name(wire, rdata)[0] if rtype == CNAME else ""
                self.answer.append((_read_name(wire, start)[0], rtype, rclass, target))
            elif section == 1:
                if rtype == SOA:
                    self.has_soa = True
                elif rtype == NS:
                    self.ns_records += 1
            else:
                plain_ar += 1
            if rtype == RRSIG and end - rdata >= RRSIG_FIXED:
                sigs.append(rdata)
        self.ancount = an
        self.nscount = ns
        self.arcount = plain_ar
        self.rcode = (ext_rcode << 4) | (flags & 0x0F)
        if self.opt_do and sigs:
            self.expired_sig = signatures_expired(wire, sigs, int(time.time()))

    @property
    def opcode(self) -> int:
        return (self.flags >> 11) & 0x0F

    @property
    def truncated(self) -> bool:
        return bool(self.flags & TC)

    @property
    def opt_is_last(self) -> bool:
        return self.opt_start < 0 or self.opt_end == len(self.wire)

    # -- CoreDNS's classification ----------------------------------------------------------------

    def typify(self) -> str:
        """``response.Typify``."""
        return typify(
            self.opcode, self.qtype, self.rcode, self.ancount, self.has_soa, self.ns_records, self.expired_sig
        )

    def cache_type(self) -> str:
        """The cache's own view: a CNAME chain that does not reach the asked type, with an SOA to
        bound it, is NODATA rather than an answer."""
        t = self.typify()
        if t == NO_ERROR and self.has_soa and self.is_nodata():
            return NO_DATA
        return t

    def cacheable(self, t: str) -> bool:
        """The cache's ``key``: truncated, error, meta and update replies are never kept, nor
        denials without an SOA to bound them."""
        if self.truncated or t in (OTHER_ERROR, META, UPDATE):
            return False
        if t == NAME_ERROR and not self.has_soa:
            return False
        if t == NO_ERROR and not self.has_soa and self.is_nodata():
            return False
        return self.qdcount > 0

    def minimal_ttl(self, t: str, maximum: float) -> float:
        """``dnsutil.MinimalTTLWithMaximum``: the smallest TTL of the records (OPT aside), at most
        ``maximum``; 5 s for other kinds of reply and for replies without records."""
        if t not in (NO_ERROR, NAME_ERROR, NO_DATA):
            return MINIMAL_DEFAULT_TTL
        if self.min_ttl is None:
            return MINIMAL_DEFAULT_TTL
        # Go compares TTLs with the maximum's whole seconds
        if self.min_ttl < int(maximum):
            return float(self.min_ttl)
        return maximum

    def matches(self, name: str, qtype: int) -> bool:
        """``request.Match``: one question, QR set, same name (any case) and type."""
        return self.qdcount == 1 and bool(self.flags & QR) and self.qname == name and self.qtype == qtype

    # -- does the answer answer? -----------------------------------------------------------------

    def answers_question(self) -> bool:
        if self.rcode != NOERROR or not self.qdcount or not self.answer:
            return False
        return _answer_has_type(self.answer, self.qname, self.qtype, self.qclass)

    def is_nodata(self) -> bool:
        return bool(self.answer) and not self.answers_question()


def _class_matches(rclass: int, qclass: int) -> bool:
    return qclass == CLASS_ANY or rclass == qclass


def _cname_target(answer: list[tuple[str, int, int, str]], owner: str, qclass: int) -> tuple[str, bool]:
    target = ""
    for rowner, rtype, rclass, rtarget in answer:
        if rtype != CNAME or rowner != owner or not _class_matches(rclass, qclass):
            continue
        if target and target != rtarget:
            return "", False
        target = rtarget
    return target, True


def _answer_has_type(answer: list[tuple[str, int, int, str]], name: str, qtype: int, qclass: int) -> bool:
    if qtype == ANY:
        return any(owner == name and _class_matches(rclass, qclass) for owner, _t, rclass, _c in answer)
    if qtype == CNAME:
        target, ok = _cname_target(answer, name, qclass)
        return ok and target != ""
    seen: set[str] = set()
    while True:
        if name in seen:
            return False  # a CNAME loop has no terminal name
        seen.add(name)
        target, ok = _cname_target(answer, name, qclass)
        if not ok:
            return False
        if not target:
            break
        name = target
    return any(
        rtype == qtype and owner == name and _class_matches(rclass, qclass)
        for owner, rtype, rclass, _c in answer
    )


def patch_ttls(buf: bytearray, offsets: list[int] | tuple[int, ...], ttl: int) -> None:
    """Write ``ttl`` into every TTL field of ``buf``."""
    pack = U32.pack_into
    for o in offsets:
        pack(buf, o, ttl)
