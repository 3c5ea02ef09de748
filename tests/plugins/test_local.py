"""local against a real server: localhost and its subdomains, the RFC 6303 reverse zones, the
localhost_prefix option, the metric, and the setup rows ported from CoreDNS."""

from __future__ import annotations

from typing import Any

import dns.flags
import dns.rcode
import dns.rdatatype
from twisted.internet.defer import inlineCallbacks
from twisted.trial import unittest

from twisted_coredns.metrics import REGISTRY
from twisted_coredns.testing import InProcessServer, serve
from twisted_coredns.testing.setup import check_setup_rows, load_setup_rows

from .small_plugin_support import DATA, readme_corefiles


def _count() -> float:
    return REGISTRY.get_sample_value("coredns_local_localhost_requests_total") or 0.0


class LocalTests(unittest.TestCase):
    corefile = ". {\n local\n whoami\n}\n"

    @inlineCallbacks
    def setUp(self) -> Any:
        self.server = yield serve(self, self.corefile)

    @inlineCallbacks
    def ask(self, name: str, rdtype: str) -> Any:
        reply = yield self.server.query(name, rdtype)
        return reply

    @inlineCallbacks
    def test_localhost(self) -> Any:
        r = yield self.ask("LocalHost.", "A")
        self.assertEqual((r.rcode(), r.answer[0][0].address, r.answer[0].ttl), (0, "127.0.0.1", 604800))
        self.assertEqual(r.answer[0].name.to_text(), "LocalHost.")
        self.assertFalse(r.flags & dns.flags.AA)
        r = yield self.ask("localhost.", "AAAA")
        self.assertEqual(r.answer[0][0].address, "::1")
        r = yield self.ask("localhost.", "SOA")
        soa = r.answer[0][0]
        self.assertEqual((soa.mname.to_text(), soa.rname.to_text(), soa.serial, soa.minimum),
                         ("localhost.", "root.localhost.", 1, 604800))
        r = yield self.ask("localhost.", "NS")
        self.assertEqual(r.answer[0][0].target.to_text(), "localhost.")
        r = yield self.ask("localhost.", "MX")
        self.assertEqual((r.rcode(), r.answer, r.authority[0].rdtype), (0, [], dns.rdatatype.SOA))

    @inlineCallbacks
    def test_subdomains_and_prefix(self) -> Any:
        before = _count()
        for name in ("foo.localhost.", "localhost.example.org."):
            r = yield self.ask(name, "A")
            self.assertEqual(r.answer[0][0].address, "127.0.0.1", name)
        r = yield self.ask("a.b.localhost.", "TXT")
        self.assertEqual((r.rcode(), r.answer, r.authority[0].name.to_text()), (0, [], "a.b.localhost."))
        self.assertEqual(_count() - before, 3)

    @inlineCallbacks
    def test_reverse_zones(self) -> Any:
        r = yield self.ask("1.0.0.127.in-addr.arpa.", "PTR")
        self.assertEqual(r.answer[0][0].target.to_text(), "localhost.")
        r = yield self.ask("1.0.0.127.in-addr.arpa.", "A")
        self.assertEqual((r.rcode(), r.authority[0].name.to_text()), (0, "127.in-addr.arpa."))
        r = yield self.ask("5.0.0.127.IN-ADDR.arpa.", "PTR")
        self.assertEqual((r.rcode(), r.authority[0].name.to_text()),
                         (dns.rcode.NXDOMAIN, "127.IN-ADDR.arpa."))
        for zone in ("0.in-addr.arpa.", "255.in-addr.arpa."):
            r = yield self.ask(zone, "A")
            self.assertEqual((r.rcode(), r.answer, r.authority[0].name.to_text()), (0, [], zone))
            r = yield self.ask("9." + zone, "A")
            self.assertEqual(r.rcode(), dns.rcode.NXDOMAIN)

    @inlineCallbacks
    def test_other_names_go_on(self) -> Any:
        r = yield self.ask("example.org.", "A")
        self.assertEqual(len(r.additional), 2)  # whoami answered


class LocalPrefixOffTests(LocalTests):
    corefile = ". {\n local {\n  localhost_prefix off\n }\n whoami\n}\n"

    @inlineCallbacks
    def test_subdomains_and_prefix(self) -> Any:
        r = yield self.ask("localhost.example.org.", "A")
        self.assertEqual((r.answer, len(r.additional)), ([], 2))  # not intercepted: whoami
        r = yield self.ask("foo.localhost.", "A")
        self.assertEqual(r.answer[0][0].address, "127.0.0.1")


class LocalSetupTests(unittest.TestCase):
    def test_setup_rows(self) -> None:
        rows = load_setup_rows(DATA / "local" / "setup_cases.json", "local", source_contains="coredns")
        check_setup_rows(self, rows)

    @inlineCallbacks
    def test_readme_corefiles(self) -> Any:
        for path in readme_corefiles("local"):
            server = InProcessServer(path.read_text())
            yield server.start()
            try:
                r = yield server.query("localhost.", "A")
                self.assertEqual(r.answer[0][0].address, "127.0.0.1", path.name)
            finally:
                yield server.stop()
