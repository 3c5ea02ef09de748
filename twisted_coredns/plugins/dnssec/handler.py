"""The dnssec handler: DNSKEY at the apex, and the chain's replies signed when the query has DO.

What CoreDNS's dnssec does, rule by rule:

- a DNSKEY query for one of the zones is answered here (AA), with the keys renamed to the zone;
  with DO, with their signatures (by the KSKs when keys are split, TTL 3600);
- any other query passes on; without DO the reply comes back untouched;
- with DO, by the reply's type (``response.Typify``): a referral gets its DS records signed, or an
  NSEC that denies a DS; NXDOMAIN and NODATA with a lone SOA in the authority section get the SOA
  signed and a "black lie": an NSEC at the query name whose next name is ``\\000.QNAME`` and
  whose bitmap lists every common type but the one asked, so NXDOMAIN becomes NOERROR/NODATA;
  anything else has each RRset of each section signed by the zone that holds its owner (RRsets
  outside the zones stay unsigned).

Signatures have an original TTL of 3600, an inception 3 hours ago and an expiration in 8 days;
the RRSIG's own TTL is the RRset's. They come from the ``SignatureCache`` when it has them.

All of it works on the reply's bytes (``splice``): the records are found and grouped in place, the
cache is keyed by what the wire holds, and cached signatures are already RRSIG rdatas, so a
signed reply costs a walk and a join. dnspython only builds the data to sign on a cache miss. A
reply whose bytes were signed before (the same chain answer, ID aside) is taken whole from a
small memo, as long as every signature in it is still fresh.
"""

from __future__ import annotations

import io
import struct
import time
from collections.abc import Callable
from functools import lru_cache
from typing import Any

import dns.exception
import dns.message
import dns.name
import dns.rdata
import dns.rdataclass
import dns.rdatatype
from dns.rdtypes.ANY.NSEC import Bitmap

from ...dns import CLASS_IN, DNSKEY, DS, NSEC, SOA, Zones, name_wire, parse_message
from ...dns.classify import DELEGATION, NAME_ERROR, NO_DATA
from ...dns.dnssec import SigningKey, expand_rdata
from ...dns.header import RR_FIXED
from ...dns.records import QNAME
from ...dns.wire import WireError, expand_name
from ...plugin import Handler
from ...request import Request
from ...response import HandlerResult, Response, StreamResponse, reply_records
from . import metrics
from .cache import FRESH_FOR, SignatureCache, Signatures
from .splice import Record, ReplyRecords, owner_at, rrsig_records

__all__ = ["MEMO_SIZE", "ORIGINAL_TTL", "Dnssec"]

ORIGINAL_TTL = 3600  # the dnssec plugin cannot see an RRset's original TTL; it says 3600
INCEPTION = -3 * 3600
VALIDITY = 8 * 24 * 3600

_T = dns.rdatatype.RdataType
_COMMON = [_T.A, _T.HINFO, _T.TXT, _T.AAAA, _T.LOC, _T.SRV, _T.CERT, _T.SSHFP, _T.RRSIG, _T.NSEC,
           _T.TLSA, _T.HIP, _T.OPENPGPKEY, _T.SPF]
# The bitmaps of CoreDNS's black lies: a name below the apex, a delegation, the apex.
ZONE_BITMAP = tuple(_COMMON)
DELEGATION_BITMAP = tuple(sorted([*_COMMON, _T.NS]))
APEX_BITMAP = tuple(sorted([*_COMMON, _T.NS, _T.SOA, _T.MX, _T.DNSKEY]))

MEMO_SIZE = 4096
"""Whole replies kept signed (each entry holds two messages): no more than the cache's capacity."""
_OWNERS_SIZE = 4096  # owner name -> signing zone, remembered
_TCP_MAX = 65535
_BAD_REPLY = (WireError, IndexError, struct.error, ValueError, dns.exception.DNSException)


