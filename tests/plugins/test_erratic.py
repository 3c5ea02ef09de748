# ruff: noqa: E501 - the rows hold CoreDNS's error texts whole, one per line
"""erratic against a real server: fixed answers, and one query in N dropped, delayed or
truncated; its readiness flips as CoreDNS's does; its README Corefiles start."""

from __future__ import annotations

import time
from typing import Any

import dns.exception
import dns.flags
import dns.message
import dns.query
import dns.rcode
from twisted.internet.defer import inlineCallbacks
from twisted.internet.threads import deferToThread
from twisted.trial import unittest

from twisted_coredns.plugins.erratic.handler import Erratic
from twisted_coredns.testing import InProcessServer, make_query, make_request, serve
from twisted_coredns.testing.setup import setup_error

from .small_plugin_support import readme_corefiles


def _ask(port: int, name: str, rdtype: str = "A", *, tcp: bool = False, timeout: float = 0.5) -> Any:
    """The reply, or None when nothing came back within ``timeout`` (a dropped query)."""
    def blocking() -> Any:
        query = make_query(name, rdtype)
        try:
            if tcp:
                return dns.query.tcp(query, "127.0.0.1", port=port, timeout=timeout)
            return dns.query.udp(query, "127.0.0.1", port=port, timeout=timeout, ignore_unexpected=True)
        except dns.exception.Timeout:
            return None
    return deferToThread(blocking)


class ErraticServerTests(unittest.TestCase):
    corefile = "example.org {\n erratic {\n  drop 3\n  delay 4 200ms\n  truncate 1\n }\n}"

    @inlineCallbacks
    def setUp(self) -> Any:
        self.server = yield serve(self, self.corefile)

    @inlineCallbacks
    def test_the_pattern_of_spoiled_replies(self) -> Any:
        # Query n (from 0) is dropped when n % 3 == 0, delayed when n % 4 == 0, truncated when
        # n & 1 == 0 (CoreDNS's bitwise test).
        seen = []
        for n in range(8):
            rdtype = "AAAA" if n == 1 else "A"
            start = time.monotonic()
            reply = yield _ask(self.server.port, "www.example.org.", rdtype)
            took = time.monotonic() - start
            if n % 3 == 0:
                self.assertIsNone(reply, f"query {n} is dropped")
                seen.append("drop")
                continue
            self.assertIsNotNone(reply, f"query {n} is answered")
            self.assertEqual(reply.rcode(), dns.rcode.NOERROR)
            self.assertTrue(reply.flags & dns.flags.AA)
            self.assertEqual(bool(reply.flags & dns.flags.TC), n & 1 == 0, f"query {n}: TC")
            if not reply.flags & dns.flags.TC:
                expected = "2001:db8::53" if rdtype == "AAAA" else "192.0.2.53"
                self.assertEqual(reply.answer[0][0].address, expected)
                self.assertEqual(reply.answer[0].ttl, 0)
            if n % 4 == 0:
                self.assertGreaterEqual(took, 0.19, f"query {n} is delayed")
            seen.append("ok")
        self.assertEqual(seen.count("drop"), 3)

    @inlineCallbacks
    def test_other_types_servfail_and_axfr_is_a_small_zone(self) -> Any:
        answers = []
        for rdtype in ("MX", "MX", "AXFR", "AXFR"):
            reply = yield _ask(self.server.port, "example.org.", rdtype, tcp=True)
            answers.append(reply)
        # Query 0 dropped (TCP too: nothing is written).
        self.assertIsNone(answers[0])
        self.assertEqual(answers[1].rcode(), dns.rcode.SERVFAIL)
        # Query 2 is truncated (2 & 1 == 0): the transfer lacks its closing SOA.
        types = [rrset.rdtype for rrset in answers[2].answer]
        self.assertEqual(types[0], dns.rdatatype.SOA)
        self.assertNotEqual(types[-1], dns.rdatatype.SOA)
        self.assertIsNone(answers[3])  # query 3: 3 % 3 == 0


class ErraticReadyTests(unittest.TestCase):
    @inlineCallbacks
    def test_ready_while_three_or_four_queries_seen(self) -> Any:
        server = InProcessServer(". {\n erratic {\n  drop 0\n }\n}")
        yield server.start()
        self.addCleanup(server.stop)
        handler = server.instance.blocks[0].handlers[0]
        self.assertIsInstance(handler, Erratic)
        states = []
        for _ in range(6):
            states.append(handler.ready())
            yield _ask(server.port, "a.example.org.")
        self.assertEqual(states, [False, False, False, True, True, False])


class ErraticSetupTests(unittest.TestCase):
    def test_errors(self) -> None:
        rows = [
            ("erratic {\n drop 1 2\n}",
             "plugin/erratic: Corefile:3 - Error during parsing: Wrong argument count or unexpected line ending after '2'"),
            ("erratic {\n drop a\n}", 'plugin/erratic: strconv.ParseInt: parsing "a": invalid syntax'),
            ("erratic {\n drop -1\n}", 'plugin/erratic: illegal amount value given "-1"'),
            ("erratic {\n delay 3 5x\n}", 'plugin/erratic: time: unknown unit "x" in duration "5x"'),
            ("erratic {\n delay 1 2 3\n}",
             "plugin/erratic: Corefile:3 - Error during parsing: Wrong argument count or unexpected line ending after '3'"),
            ("erratic {\n truncate -1\n}", 'plugin/erratic: illegal amount value given "-1"'),
            ("erratic {\n dorp\n}", "plugin/erratic: Corefile:3 - Error during parsing: unknown property 'dorp'"),
        ]
        for text, error in rows:
            self.assertEqual(setup_error(text), error, text)

    def test_defaults(self) -> None:
        from twisted_coredns.testing import run_setup

        cases = {
            "erratic": (2, 0, 0, 0.1),
            "erratic {\n delay\n}": (0, 2, 0, 0.1),
            "erratic {\n delay 3 5ms\n truncate 5\n}": (0, 3, 5, 0.005),
            "erratic {\n drop 2\n truncate\n}": (2, 0, 2, 0.1),
            "erratic {\n large\n}": (2, 0, 0, 0.1),
        }
        for text, expected in cases.items():
            h = run_setup(text).handler
            self.assertEqual((h.drop, h.delay, h.truncate, h.duration), expected, text)

    def test_large_answers_thirty_records(self) -> None:
        from twisted_coredns.testing import run_setup

        h = run_setup("erratic {\n drop 0\n large\n}").handler
        response = h.serve(make_request("example.org.", "A"))
        self.assertEqual(int.from_bytes(response.wire[6:8], "big"), 30)  # ANCOUNT: the same A, 30 times

    def test_autopath_search(self) -> None:
        self.assertEqual(Erratic().autopath(make_request("x.", "A")), ["a.example.org.", "b.example.org.", ""])


class ErraticReadmeTests(unittest.TestCase):
    @inlineCallbacks
    def test_readme_corefiles_start_and_answer(self) -> Any:
        for path in readme_corefiles("erratic"):
            text = path.read_text()
            server = InProcessServer(text)
            yield server.start()
            try:
                replies = []
                for _ in range(3):
                    replies.append((yield _ask(server.port, "example.org.", timeout=1.0)))
                answered = [r for r in replies if r is not None]
                self.assertTrue(answered, path.name)
                for r in answered:
                    self.assertEqual(r.rcode(), dns.rcode.NOERROR, path.name)
            finally:
                yield server.stop()
