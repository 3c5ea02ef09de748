"""any: ANY queries get RFC 8482's single HINFO record; everything else goes on."""

from __future__ import annotations

from typing import Any

import dns.flags
import dns.rcode
import dns.rdataclass
import dns.rdatatype
from twisted.internet.defer import inlineCallbacks
from twisted.trial import unittest

from twisted_coredns.testing import InProcessServer
from twisted_coredns.testing.setup import check_setup_rows, load_setup_rows, setup_error

from .small_plugin_support import DATA, readme_corefiles


class AnyServerTests(unittest.TestCase):
    @inlineCallbacks
    def setUp(self) -> Any:
        self.server = InProcessServer("example.org {\n whoami\n any\n}\n")
        yield self.server.start()
        self.addCleanup(self.server.stop)

    def check_hinfo(self, r: Any, qname: str, where: str) -> None:
        self.assertEqual(r.rcode(), 0, where)
        self.assertEqual(len(r.answer), 1, where)
        rrset = r.answer[0]
        self.assertEqual(rrset.name.to_text(), qname, where)
        expected = (dns.rdatatype.HINFO, dns.rdataclass.IN, 8482)
        self.assertEqual((rrset.rdtype, rrset.rdclass, rrset.ttl), expected, where)
        self.assertEqual((rrset[0].cpu, rrset[0].os), (b"ANY obsoleted", b"See RFC 8482"), where)
        self.assertFalse(r.flags & dns.flags.AA, f"{where}: CoreDNS does not set AA")
        self.assertEqual((r.authority, r.additional), ([], []), where)

    @inlineCallbacks
    def test_any_gets_hinfo_over_udp_and_tcp(self) -> Any:
        for tcp in (False, True):
            for qname in ("example.org.", "WWW.Example.Org."):
                r = yield self.server.query(qname, "ANY", tcp=tcp)
                self.check_hinfo(r, qname, f"{qname} tcp={tcp}")

    @inlineCallbacks
    def test_rd_copied_and_edns_mirrored(self) -> Any:
        r = yield self.server.query("example.org.", "ANY", edns=0, payload=1400, want_dnssec=True)
        self.check_hinfo(r, "example.org.", "EDNS")
        self.assertTrue(r.flags & dns.flags.RD)
        self.assertEqual((r.edns, r.payload), (0, 1400))
        self.assertTrue(r.ednsflags & dns.flags.DO)

    @inlineCallbacks
    def test_other_types_pass_to_the_next_plugin(self) -> Any:
        for qtype in ("A", "AAAA", "MX", "TXT", "CNAME"):
            r = yield self.server.query("example.org.", qtype)
            self.assertEqual(r.answer, [], qtype)
            self.assertEqual(len(r.additional), 2, f"{qtype}: whoami answered")


class AnyAloneTests(unittest.TestCase):
    @inlineCallbacks
    def test_last_plugin_gives_servfail_for_other_types(self) -> Any:
        server = InProcessServer(". {\n any\n}\n")
        yield server.start()
        self.addCleanup(server.stop)
        r = yield server.query("example.org.", "A")
        self.assertEqual(r.rcode(), dns.rcode.SERVFAIL)
        r = yield server.query("example.org.", "ANY")
        self.assertEqual(r.answer[0].rdtype, dns.rdatatype.HINFO)


class AnySetupTests(unittest.SynchronousTestCase):
    def test_coredns_setup_rows(self) -> None:
        rows = load_setup_rows(DATA / "setup_cases.json", "any")
        check_setup_rows(self, rows, error_prefix="plugin/any: ")

    def test_error_messages(self) -> None:
        for body, message in [
            ("any example.org",
             "plugin/any: Corefile:2 - Error during parsing: Wrong argument count or unexpected line "
             "ending after 'example.org'"),
            ("any { foo }",
             "plugin/any: Corefile:2 - Error during parsing: Unexpected token '{', expecting argument"),
        ]:
            self.assertEqual(setup_error(body), message, body)


class AnyReadmeTests(unittest.TestCase):
    @inlineCallbacks
    def test_readme_corefiles_start_and_answer(self) -> Any:
        for path in readme_corefiles("any"):
            server = InProcessServer(path.read_text(encoding="utf-8"))
            yield server.start()
            try:
                r = yield server.query("example.org.", "ANY")
                self.assertEqual(r.answer[0].rdtype, dns.rdatatype.HINFO, path.name)
                r = yield server.query("example.org.", "A")
                self.assertEqual(len(r.additional), 2, path.name)
            finally:
                yield server.stop()
