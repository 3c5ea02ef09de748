"""minimal against a real server: positive answers lose their authority and additional sections,
denials, errors and delegations keep them. The upstream is a loopback UDP socket that answers
with a reply made for each test (``ScriptedUpstream``, shared with the other policy plugins' tests)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import dns.message
import dns.rcode
import dns.rrset
from twisted.internet import reactor
from twisted.internet.defer import inlineCallbacks
from twisted.internet.protocol import DatagramProtocol
from twisted.trial import unittest

from twisted_coredns.testing import InProcessServer
from twisted_coredns.testing.setup import check_setup_rows, load_setup_rows

from .small_plugin_support import DATA, readme_corefiles

Answerer = Callable[[dns.message.Message], dns.message.Message | None]


class ScriptedUpstream(DatagramProtocol):
    """A DNS server on 127.0.0.1 whose reply to each query is ``answer(query)`` (None: silence)."""

    def __init__(self, answer: Answerer) -> None:
        self.answer = answer
        self.queries: list[dns.message.Message] = []
        self.port = reactor.listenUDP(0, self, interface="127.0.0.1")  # type: ignore[attr-defined]

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port.getHost().port}"

    def datagramReceived(self, data: bytes, addr: Any) -> None:
        query = dns.message.from_wire(data)
        self.queries.append(query)
        reply = self.answer(query)
        if reply is not None:
            self.transport.write(reply.to_wire(max_size=65535), addr)

    def stop(self) -> Any:
        return self.port.stopListening()


def full_reply(query: dns.message.Message, rcode: int = 0, answer: bool = True) -> dns.message.Message:
    """A reply with records in all three sections (or none in the answer)."""
    reply = dns.message.make_response(query)
    name = query.question[0].name
    if answer:
        reply.answer.append(dns.rrset.from_text(name, 300, "IN", "A", "192.0.2.1"))
    if rcode == 0 and answer:
        reply.authority.append(dns.rrset.from_text("example.org.", 300, "IN", "NS", "ns.example.org."))
    else:
        reply.authority.append(dns.rrset.from_text(
            "example.org.", 300, "IN", "SOA", "ns.example.org. admin.example.org. 1 2 3 4 5"))
    reply.additional.append(dns.rrset.from_text("ns.example.org.", 300, "IN", "A", "192.0.2.53"))
    reply.set_rcode(rcode)
    return reply


def delegation(query: dns.message.Message) -> dns.message.Message:
    reply = dns.message.make_response(query)
    reply.authority.append(dns.rrset.from_text("sub.example.org.", 300, "IN", "NS", "ns.sub.example.org."))
    reply.additional.append(dns.rrset.from_text("ns.sub.example.org.", 300, "IN", "A", "192.0.2.54"))
    return reply


def _answer(query: dns.message.Message) -> dns.message.Message:
    label = query.question[0].name.labels[0]
    if label == b"nx":
        return full_reply(query, dns.rcode.NXDOMAIN, answer=False)
    if label == b"nodata":
        return full_reply(query, answer=False)
    if label == b"fail":
        return full_reply(query, dns.rcode.SERVFAIL, answer=False)
    if label == b"deleg":
        return delegation(query)
    return full_reply(query)


class MinimalTests(unittest.TestCase):
    @inlineCallbacks
    def setUp(self) -> Any:
        self.upstream = ScriptedUpstream(_answer)
        self.addCleanup(self.upstream.stop)
        self.server = InProcessServer(f". {{\n minimal\n forward . {self.upstream.address}\n}}\n")
        yield self.server.start()
        self.addCleanup(self.server.stop)

    @inlineCallbacks
    def test_positive_answer_is_stripped(self) -> Any:
        for edns in (False, 0):
            r = yield self.server.query("www.example.org.", "A", edns=edns)
            self.assertEqual((len(r.answer), r.authority), (1, []))
            self.assertEqual(r.additional, [])
            self.assertEqual(r.edns, -1 if edns is False else 0, "the client's OPT record is kept")

    @inlineCallbacks
    def test_denials_errors_and_delegations_pass(self) -> Any:
        for label, rcode in (("nx", dns.rcode.NXDOMAIN), ("nodata", 0), ("fail", dns.rcode.SERVFAIL),
                             ("deleg", 0)):
            r = yield self.server.query(f"{label}.example.org.", "A")
            self.assertEqual(r.rcode(), rcode, label)
            self.assertEqual((len(r.authority), len(r.additional)), (1, 1), label)


class MinimalSetupTests(unittest.TestCase):
    def test_setup_rows(self) -> None:
        rows = load_setup_rows(DATA / "minimal" / "setup_cases.json", "minimal", source_contains="coredns")
        check_setup_rows(self, rows)

    @inlineCallbacks
    def test_readme_corefile(self) -> Any:
        # whoami answers in the example's zone; forward (the README's upstream, here a loopback one)
        # comes first in the plugin order, so the upstream's reply is what minimal trims.
        upstream = ScriptedUpstream(_answer)
        self.addCleanup(upstream.stop)
        [path] = readme_corefiles("minimal")
        text = path.read_text().replace("forward . 127.0.0.1", f"forward . {upstream.address}")
        server = InProcessServer(text)
        yield server.start()
        self.addCleanup(server.stop)
        r = yield server.query("www.example.org.", "A")
        self.assertEqual((len(r.answer), r.authority, r.additional), (1, [], []))
