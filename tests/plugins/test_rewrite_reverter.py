"""rewrite's reply edits in bytes against the slow path they replace: for many replies (names
compressed against the question, against parts of it, against other names, spelled out, in
another case, in record data of every kind that holds names) and the reversals of real rules,
``edit_reply`` must give what re-encoding the reply with dnspython gives, name for name."""

from __future__ import annotations

import io
import random
from typing import Any

import dns.edns
import dns.message
import dns.name
import dns.rdata
import dns.rdataclass
import dns.rdatatype
import dns.rrset
from twisted.trial import unittest

from twisted_coredns.plugins.rewrite.answers import undo_in_message
from twisted_coredns.plugins.rewrite.query import Query
from twisted_coredns.plugins.rewrite.reverter import Fallback, edit_reply
from twisted_coredns.plugins.rewrite.setup import new_rule
from twisted_coredns.request import Request
from twisted_coredns.testing import make_query

RULES = [
    "name suffix .example.org. .example.net. answer auto",
    "name suffix .example.org. .example.network. answer auto",
    "name exact host1.example.org. other.example.net.",
    "name prefix host1 www answer auto",
    "name regex (.*)\\.example\\.org {1}.example.net answer auto",
    "name regex (.*)\\.example\\.org {1}.example.net answer name (.*)\\.example\\.net {1}.example.org "
    "answer value (.*)\\.example\\.net {1}.example.org",
    "name regex (.*)\\.example\\.org {1}.ex.net answer name (.*)\\.ex\\.net {1}.example.org",
    "name prefix host1 longer-host1",
    "name substring example.org example.net answer auto",
    "type A AAAA",
    "ttl suffix .example.org. 30-100",
]
KINDS = ["A", "CNAME", "MX", "SOA", "SRV", "NS", "PTR", "TXT", "RP", "NAPTR", "AAAA", "DNAME"]
CLIENT_NAMES = ["host1.example.org.", "Host1.Example.org.", "a.host1.example.org."]


def _records(rng: random.Random, asked: str, near: bool) -> list[dns.rrset.RRset]:
    """Records whose names relate to the name asked every way a reply's can; with ``near``, only
    the name asked, names below it and the root (compressed, every one points at the question)."""
    parent = asked.split(".", 1)[1]
    candidates = [asked, "sub." + asked, parent, "ns." + parent, asked.upper(), "other.test.",
                  "x." + asked.upper(), "host1.example.net.", "host1.example.org.", "."]
    if near:
        candidates = [asked, "sub." + asked, "_udp." + asked, "."]
    out = []
    seen = set()
    for _ in range(rng.randint(1, 6)):
        owner = rng.choice(candidates[:-1])
        target = rng.choice(candidates)
        kind = rng.choice(KINDS)
        if (owner.lower(), kind) in seen:
            # dnspython would read two such records as one RRset (names match whatever their
            # case), while the edit in bytes, like CoreDNS, renames each as its case says.
            continue
        seen.add((owner.lower(), kind))
        text = {
            "A": "192.0.2.1", "AAAA": "2001:db8::1", "CNAME": target, "NS": target, "PTR": target,
            "DNAME": target, "MX": f"10 {target}", "SRV": f"0 0 53 {target}", "TXT": '"text"',
            "SOA": f"{target} {rng.choice(candidates)} 1 2 3 4 5", "RP": f"{target} {rng.choice(candidates)}",
            "NAPTR": f'100 10 "u" "E2U+sip" "" {target}',
        }[kind]
        out.append(dns.rrset.from_text(owner, rng.randint(0, 500), "IN", kind, text))
    return out


def _reply(rng: random.Random, query_wire: bytes, compress: bool, near: bool) -> bytes:
    query = dns.message.from_wire(query_wire)
    reply = dns.message.make_response(query)
    asked = query.question[0].name.to_text()
    for section in (reply.answer, reply.authority, reply.additional):
        section.extend(_records(rng, asked, near) if rng.random() < 0.8 else [])
    if rng.random() < 0.3:
        reply.use_edns(0, 0, 1232, options=[dns.edns.GenericOption(0xFFEE, b"x")])
    if near:
        return _to_question(reply)
    if compress:
        return reply.to_wire(max_size=65535)
    return _uncompressed(reply)


