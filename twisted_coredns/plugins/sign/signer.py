"""One zone signed from one zone file, as CoreDNS's sign signs it.

``Signer.sign(now)`` reads the zone file (dropping DNSKEY, RRSIG, NSEC, CDS and CDNSKEY: they are
made anew), sets the SOA serial to the Unix time, adds each key's DNSKEY, its CDS (SHA-1 and
SHA-256) and its CDNSKEY at the apex with the SOA's TTL, links every authoritative name into an
NSEC chain (TTL: the SOA's minimum), and signs every authoritative RRset but delegation NS
records and glue. ``Signer.write`` puts the result in ``DIRECTORY/db.ZONE.signed`` by renaming a
temporary file, so ``file`` never reads half a zone. ``Signer.resign_reason(now)`` says why the
signed file must be made again, or None. All of it blocks: it runs in a thread.
"""

from __future__ import annotations

import datetime
import os
import random
import tempfile
from dataclasses import dataclass, field
from typing import Any

import dns.dnssec
import dns.exception
import dns.name
import dns.rdata
import dns.rdataclass
import dns.rdatatype
import dns.rrset
from dns.rdtypes.ANY.CDNSKEY import CDNSKEY
from dns.rdtypes.ANY.CDS import CDS

from ...dns.dnssec import SigningKey, nsec
from ...duration import format_duration
from ...strconv import go_quote
from ..file.zonefile import read_zone_file

__all__ = ["SignedZone", "Signer", "go_time"]

HOUR = 3600
DAY = 24 * HOUR
EXPIRE_DAYS = 7 * DAY  # sign again when a signature has less than this left
RESIGN_DAYS = 6 * DAY  # sign again when the last signing is older than this
SIGNATURE_EXPIRE_DAYS = 32 * DAY  # signatures are valid this long
REFRESH_HOURS = 5 * HOUR  # how often signed files are checked
INCEPTION_JITTER = -18 * HOUR  # at most this much earlier inception, per zone
EXPIRATION_JITTER = 5 * DAY  # at most this much later expiration, per zone
SIGNATURE_INCEPTION = -3 * HOUR  # inception before now: clocks that are a little behind
SCAN_RECORDS = 100  # how far into a signed file its SOA signatures are looked for

_T = dns.rdatatype
# Records sign makes itself; a zone file's own are dropped.
_CLASSES = frozenset({"IN", "CH", "HS", "CS", "NONE", "ANY"})
_MADE_HERE = frozenset({_T.DNSKEY, _T.RRSIG, _T.NSEC, _T.CDS, _T.CDNSKEY})


