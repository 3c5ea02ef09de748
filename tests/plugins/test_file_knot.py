"""file, second opinion: the same zones served by knotd and by us, thousands of questions sent to
both, and every difference explained.

The zones are CoreDNS's own test zones (tests/data/file/file_plugin_cases.json; the two DNAME
zones knotd refuses to load are left out, see ``KNOT_REFUSES``) and ``tangled_zone`` (delegations
with and without glue, a DS, wildcards, empty non-terminals, CNAME chains, DNAME). The questions:
every name of the zone, every empty non-terminal, a random name below each name (below
delegations and wildcards too), random names under the apex, each with eleven types; with and
without DO for signed zones.

The rcode, the AA bit and the answer section must agree, except where CoreDNS deliberately (or
knowingly) answers otherwise than knotd; there we follow CoreDNS, and each kind of difference is
counted, and the counts asserted, so a new kind or a changed count fails the test:

``nsec-at-cname``
    A question for type NSEC at a CNAME (or below a DNAME): CoreDNS follows the CNAME, as for any
    type but CNAME (lookup.go); knotd answers the NSEC that sits beside the CNAME (RFC 4035 2.5)
    or NODATA in an unsigned zone. Hence the answer, and once the rcode and once the additional
    section (what the CNAME's target leads to).
``ent-under-wildcard``
    An empty non-terminal right below a wildcard's parent (``d.ent2`` beside ``*.ent2``):
    CoreDNS's ``closerENTExists`` looks only at names strictly between the two, so the wildcard
    answers; knotd answers NODATA, as RFC 4592 2.2.2 says.
``rdata-name-case``
    knotd writes names inside rdata in lower case; CoreDNS as the zone file spells them.
``apex-ns-in-authority``
    CoreDNS puts the apex NS RRset (and its RRSIG with DO) in the authority section of every
    positive answer; knotd leaves it empty (the difference the issue names).
``cname-to-nodata``
    A CNAME whose target has no data of the type: CoreDNS's answer is a success with the apex NS
    in authority (or, for NS questions, the SOA alone), knotd's a NODATA with the SOA and, with
    DO, the target's NSEC.
``negative-soa-ttl``
    The SOA of a negative answer: knotd gives it the smaller of its TTL and its MINIMUM field
    (RFC 2308 3); CoreDNS the SOA's own TTL. Only ``tangled_zone`` has a MINIMUM below the TTL.
``nxdomain-nsec-choice``
    NXDOMAIN with DO: CoreDNS takes the covering NSEC from the canonical predecessor even when
    that is glue without an NSEC, and the wildcard-denial NSEC from the nearest name that holds
    records, not from the closest encloser when that is an empty non-terminal; knotd proves both
    as RFC 4035 3.1.3.2 says.
``wildcard-nodata-nsec``
    NODATA from a wildcard with DO: CoreDNS sends the wildcard's NSEC; knotd adds the NSEC that
    proves no closer name exists (RFC 4035 3.1.3.4).
``insecure-referral-nsec``
    A referral to a delegation without DS, with DO: knotd proves the DS absent with the
    delegation's NSEC (RFC 4035 3.1.4.1); CoreDNS sends the NS RRset alone.
``nsec-query-wildcard``
    A question for type NSEC answered by a wildcard's NSEC, with DO: CoreDNS adds the apex NS and
    the NSEC proving no closer name; knotd sends neither.
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import dns.flags
import dns.message
import dns.name
import dns.query
import dns.rcode
import pytest

from twisted_coredns.plugins.file.zonefile import read_zone_text
from twisted_coredns.testing import SubprocessServer, free_port
from twisted_coredns.testing.knot import KnotServer, KnotZone, knot_available
from twisted_coredns.testing.zones import tangled_names, tangled_zone

from . import file_cases

pytestmark = pytest.mark.skipif(not knot_available(), reason="knotd is not installed")

KNOT_REFUSES = {"TestLookupDNAME", "TestLookupDNAMEDNSSEC"}
"""Their zones hold a CNAME beside other data below a DNAME, which knotd's semantic checks reject."""
TYPES = ["A", "AAAA", "TXT", "MX", "NS", "SOA", "CNAME", "DS", "SRV", "NSEC", "DNSKEY"]
SEED = 7

EXPECTED = {
    "agree": 6087,
    # the rcode, the AA bit or the answer differ
    "nsec-at-cname": 52,
    "ent-under-wildcard": 4,
    "rdata-name-case": 1,
    # the authority section alone differs
    "apex-ns-in-authority": 521,
    "cname-to-nodata": 309,
    "negative-soa-ttl": 1164,
    "nxdomain-nsec-choice": 143,
    "wildcard-nodata-nsec": 99,
    "insecure-referral-nsec": 32,
    "nsec-query-wildcard": 3,
}
"""How many questions fall in each kind (``agree``: the whole reply is the same), for ``SEED``."""


