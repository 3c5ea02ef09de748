"""bufsize against a real server: the EDNS size a query offers is capped before the chain (and an
upstream) sees it, and the reply is cut to the capped size."""

from __future__ import annotations

import os
from typing import Any

import dns.flags
import dns.message
import dns.rrset
from twisted.internet.defer import inlineCallbacks
from twisted.trial import unittest

from twisted_coredns.testing import InProcessServer
from twisted_coredns.testing.setup import check_setup_rows, load_setup_rows

from .small_plugin_support import DATA, readme_corefiles
from .test_minimal import ScriptedUpstream


def _big(query: dns.message.Message) -> dns.message.Message:
    """A reply of some 1,700 octets: 100 A records."""
    reply = dns.message.make_response(query)
    name = query.question[0].name
    reply.answer.append(dns.rrset.from_text(name, 60, "IN", "A", *[f"192.0.2.{i}" for i in range(100)]))
    return reply


class BufsizeTests(unittest.TestCase):
    @inlineCallbacks
    def serve(self, bufsize: str) -> Any:
        self.upstream = ScriptedUpstream(_big)
        self.addCleanup(self.upstream.stop)
        server = InProcessServer(f". {{\n {bufsize}\n forward . {self.upstream.address}\n}}\n")
        yield server.start()
        self.addCleanup(server.stop)
        return server

    @inlineCallbacks
    def test_default_caps_at_1232(self) -> Any:
        server = yield self.serve("bufsize")
        r = yield server.query("example.org.", "A", edns=0, payload=4096)
        self.assertEqual(self.upstream.queries[-1].payload, 1232, "the upstream sees the capped size")
        self.assertTrue(r.flags & dns.flags.TC, "the reply was cut to 1232")
        self.assertEqual(r.payload, 1232)

    @inlineCallbacks
    def test_smaller_sizes_and_no_edns_pass(self) -> Any:
        server = yield self.serve("bufsize 1100")
        yield server.query("example.org.", "A", edns=0, payload=800)
        self.assertEqual(self.upstream.queries[-1].payload, 800)
        yield server.query("example.org.", "A", edns=0, payload=1400)
        self.assertEqual(self.upstream.queries[-1].payload, 1100)
        yield server.query("example.org.", "A")
        self.assertEqual(self.upstream.queries[-1].edns, -1)

    def test_setup_rows(self) -> None:
        rows = load_setup_rows(DATA / "bufsize" / "setup_cases.json", "bufsize", source_contains="coredns")
        check_setup_rows(self, rows)

    @inlineCallbacks
    def test_readme_corefiles(self) -> Any:
        upstream = ScriptedUpstream(_big)
        self.addCleanup(upstream.stop)
        cwd = os.getcwd()
        os.chdir(DATA / "bufsize")  # bufsize_2's zone file is named relative to the working folder
        self.addCleanup(os.chdir, cwd)
        for path in readme_corefiles("bufsize"):
            text = path.read_text().replace("forward . 127.0.0.1", f"forward . {upstream.address}")
            server = InProcessServer(text)
            yield server.start()
            try:
                r = yield server.query("www.example.org.", "A", edns=0, payload=4096)
            finally:
                yield server.stop()
            self.assertEqual(r.payload, 1100 if path.stem == "bufsize_1" else 1220, path.name)
