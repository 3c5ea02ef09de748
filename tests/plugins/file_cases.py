"""CoreDNS's plugin/file test tables (tests/data/file/file_plugin_cases.json), compared as its
``test.SortAndCheck`` compares: sections sorted; owner, type and TTL of each record (TTL 303 means
any); for RRSIG only the covered type, labels and signer, for NSEC only the next name, for other
types the data."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import dns.message
import dns.rdata
import dns.rdataclass
import dns.rdatatype
import dns.rrset

DATA = Path(__file__).resolve().parent.parent / "data" / "file"
CASES = DATA / "file_plugin_cases.json"
ANY_TTL = 303
RCODES = {"Success": 0, "NameError": 3, "ServerFailure": 2}

# TestLookupDNAMEDNSSEC parses example.org's signed zone with the origin miek.nl. and serves it as
# example.org., so the zone has no apex NS and its answers no authority section. Through a server
# the zone's own origin is used, and CoreDNS then adds the apex NS (and its signature with DO).
ORIGIN_FIXES = {"TestLookupDNAMEDNSSEC": "example.org."}
APEX_NS_FIX = {
    "TestLookupDNAMEDNSSEC": (
        ["example.org.\t1800\tIN\tNS\tns.example.org."],
        ["example.org.\t1800\tIN\tRRSIG\tNS 5 2 1800 20170702091734 20170602091734 54282 example.org. X"],
    )
}


# Where CoreDNS's unit test ran the zone without a server, a CNAME target outside the zone's own
# nodes is looked up through CoreDNS's "upstream", which fails there (SERVFAIL). Through a real
# server, as here, the look-up happens, and CoreDNS answers as these rows say.
THROUGH_A_SERVER = {
    # example.com is in no zone of the server: REFUSED, which CoreDNS's file takes as "nothing more".
    ("TestLookup", "ext-cname.miek.nl.", "A"): {"rcode": "Success"},
    # a.test.example.org does not exist: the server says NXDOMAIN, with the SOA and its signature.
    ("TestLookupDNAMEDNSSEC", "a.dname.example.org.", "A"): {
        "rcode": "NameError",
        "ns": [
            "example.org.\t1800\tIN\tSOA\ta.example.org. b.example.org. 1282630057 14400 3600 604800 14400",
            "example.org.\t1800\tIN\tRRSIG\tSOA 5 2 1800 20170702091734 20170602091734 54282 example.org. X",
        ],
    },
}
# TestLookUpNoDataResult checks only that the lookup's result is NoData; its rows list no sections.
RESULT_ONLY = {"TestLookUpNoDataResult"}


def suites() -> list[dict[str, Any]]:
    data = json.loads(CASES.read_text(encoding="utf-8"))
    out = data["suites"]
    for suite in out:
        suite["origin"] = ORIGIN_FIXES.get(suite["test_func"], suite["origin"])
        fix = APEX_NS_FIX.get(suite["test_func"])
        if fix:
            for case in suite["cases"]:
                if case["rcode"] == "Success" and case["answer"]:
                    case["ns"] = fix[0] + (fix[1] if case.get("Do") else [])
        for case in suite["cases"]:
            case.update(THROUGH_A_SERVER.get((suite["test_func"], case["qname"], case["qtype"]), {}))
            case["result_only"] = suite["test_func"] in RESULT_ONLY
    return out


_DATA_COMPARED = frozenset({"A", "AAAA", "TXT", "HINFO", "PTR", "CNAME", "MX", "NS", "SRV", "SVCB", "HTTPS"})


def _key(name: str, rdtype: str, rdata: str) -> tuple[str, str, str]:
    fields = rdata.split()
    if rdtype == "RRSIG":
        data = " ".join([fields[0], fields[2], fields[7]])
    elif rdtype in ("NSEC", "SOA"):
        data = fields[0]
    elif rdtype in _DATA_COMPARED:
        rd = dns.rdata.from_text(dns.rdataclass.IN, dns.rdatatype.from_text(rdtype), rdata)
        data = rd.to_text()
    else:
        data = ""  # CoreDNS's test compares owner, type and TTL only
    return (name, rdtype, data)


def expected(lines: list[str]) -> list[tuple[tuple[str, str, str], int]]:
    out = []
    for line in lines:
        # As miekg/dns reads a record: the TTL and the class may be left out (TTL 3600 then).
        tokens = line.split()
        name, rest = tokens[0], tokens[1:]
        ttl = 3600
        if rest[0].isdigit():
            ttl = int(rest.pop(0))
        if rest[0].upper() == "IN":
            rest.pop(0)
        rdtype, rdata = rest[0].upper(), " ".join(rest[1:])
        if rdtype in ("CNAME", "NS", "MX", "SRV", "PTR") and not rdata.endswith("."):
            rdata += "."
        out.append((_key(name, rdtype, rdata), ttl))
    return sorted(out)


def got(section: list[dns.rrset.RRset]) -> list[tuple[tuple[str, str, str], int]]:
    out = []
    for rrset in section:
        for rd in rrset:
            out.append(
                (_key(rrset.name.to_text(), dns.rdatatype.to_text(rrset.rdtype), rd.to_text()), rrset.ttl)
            )
    return sorted(out)


def mismatch(case: dict[str, Any], reply: dns.message.Message) -> str | None:
    """Why ``reply`` is not what CoreDNS gives for ``case``, or None."""
    if reply.rcode() != RCODES[case["rcode"]]:
        return f"rcode {reply.rcode()} != {case['rcode']}"
    if case["result_only"]:
        return f"NODATA has an answer: {reply.answer}" if reply.answer else None
    for label, section, lines in (
        ("answer", reply.answer, case["answer"]),
        ("ns", reply.authority, case["ns"]),
        ("extra", [r for r in reply.additional if r.rdtype != dns.rdatatype.OPT], case["extra"]),
    ):
        have, want = got(section), expected(lines)
        if [k for k, _ in have] != [k for k, _ in want]:
            return f"{label}: got {have}, want {want}"
        for (_, ttl), (_, want_ttl) in zip(have, want, strict=True):
            if want_ttl != ANY_TTL and ttl != want_ttl:
                return f"{label}: TTL {ttl} != {want_ttl}"
    return None