def go_time(when: float) -> str:
    """A time as CoreDNS's sign logs it (Go's ``2006-01-02T15:04:05.000Z07:00`` in UTC)."""
    moment = datetime.datetime.fromtimestamp(when, datetime.UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def _go_seconds(seconds: float) -> str:
    return format_duration(int(seconds) * 1_000_000_000)


@dataclass
class SignedZone:
    """What a signing made: the RRsets to write, in the order they are written, and the serial."""

    rrsets: list[dns.rrset.RRset]
    serial: int

    def text(self) -> str:
        return "".join(rrset.to_text() + "\n" for rrset in self.rrsets)


@dataclass
class Signer:
    """Signs ``dbfile`` as ``origin`` with ``keys`` into ``directory``/``signed_file``."""

    dbfile: str
    origin: str
    keys: list[SigningKey] = field(default_factory=list)
    directory: str = "/var/lib/coredns"
    # Each zone's own jitter, drawn once, so zones signed together do not all expire together.
    jitter_inception: float = field(default_factory=lambda: INCEPTION_JITTER * random.random())
    jitter_expiration: float = field(default_factory=lambda: EXPIRATION_JITTER * random.random())

    @property
    def signed_file(self) -> str:
        return f"db.{self.origin}signed"  # the origin ends with its dot

    @property
    def path(self) -> str:
        return os.path.join(self.directory, self.signed_file)

    @property
    def key_tags(self) -> str:
        return ",".join(str(key.tag) for key in self.keys)

    def lifetime(self, now: float) -> tuple[int, int]:
        """The inception and expiration of the signatures made at ``now``."""
        inception = int(now + SIGNATURE_INCEPTION + self.jitter_inception)
        expiration = int(now + SIGNATURE_EXPIRE_DAYS + self.jitter_expiration)
        return inception & 0xFFFFFFFF, expiration & 0xFFFFFFFF

    # -- when -----------------------------------------------------------------------------------

    def resign_reason(self, now: float) -> str | None:
        """Why the signed file must be signed again, or None when its SOA signatures are fine.

        CoreDNS's rules, on the SOA's RRSIGs: signed more than 6 days ago, an inception in the
        future, or less than 7 days to expiry. A file that cannot be opened or read, or holds no
        SOA signature in its first 100 records, is signed again too."""
        try:
            with open(self.path, encoding="utf-8", errors="replace") as f:
                lines = f.read().splitlines()
        except OSError as exc:
            return f"open {self.path}: {(exc.strerror or str(exc)).lower()}"
        seen = 0
        found = False
        for line in lines:
            if not line.strip() or line.lstrip().startswith(";") or line.startswith("$"):
                continue
            seen += 1
            if seen > SCAN_RECORDS:
                break
            try:
                sig = _soa_signature(line)
            except (dns.exception.DNSException, ValueError) as exc:
                return f"dns: {exc}"
            if sig is None:
                continue
            found = True
            reason = _sig_reason(int(sig.inception), int(sig.expiration), now)
            if reason:
                return reason
        if not found:
            return f"no SOA RRSIG found in first {SCAN_RECORDS} records"
        return None

    # -- what -----------------------------------------------------------------------------------

    def sign(self, now: float) -> SignedZone:
        """Read, complete and sign the zone. Raises ``OSError`` or ``ValueError`` (a zone file
        that cannot be read, an NSEC3 zone, no SOA)."""
        origin = dns.name.from_text(self.origin)
        soa: dns.rrset.RRset | None = None
        nodes: dict[dns.name.Name, dict[int, dns.rrset.RRset]] = {}
        for rrset in read_zone_file(self.dbfile, self.origin):
            rdtype = rrset.rdtype
            if rdtype in (_T.NSEC3, _T.NSEC3PARAM):
                raise ValueError(
                    f"NSEC3 zone is not supported, dropping RR: {rrset.name} for zone: {self.origin}"
                )
            if rdtype in _MADE_HERE:
                continue
            if rdtype == _T.SOA:
                soa = rrset  # CoreDNS takes the SOA wherever it is; it belongs at the apex
                continue
            name = dns.name.from_text(rrset.name.to_text().lower())
            if not name.is_subdomain(origin):
                continue  # not this zone's to sign
            _merge(nodes.setdefault(name, {}), name, rrset)
        if soa is None:
            raise ValueError(f"file {go_quote(self.dbfile)} has no SOA record")

        serial = int(now) & 0xFFFFFFFF
        ttl = soa.ttl
        minimum = int(soa[0].minimum)
        soa_rrset = dns.rrset.RRset(origin, dns.rdataclass.IN, _T.SOA)
        soa_rrset.add(soa[0].replace(serial=serial), ttl)
        inception, expiration = self.lifetime(now)

        apex = nodes.setdefault(origin, {})
        for key in self.keys:
            # The key's owner becomes the zone's: a key made for one zone signs another.
            _add(apex, origin, _T.DNSKEY, key.dnskey, ttl)
            for digest in ("SHA1", "SHA256"):
                ds = dns.dnssec.make_ds(origin, key.dnskey, digest, policy=dns.dnssec.allow_all_policy)
                cds = CDS(dns.rdataclass.IN, _T.CDS, ds.key_tag, ds.algorithm, ds.digest_type, ds.digest)
                _add(apex, origin, _T.CDS, cds, ttl)
            d = key.dnskey
            _add(apex, origin, _T.CDNSKEY, CDNSKEY(dns.rdataclass.IN, _T.CDNSKEY, d.flags, d.protocol,
                                                   d.algorithm, d.key), ttl)
        apex_ns = apex.pop(_T.NS, None)

        names = sorted(nodes)  # dnspython orders names canonically (RFC 4034 6.1)
        auth = _authoritative(names, nodes, origin)

        def sigs_for(rrset: dns.rrset.RRset) -> dns.rrset.RRset:
            out = dns.rrset.RRset(rrset.name, dns.rdataclass.IN, _T.RRSIG, rrset.rdtype)
            for key in self.keys:
                out.add(key.sign_rrset(rrset, origin, inception, expiration), rrset.ttl)
            return out

        written: list[dns.rrset.RRset] = [soa_rrset, sigs_for(soa_rrset)]
        if apex_ns is not None:
            written += [apex_ns, sigs_for(apex_ns)]
        auth_set = set(auth)
        for i, name in enumerate(auth):
            node = nodes[name]
            types = {*node, _T.RRSIG, _T.NSEC}
            if name == origin:
                types |= {_T.NS, _T.SOA}
            _add(node, name, _T.NSEC, nsec(auth[(i + 1) % len(auth)], types), minimum)
        for name in names:
            node = nodes[name]
            for slot in sorted(node):
                rrset = node[slot]
                rdtype = rrset.rdtype
                written.append(rrset)
                # Delegation NS records and glue belong to the child zone: never signed here.
                if name in auth_set and rdtype != _T.NS and self.keys:
                    written.append(sigs_for(rrset))
        return SignedZone(written, serial)

    def write(self, zone: SignedZone) -> None:
        """Write ``zone`` to a temporary file in the directory and rename it into place."""
        fd, temp = tempfile.mkstemp(prefix="signed-", dir=self.directory)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                f.write(zone.text())
            os.chmod(temp, 0o644)
            os.replace(temp, self.path)
        except BaseException:
            try:
                os.unlink(temp)
            except OSError:
                pass
            raise


def _soa_signature(line: str) -> Any:
    """The RRSIG rdata on this one-record line when it covers an SOA, else None. The line is
    ``NAME [TTL] [CLASS] TYPE RDATA`` (what ``write`` writes, and what zone files mostly hold)."""
    words = line.split()
    for i, word in enumerate(words[1:], 1):
        if word.isdigit() or word.upper() in _CLASSES:
            continue
        if word.upper() != "RRSIG" or len(words) <= i + 1 or words[i + 1].upper() != "SOA":
            return None
        return dns.rdata.from_text(dns.rdataclass.IN, _T.RRSIG, " ".join(words[i + 1:]))
    return None


def _sig_reason(inception: int, expiration: int, now: float) -> str | None:
    since = now - inception
    if since > RESIGN_DAYS:
        return (f"inception {go_quote(go_time(inception))} was more than: {_go_seconds(RESIGN_DAYS)} ago "
                f"from {go_time(now)}: {format_duration(since)}")
    if since < 0:
        return f"inception {go_quote(go_time(inception))} date is in the future: {format_duration(since)}"
    left = expiration - now
    if left < EXPIRE_DAYS:
        return (f"expiration {go_quote(go_time(expiration))} is less than: {_go_seconds(EXPIRE_DAYS)} away "
                f"from {go_time(now)}: {format_duration(left)}")
    return None


def _authoritative(
    names: list[dns.name.Name], nodes: dict[dns.name.Name, dict[int, dns.rrset.RRset]], origin: dns.name.Name
) -> list[dns.name.Name]:
    """The names the zone is authoritative for: all but those below a delegation. In canonical
    order a delegation's descendants follow it directly, so one pass with the last cut does."""
    out = []
    cut: dns.name.Name | None = None
    for name in names:
        if cut is not None and name.is_subdomain(cut):
            continue
        cut = name if name != origin and _T.NS in nodes[name] else None
        out.append(name)
    return out


def _merge(node: dict[int, dns.rrset.RRset], name: dns.name.Name, rrset: dns.rrset.RRset) -> None:
    have = node.get(rrset.rdtype)
    if have is None:
        have = node[rrset.rdtype] = dns.rrset.RRset(name, rrset.rdclass, rrset.rdtype)
    for rdata in rrset:
        have.add(rdata, rrset.ttl)


def _add(node: dict[int, dns.rrset.RRset], name: dns.name.Name, rdtype: int, rdata: object, ttl: int) -> None:
    have = node.get(rdtype)
    if have is None:
        have = node[rdtype] = dns.rrset.RRset(name, dns.rdataclass.IN, dns.rdatatype.RdataType(rdtype))
    have.add(rdata, ttl)  # type: ignore[arg-type]