@lru_cache(maxsize=256)
def _bitmap(full: tuple[int, ...], qtype: int, kind: str) -> bytes:
    """The NSEC type bitmap in wire form. CoreDNS's filter: for a denial (other than of NSEC
    itself), the asked type is left out."""
    if kind in (NO_DATA, NAME_ERROR) and qtype != NSEC:
        full = tuple(t for t in full if t != qtype)
    out = io.BytesIO()
    Bitmap.from_rdtypes([dns.rdatatype.RdataType(t) for t in sorted(set(full))]).to_wire(out)
    return out.getvalue()


class _Zone:
    """One of the plugin's zones: its name as text and in wire form, and its DNSKEY records."""

    __slots__ = ("dnskey_rdatas", "dnskey_records", "name", "origin", "wire")

    def __init__(self, name: str, keys: list[SigningKey]) -> None:
        self.name = name
        self.origin = dns.name.from_text(name)
        self.wire = name_wire(name).lower()
        rdatas = list(dict.fromkeys(k.dnskey.to_digestable() for k in keys))
        ttl = min((k.ttl for k in keys), default=ORIGINAL_TTL)
        self.dnskey_records = [QNAME + RR_FIXED.pack(DNSKEY, CLASS_IN, ttl, len(rd)) + rd for rd in rdatas]
        self.dnskey_rdatas = tuple(sorted(rdatas))


class _Signed:
    """A memo entry: the reply signed, how many RRsets it signed, until when it may be reused."""

    __slots__ = ("count", "fresh_until", "wire")

    def __init__(self, wire: bytes, count: int, fresh_until: float) -> None:
        self.wire = wire
        self.count = count
        self.fresh_until = fresh_until


