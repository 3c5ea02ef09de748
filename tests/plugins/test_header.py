"""header against a real server: query rules change what the chain sees, response rules the
reply's flags; the README Corefiles and CoreDNS's setup rows."""

from __future__ import annotations

from typing import Any

import dns.flags
from twisted.internet.defer import inlineCallbacks
from twisted.trial import unittest

from twisted_coredns.testing import InProcessServer, make_query
from twisted_coredns.testing.setup import check_setup_rows, load_setup_rows

from .small_plugin_support import DATA, readme_corefiles


class HeaderTests(unittest.TestCase):
    @inlineCallbacks
    def serve(self, rules: str) -> Any:
        server = InProcessServer(f". {{\n header {{\n{rules}\n }}\n whoami\n}}\n")
        yield server.start()
        self.addCleanup(server.stop)
        return server

    @inlineCallbacks
    def test_response_set_and_clear(self) -> Any:
        server = yield self.serve("  response set ra aa\n  response clear rd")
        r = yield server.query("example.org.", "A")  # dnspython sets RD
        self.assertTrue(r.flags & dns.flags.RA and r.flags & dns.flags.AA)
        self.assertFalse(r.flags & dns.flags.RD)

    @inlineCallbacks
    def test_response_clear_aa(self) -> Any:
        server = yield self.serve("  response clear aa")
        r = yield server.query("example.org.", "A", tcp=True)
        self.assertFalse(r.flags & dns.flags.AA)  # whoami sets it; the rule takes it away

    @inlineCallbacks
    def test_query_rules_reach_the_chain(self) -> Any:
        # whoami copies RD from the query it sees into its reply.
        server = yield self.serve("  query set rd")
        r = yield server.query("example.org.", "A", message=make_query("example.org.", "A", flags=0))
        self.assertTrue(r.flags & dns.flags.RD)
        server = yield self.serve("  QUERY CLEAR RD")
        r = yield server.query("example.org.", "A")
        self.assertFalse(r.flags & dns.flags.RD)

    @inlineCallbacks
    def test_readme_corefiles(self) -> Any:
        expected = {"header_1": (dns.flags.RA, 0), "header_2": (dns.flags.RA | dns.flags.AA, dns.flags.RD),
                    "header_3": (dns.flags.RD, 0)}
        for path in readme_corefiles("header"):
            # As written the block has no plugin that answers (SERVFAIL, unchanged: nothing was
            # written through header); whoami is added to see the flags.
            bare = InProcessServer(path.read_text())
            yield bare.start()
            r = yield bare.query("example.org.", "A")
            yield bare.stop()
            self.assertEqual(r.rcode(), 2, path.name)
            server = InProcessServer(path.read_text().replace("\n}", "\n    whoami\n}"))
            yield server.start()
            try:
                r = yield server.query("example.org.", "A", message=make_query("example.org.", "A", flags=0))
            finally:
                yield server.stop()
            on, off = expected[path.stem]
            self.assertEqual(r.flags & on, on, path.name)
            self.assertEqual(r.flags & off, 0, path.name)

    def test_setup_rows(self) -> None:
        rows = load_setup_rows(DATA / "header" / "setup_cases.json", "header", source_contains="coredns")
        check_setup_rows(self, rows)
