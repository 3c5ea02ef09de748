"""A rendered template read as one resource record, as miekg's ``dns.NewRR`` reads it: names
relative to the root, TTL 3600 and class IN unless given, parentheses across lines."""

from __future__ import annotations

import io
from functools import lru_cache
from typing import Any, NamedTuple


class RRError(ValueError):
    pass


class TemplatedRR(NamedTuple):
    """One rendered record: as dnspython reads it (for the CNAME look-ups), and in wire form with
    every name written out in full, as miekg packs a message that is not compressed."""

    rrset: Any
    wire: bytes


@lru_cache(maxsize=4096)
def parse_rr(text: str) -> TemplatedRR:
    """The record ``text`` reads as; ``RRError`` says why it is not one. Remembered by its text:
    a template that renders the same text again (the same name asked again) costs a look-up."""
    import dns.exception
    import dns.name
    import dns.rdata
    import dns.rdataclass
    import dns.rdatatype
    import dns.rrset
    import dns.tokenizer

    try:
        tok = dns.tokenizer.Tokenizer(text)
        owner = dns.name.from_text(tok.get_string(), origin=dns.name.root)
        ttl, rdclass = 3600, dns.rdataclass.IN
        token = tok.get_string()
        for _ in range(2):
            if token.isdigit():
                ttl = int(token)
                token = tok.get_string()
            elif token.upper() in ("IN", "CH", "HS", "CS", "NONE", "ANY") \
                    or token.upper().startswith("CLASS"):
                try:
                    rdclass = dns.rdataclass.from_text(token)
                except dns.rdataclass.UnknownRdataclass:
                    break
                token = tok.get_string()
        rdtype = dns.rdatatype.from_text(token)
        rdata = dns.rdata.from_text(rdclass, rdtype, tok, origin=dns.name.root, relativize=False)
    except (dns.exception.DNSException, ValueError) as exc:
        raise RRError(f"dns: {exc}: {text!r}") from None
    rrset = dns.rrset.RRset(owner, rdclass, rdtype)
    rrset.add(rdata, ttl)
    out = io.BytesIO()
    rrset.to_wire(out)
    return TemplatedRR(rrset, out.getvalue())