class Dnssec(Handler):
    name = "dnssec"

    def __init__(
        self, zones: list[str], keys: list[SigningKey], cache: SignatureCache,
        clock: Callable[[], float] = time.time, memo_size: int = MEMO_SIZE,
    ) -> None:
        self.zones = Zones(zones)
        self.zone_list = list(self.zones)
        self.keys = keys
        ksk = [k for k in keys if k.is_ksk()]
        zsk = [k for k in keys if k.is_zsk()]
        self.split = bool(ksk) and bool(zsk)
        # Split mode: DNSKEY RRsets are signed by the KSKs, all else by the ZSKs; else every key
        # signs everything (each is a CSK).
        self.key_signing = ksk if self.split else keys
        self.zone_signing = zsk if self.split else keys
        self.cache = cache
        self.clock = clock
        self._zones = {zone: _Zone(zone, keys) for zone in self.zone_list}
        self._by_wire = {z.wire: z for z in self._zones.values()}
        self._owners: dict[bytes, _Zone | None] = {}
        self._memo: dict[tuple[int, str, bytes], _Signed] = {}
        self.memo_size = min(memo_size, cache.capacity)
        self._entries: dict[str, Any] = {}

    # -- serving --------------------------------------------------------------------------------

    def serve(self, request: Request) -> HandlerResult:
        zone = self.zones.matches(request.name)
        if zone is None:
            return self.serve_next(request)
        if request.qtype == DNSKEY and request.name in self._zones:
            return self._answer_dnskey(request, self._zones[request.name])
        if request.do:
            return self.serve_next_then(request, lambda response: self.sign_reply(request, zone, response))
        return self.serve_next(request)

    def _answer_dnskey(self, request: Request, zone: _Zone) -> Response:
        answer = list(zone.dnskey_records)
        if request.do:
            signing = _Signing(self, request, zone, self.clock())
            sigs = signing.sign_rdatas(zone, zone.wire, DNSKEY, CLASS_IN, zone.dnskey_rdatas)
            signing.count_metrics()
            if sigs is not None:
                answer += rrsig_records(QNAME, CLASS_IN, ORIGINAL_TTL, sigs.rdatas)
        return reply_records(request, b"".join(answer), len(answer), aa=True, plugin=self.name)

    def sign_reply(self, request: Request, zone: str, response: Response) -> Response:
        """The reply of the rest of the chain, signed (CoreDNS's ``Sign``)."""
        wire = response.wire
        if not wire:
            return response  # not written (the server writes the error), or no reply at all
        if isinstance(response, StreamResponse):
            # A zone transfer: CoreDNS's writer signs each message it is given.
            now = self.clock()
            signed_messages: list[bytes] = []
            for message in [wire, *response.more]:
                signed_messages += self._sign_within(request, zone, message, now)
            return StreamResponse(signed_messages, response.plugin)
        now = self.clock()
        memo_key = (request.qtype, zone, wire[2:])
        done = self._memo.get(memo_key)
        if done is not None and now <= done.fresh_until:
            self.cache.count(request.server, done.count, 0)
            return Response(wire[:2] + done.wire[2:], None, response.error, response.plugin, response.has_opt)
        signed, signing = self._sign(request, zone, wire, now)
        if signed is None:
            return response
        if self.memo_size and not signing.misses:
            # Kept once every signature came from the cache: a reply seen once (a black lie for
            # a random name) is not worth the memory.
            memo = self._memo
            if len(memo) >= self.memo_size:
                del memo[next(iter(memo))]
            memo[memo_key] = _Signed(signed, signing.hits, signing.fresh_until)
        return Response(signed, None, response.error, response.plugin, response.has_opt)

    def _sign_within(self, request: Request, zone: str, wire: bytes, now: float) -> list[bytes]:
        """A message of a stream signed, as one message or more: signatures can take a full
        message (a transfer's batch) past the 65,535 octets TCP can carry, and then its records
        are shared between two messages, each signed. dnspython splits it: transfers are rare."""
        signed = self._sign(request, zone, wire, now)[0] or wire
        if len(signed) <= _TCP_MAX:
            return [signed]
        try:
            message = parse_message(wire, one_rr_per_rrset=True)
        except dns.exception.DNSException:
            return [wire]
        if len(message.answer) < 2:
            return [wire]  # one RRset cannot be split: sent unsigned rather than not at all
        halves = []
        for part in (message.answer[: len(message.answer) // 2], message.answer[len(message.answer) // 2 :]):
            half = parse_message(wire, one_rr_per_rrset=True)
            half.answer = part
            half.authority, half.additional = [], message.additional
            halves += self._sign_within(request, zone, half.to_wire(max_size=_TCP_MAX), now)
        return halves

    def _sign(self, request: Request, zone: str, wire: bytes, now: float) -> tuple[bytes | None, _Signing]:
        """One message signed by the rules of its type; None when nothing was added (or the
        bytes do not walk: they go on as they are, unsigned)."""
        signing = _Signing(self, request, self._zones[zone], now)
        try:
            reply = ReplyRecords(wire)
            kind = reply.kind(request.qtype, now)
            if kind == DELEGATION:
                signed = signing.referral(reply, kind)
            elif kind in (NAME_ERROR, NO_DATA):
                signed = signing.denial(reply, kind)
            else:
                signed = signing.sections(reply)
        except _BAD_REPLY:
            signed = None
        signing.count_metrics()
        return signed, signing

    def entries_gauge(self, server: str) -> Any:
        gauge = self._entries.get(server)
        if gauge is None:
            gauge = self._entries[server] = metrics.cache_entries.labels(server, "signature")
        return gauge

    def signer_of(self, owner: bytes) -> _Zone | None:
        """The longest of the zones that holds ``owner`` (lower-cased wire form), or None."""
        known = self._owners
        if owner in known:
            return known[owner]
        by_wire = self._by_wire
        zone = None
        off = 0
        while True:
            zone = by_wire.get(owner[off:])
            if zone is not None:
                break
            n = owner[off]
            if n == 0:
                break
            off += n + 1
        if len(known) >= _OWNERS_SIZE:
            known.clear()
        known[owner] = zone
        return zone


class _Signing:
    """Signing one reply: the rules of CoreDNS's ``Sign``, the signatures from the cache or made
    now, and the counts (hits, misses, until when every signature used is fresh)."""

    __slots__ = ("cache", "fresh_until", "handler", "hits", "misses", "now", "request", "zone")

    def __init__(self, handler: Dnssec, request: Request, zone: _Zone, now: float) -> None:
        self.handler = handler
        self.cache = handler.cache
        self.request = request
        self.zone = zone
        self.now = now
        self.hits = 0
        self.misses = 0
        self.fresh_until = float("inf")

    def count_metrics(self) -> None:
        server = self.request.server
        self.cache.count(server, self.hits, self.misses)
        if self.misses:
            self.handler.entries_gauge(server).set(len(self.cache))

    def sign(self, zone: _Zone, owner: bytes, rtype: int, rclass: int, wire: bytes,
             records: list[Record]) -> Signatures | None:
        """The signatures over the RRset of ``records`` in ``wire``, owned by ``owner``
        (lower-cased wire form)."""
        if len(records) == 1:
            record = records[0]
            rdatas: tuple[bytes, ...] = (expand_rdata(wire, rtype, record[5], record[6]),)
        else:
            rdatas = tuple(sorted({expand_rdata(wire, rtype, r[5], r[6]) for r in records}))
        return self.sign_rdatas(zone, owner, rtype, rclass, rdatas, wire, records)

    def sign_rdatas(
        self, zone: _Zone, owner: bytes, rtype: int, rclass: int, rdatas: tuple[bytes, ...],
        wire: bytes = b"", records: list[Record] | None = None,
    ) -> Signatures | None:
        """The signatures over the RRset ``owner`` ``rtype`` ``rclass`` whose distinct rdatas,
        names written out and sorted, are ``rdatas``: from the cache, or made now; None when no
        key signs this type. ``records`` are the RRset's records in ``wire`` (the data to sign
        is their canonical form); without them ``rdatas`` are already canonical (an NSEC or the
        DNSKEYs made here)."""
        key = (zone.wire, owner, rtype, rclass, rdatas)
        sigs = self.cache.get(key, self.now)
        if sigs is None:
            self.misses += 1
            sigs = self._make(zone, owner, rtype, rclass, rdatas, wire, records)
            if sigs is None:
                return None
            self.cache.set(key, sigs)
        else:
            self.hits += 1
        fresh_until = sigs.expiration - FRESH_FOR
        if fresh_until < self.fresh_until:
            self.fresh_until = fresh_until
        return sigs

    def _make(
        self, zone: _Zone, owner: bytes, rtype: int, rclass: int, rdatas: tuple[bytes, ...],
        wire: bytes, records: list[Record] | None,
    ) -> Signatures | None:
        handler = self.handler
        keys = handler.key_signing if rtype == DNSKEY else handler.zone_signing
        if not keys:
            return None
        if records is None:
            canonical = rdatas
        else:
            klass, kind = dns.rdataclass.RdataClass(rclass), dns.rdatatype.RdataType(rtype)
            canonical = tuple(sorted({
                dns.rdata.from_wire(klass, kind, wire, rdata, end - rdata).to_digestable()
                for _s, _start, _t, _c, _ttl, rdata, end in records
            }))
        name = dns.name.from_wire(owner, 0)[0]
        inception = int(self.now) + INCEPTION
        expiration = int(self.now) + VALIDITY
        return Signatures.of([
            k.sign(name, rtype, canonical, zone.origin, ORIGINAL_TTL, inception, expiration, rclass)
            for k in keys
        ])

    def sections(self, reply: ReplyRecords) -> bytes | None:
        """Each RRset of each section signed by the zone that holds its owner."""
        wire = reply.wire
        added: tuple[list[bytes], list[bytes], list[bytes]] = ([], [], [])
        signer_of = self.handler.signer_of
        for section, rrsets in enumerate(reply.rrsets()):
            out = added[section]
            for (owner, rtype, rclass), records in rrsets.items():
                signer = signer_of(owner)
                if signer is None:
                    continue  # only names in our zones are signed (a CNAME may lead out)
                sigs = self.sign(signer, owner, rtype, rclass, wire, records)
                if sigs is not None:
                    out += rrsig_records(owner_at(wire, records[0][1]), rclass, records[0][4], sigs.rdatas)
        if not (added[0] or added[1] or added[2]):
            return None
        return reply.splice(added)

    def referral(self, reply: ReplyRecords, kind: str) -> bytes | None:
        """A delegation: its DS records signed, or an NSEC that says there are none."""
        authority = [r for r in reply.records if r[0] == 1]
        if not authority:
            return None
        ttl = authority[0][4]
        if not any(r[2] == DS for r in authority):
            return reply.splice(([], self._black_lie(reply, kind, ttl), []))
        wire = reply.wire
        added: list[bytes] = []
        for (owner, rtype, rclass), records in reply.rrsets()[1].items():
            if rtype == DS:
                sigs = self.sign(self.zone, owner, rtype, rclass, wire, records)
                if sigs is not None:
                    added += rrsig_records(owner_at(wire, records[0][1]), rclass, ttl, sigs.rdatas)
        return reply.splice(([], added, [])) if added else None

    def denial(self, reply: ReplyRecords, kind: str) -> bytes | None:
        """NXDOMAIN or NODATA with the zone's SOA: the SOA signed, and a black lie that makes it
        NODATA."""
        authority = [r for r in reply.records if r[0] == 1]
        if len(authority) != 1 or authority[0][2] != SOA:
            return None
        soa = authority[0]
        wire = reply.wire
        ttl = soa[4]
        added: list[bytes] = []
        owner = expand_name(wire, soa[1])[0].lower()
        sigs = self.sign(self.zone, owner, SOA, soa[3], wire, [soa])
        if sigs is not None:
            added += rrsig_records(owner_at(wire, soa[1]), soa[3], ttl, sigs.rdatas)
        lie = self._black_lie(reply, kind, ttl)
        if not added and not lie:
            return None
        if self.request.qtype == NSEC:  # an NSEC query gets its NSEC as the answer, without the SOA
            return reply.answer_instead(lie, rcode=0)
        return reply.splice(([], added + lie, []), rcode=0)

    def _black_lie(self, reply: ReplyRecords, kind: str, ttl: int) -> list[bytes]:
        """The NSEC at the query name (after its signatures) that denies what the reply denies."""
        request = self.request
        wire = reply.wire
        if reply.end_of_question > 12:
            qname, _end = expand_name(wire, 12)
            owner = QNAME
        else:
            qname = owner = name_wire(request.qname)
        following = b"\x01\x00" + qname
        if request.name == self.zone.name:
            types = _bitmap(APEX_BITMAP, request.qtype, kind)
        elif kind == DELEGATION or request.qtype == DS:
            types = _bitmap(DELEGATION_BITMAP, request.qtype, DELEGATION)
            if kind == DELEGATION and qname != b"\x00" and qname[0] < 63:
                # Just after the delegated name itself, in canonical order.
                following = bytes([qname[0] + 1]) + qname[1 : 1 + qname[0]] + b"\x00" + qname[1 + qname[0]:]
        else:
            types = _bitmap(ZONE_BITMAP, request.qtype, kind)
        if len(following) > 255:
            return []  # no name follows a name this long
        rdata = following + types
        nsec = owner + RR_FIXED.pack(NSEC, CLASS_IN, ttl, len(rdata)) + rdata
        sigs = self.sign_rdatas(self.zone, qname.lower(), NSEC, CLASS_IN, (rdata,))
        if sigs is None:
            return [nsec]
        return [*rrsig_records(owner, CLASS_IN, ttl, sigs.rdatas), nsec]