def _to_question(message: dns.message.Message) -> bytes:
    """``message`` with every name the question's, one below it or the root, each compressed
    against the question alone (as ``whoami`` and many servers write a simple answer)."""
    out = io.BytesIO()
    out.write(bytes(12))  # the header's place: dnspython compresses at offsets it reads from the file
    question = message.question[0]
    question.name.to_wire(out)
    out.write(int(question.rdtype).to_bytes(2, "big") + int(question.rdclass).to_bytes(2, "big"))
    counts = []
    for section in (message.answer, message.authority, message.additional):
        count = 0
        for rrset in section:
            for rdata in rrset:
                rrset.name.to_wire(out, {question.name: 12})
                out.write(int(rrset.rdtype).to_bytes(2, "big") + int(rrset.rdclass).to_bytes(2, "big"))
                out.write(rrset.ttl.to_bytes(4, "big") + bytes(2))
                start = out.tell()
                rdata.to_wire(out, {question.name: 12})
                end = out.tell()
                out.seek(start - 2)
                out.write((end - start).to_bytes(2, "big"))
                out.seek(end)
                count += 1
        counts.append(count)
    if message.opt is not None:
        message.opt.to_wire(out, None)
        counts[2] += 1
    head = message.to_wire()[:4]
    return head + b"".join(n.to_bytes(2, "big") for n in (1, *counts)) + out.getvalue()[12:]


def _uncompressed(message: dns.message.Message) -> bytes:
    """``message`` with every name spelled out: dnspython's compression matches names whatever
    their case, and so would turn a name into the case of an earlier one."""
    out = io.BytesIO()
    for rrset in message.question:
        rrset.name.to_wire(out)
        out.write(int(rrset.rdtype).to_bytes(2, "big") + int(rrset.rdclass).to_bytes(2, "big"))
    counts = [sum(rrset.to_wire(out, None, want_shuffle=False) for rrset in section)
              for section in (message.answer, message.authority, message.additional)]
    if message.opt is not None:
        message.opt.to_wire(out, None)
        counts[2] += 1
    head = message.to_wire()[:4]
    return head + b"".join(n.to_bytes(2, "big") for n in (len(message.question), *counts)) + out.getvalue()


def _slow(request: Request, reversal: Any, wire: bytes) -> dns.message.Message:
    message = dns.message.from_wire(wire)
    message.question = [dns.rrset.RRset(dns.name.from_text(request.qname), request.qclass, request.qtype)]
    undo_in_message(message, reversal)
    return dns.message.from_wire(_uncompressed(message))


def _sections(message: dns.message.Message) -> list[list[str]]:
    """Every section as text, names in the case they have."""
    return [[rrset.to_text() for rrset in section]
            for section in (message.question, message.answer, message.authority, message.additional)]


class ReverterAgainstDnspythonTests(unittest.TestCase):
    def test_edits_match_the_slow_path(self) -> None:
        rng = random.Random(20240612)
        edited = fallbacks = 0
        for case in range(1500):
            rule_text = RULES[case % len(RULES)]
            rule = new_rule(rule_text.split())
            client = rng.choice(CLIENT_NAMES)
            request = Request(make_query(client, "A", edns=rng.random() < 0.5).to_wire())
            query = Query(request)
            reversal = rule.apply(query)
            if reversal is None:
                continue
            rewritten = query.rewritten()
            wire = _reply(rng, rewritten.wire, compress=rng.random() < 0.8, near=case % 2 == 0)
            expected = _slow(request, reversal, wire)
            inverse = reversal.inverse and (not query.renamed or request.qname == request.name)
            try:
                out = edit_reply(wire, request.question_wire, request.qname, rewritten.question_wire,
                                 rewritten.qname, reversal, inverse)
            except Fallback:
                fallbacks += 1
                continue
            edited += 1
            got = dns.message.from_wire(out)
            self.assertEqual(_sections(got), _sections(expected), f"case {case}: {rule_text} for {client}")
            self.assertEqual(got.id, expected.id)
            self.assertEqual(got.flags, expected.flags)
        # The bytes are edited for nearly every reply; dnspython is the exception.
        self.assertGreater(edited, 10 * fallbacks, (edited, fallbacks))

    def test_pointer_into_the_question_is_written_out(self) -> None:
        # An SOA owned by the parent of the name asked, compressed as a pointer into the middle of
        # the question: once the question changes, that name must be spelled out.
        rule = new_rule("name suffix .example.org. .example.net. answer auto".split())
        request = Request(make_query("host1.example.org.", "A").to_wire())
        query = Query(request)
        reversal = rule.apply(query)
        assert reversal is not None
        rewritten = query.rewritten()
        reply = dns.message.make_response(dns.message.from_wire(rewritten.wire))
        reply.authority.append(dns.rrset.from_text("example.net.", 60, "IN", "SOA",
                                                   "ns.example.net. admin.example.net. 1 2 3 4 5"))
        wire = reply.to_wire()
        self.assertIn(b"\xc0\x12", wire)  # "example.net." points at the question's second label
        out = edit_reply(wire, request.question_wire, request.qname, rewritten.question_wire, rewritten.qname,
                         reversal, True)
        got = dns.message.from_wire(out)
        soa = got.authority[0]
        # The suffix rule's rewriter turns only names ending in ".example.net." back.
        self.assertEqual(soa.name.to_text(), "example.net.")
        self.assertEqual(soa[0].mname.to_text(), "ns.example.org.")
        self.assertEqual(soa[0].rname.to_text(), "admin.example.net.")
        self.assertEqual(got.question[0].name.to_text(), "host1.example.org.")