@dataclass
class ServedZone:
    label: str
    origin: str
    text: str
    port: int = 0
    knot: KnotServer | None = None


@dataclass
class Reply:
    rcode: int
    aa: bool
    answer: list[str]
    authority: list[str]
    additional: list[str]

    @classmethod
    def of(cls, message: dns.message.Message) -> Reply:
        def lines(section: Any) -> list[str]:
            return sorted(line for rrset in section for line in rrset.to_text().splitlines())

        return cls(
            message.rcode(),
            bool(message.flags & dns.flags.AA),
            lines(message.answer),
            lines(message.authority),
            lines(message.additional),
        )


@dataclass
class Comparison:
    queries: int = 0
    kinds: Counter[str] = field(default_factory=Counter)
    unexplained: list[str] = field(default_factory=list)


def _zones() -> list[ServedZone]:
    texts: dict[tuple[str, str], str] = {}
    for suite in file_cases.suites():
        if suite["test_func"] not in KNOT_REFUSES:
            texts.setdefault((suite["origin"], suite["zone_text"]), suite["test_func"])
    zones = [ServedZone(label, origin, text) for (origin, text), label in texts.items()]
    zones.append(ServedZone("tangled", "tangled.example.", tangled_zone("tangled.example.")))
    return zones


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[ServedZone]]:
    """One of our servers with a block (and a port) per zone, and one knotd per zone."""
    folder = tmp_path_factory.mktemp("file-knot")
    zones = _zones()
    blocks = []
    for i, zone in enumerate(zones):
        (folder / f"db.{i}").write_text(zone.text, encoding="utf-8")
        zone.port = free_port()
        blocks.append(f"{zone.origin}:{zone.port} {{\n    file db.{i}\n}}\n")
    ours = SubprocessServer("".join(blocks), directory=folder, port=zones[0].port)
    started: list[KnotServer] = []
    try:
        ours.start()
        for zone in zones:
            zone.knot = KnotServer([KnotZone(zone.origin, text=zone.text)])
            started.append(zone.knot)
            zone.knot.start()
        yield zones
    finally:
        ours.stop()
        for knot in started:
            knot.stop()


def _label(rnd: random.Random) -> str:
    return "".join(rnd.choice("abcdefghijklmnopqrstuvwxyz0123456789") for _ in range(rnd.randint(1, 8)))


class _ZoneFacts:
    """What the classifier needs to know of a zone: its names, empty non-terminals, wildcards."""

    def __init__(self, zone: ServedZone) -> None:
        origin = dns.name.from_text(zone.origin)
        self.origin = origin
        rrsets = read_zone_text(zone.text, zone.origin)
        self.owners = {r.name for r in rrsets if r.name.is_subdomain(origin)}
        self.ents: set[dns.name.Name] = set()
        for owner in self.owners:
            name = owner.parent() if owner != origin else owner
            while name != origin and name.is_subdomain(origin):
                if name not in self.owners:
                    self.ents.add(name)
                name = name.parent()

    def names(self, rnd: random.Random, extra: list[str]) -> list[str]:
        out = {self.origin.to_text(), *extra}
        for name in sorted(self.owners | self.ents):
            text = name.to_text()
            out.add(text)
            base = text[2:] if text.startswith("*.") else text
            out.add(f"{_label(rnd)}.{base}")
            out.add(f"{_label(rnd)}.{_label(rnd)}.{base}")
        for _ in range(10):
            out.add(f"{_label(rnd)}.{self.origin}")
        return sorted(out)

    def ent_under_wildcard(self, qname: str) -> bool:
        name = dns.name.from_text(qname)
        if name not in self.ents or name == self.origin:
            return False
        return dns.name.Name((b"*", *name.parent().labels)) in self.owners


def _classify(facts: _ZoneFacts, qname: str, qtype: str, do: bool, ours: Reply, theirs: Reply) -> str | None:
    """The kind of difference between our reply and knotd's (None: not one we can explain)."""
    core_ours = (ours.rcode, ours.aa, ours.answer)
    core_theirs = (theirs.rcode, theirs.aa, theirs.answer)
    if core_ours != core_theirs or ours.additional != theirs.additional:
        if qtype == "NSEC" and any(_rtype(line) in ("CNAME", "DNAME") for line in ours.answer):
            return "nsec-at-cname"
        if (
            facts.ent_under_wildcard(qname)
            and ours.rcode == theirs.rcode == dns.rcode.NOERROR
            and ours.answer
            and not theirs.answer
        ):
            return "ent-under-wildcard"
        if [a.lower() for a in ours.answer] == [a.lower() for a in theirs.answer] and (
            ours.rcode,
            ours.aa,
        ) == (theirs.rcode, theirs.aa):
            if ours.authority == theirs.authority or not theirs.authority:
                return "rdata-name-case"
        return None
    # The rest differ in the authority section alone.
    origin = facts.origin.to_text()
    apex_ns = [line for line in ours.authority if line.split()[0] == origin and _rtype(line) == "NS"]
    rest = [line for line in ours.authority if line not in apex_ns]
    if ours.answer and apex_ns and rest == theirs.authority:
        return "apex-ns-in-authority"
    if (
        ours.answer
        and all(_rtype(line) in ("CNAME", "DNAME") for line in ours.answer)
        and any(line.split()[3] == "SOA" for line in theirs.authority)
        and (not rest or set(rest) <= set(theirs.authority))
    ):
        return "cname-to-nodata"
    extra = set(theirs.authority) - set(ours.authority)
    if (
        do
        and not ours.aa
        and not ours.answer
        and set(ours.authority) <= set(theirs.authority)
        and all(_rtype(line) == "NSEC" for line in extra)
    ):
        return "insecure-referral-nsec"
    if (
        do
        and ours.aa
        and not ours.answer
        and ours.rcode == dns.rcode.NOERROR
        and set(ours.authority) <= set(theirs.authority)
        and all(_rtype(line) == "NSEC" for line in extra)
    ):
        return "wildcard-nodata-nsec"
    if do and ours.rcode == dns.rcode.NXDOMAIN and [
        line for line in ours.authority if _rtype(line) == "SOA"
    ] == [line for line in theirs.authority if _rtype(line) == "SOA"]:
        return "nxdomain-nsec-choice"
    if do and qtype == "NSEC" and ours.answer and set(theirs.authority) < set(ours.authority):
        return "nsec-query-wildcard"
    soa_ttl = next((line.split()[1] for line in ours.authority if line.split()[3] == "SOA"), None)
    if soa_ttl is not None and ours.authority == sorted(
        _with_ttl(line, soa_ttl) if line.split()[3] == "SOA" else line for line in theirs.authority
    ):
        return "negative-soa-ttl"
    return None


def _rtype(line: str) -> str:
    """The type of a record in presentation form; for an RRSIG, the type it covers."""
    fields = line.split()
    return fields[4] if fields[3] == "RRSIG" else fields[3]


def _with_ttl(line: str, ttl: str) -> str:
    fields = line.split(None, 2)
    return f"{fields[0]} {ttl} {fields[2]}"


@pytest.fixture(scope="module")
def comparison(served: list[ServedZone]) -> Comparison:
    rnd = random.Random(SEED)
    result = Comparison()
    for zone in served:
        assert zone.knot is not None
        facts = _ZoneFacts(zone)
        extra = tangled_names(zone.origin) if zone.label == "tangled" else []
        dos = [False, True] if "RRSIG" in zone.text else [False]
        for qname in facts.names(rnd, extra):
            for qtype in TYPES:
                for do in dos:
                    query = dns.message.make_query(qname, qtype, want_dnssec=do)
                    ours = Reply.of(dns.query.udp(query, "127.0.0.1", port=zone.port, timeout=2))
                    theirs = Reply.of(dns.query.udp(query, "127.0.0.1", port=zone.knot.port, timeout=2))
                    result.queries += 1
                    if ours == theirs:
                        result.kinds["agree"] += 1
                        continue
                    kind = _classify(facts, qname, qtype, do, ours, theirs)
                    if kind is None:
                        where = f"{zone.label} {qname} {qtype} do={do}"
                        result.unexplained.append(f"{where}\n  us:   {ours}\n  knot: {theirs}")
                    else:
                        result.kinds[kind] += 1
    print(f"\nfile vs knotd: {result.queries} queries, {dict(result.kinds)}")
    return result


def test_every_difference_is_explained(comparison: Comparison) -> None:
    assert comparison.unexplained == [], "\n".join(comparison.unexplained[:20])


def test_counts(comparison: Comparison) -> None:
    assert dict(comparison.kinds) == {k: v for k, v in EXPECTED.items() if v}
    assert comparison.queries == sum(EXPECTED.values())
    assert comparison.queries > 2000


def test_rcode_aa_and_answer_agree_but_for_known_cases(comparison: Comparison) -> None:
    """Only three kinds of difference touch the rcode, the AA bit or the answer."""
    core = ("nsec-at-cname", "ent-under-wildcard", "rdata-name-case")
    differing = sum(comparison.kinds[k] for k in core)
    assert 0 < differing < comparison.queries / 100
