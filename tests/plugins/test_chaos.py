"""chaos: CH TXT queries for the version, authors and host name, the rest passed on."""

from __future__ import annotations

import socket
from typing import Any

import dns.flags
import dns.rcode
import dns.rdataclass
import dns.rdatatype
from twisted.internet.defer import inlineCallbacks
from twisted.trial import unittest

from twisted_coredns import __version__
from twisted_coredns.plugins import chaos
from twisted_coredns.testing import InProcessServer
from twisted_coredns.testing.setup import check_setup_rows, load_setup_rows, setup_error

from .small_plugin_support import DATA, build_block, readme_corefiles


def _texts(r: Any) -> list[str]:
    return [b"".join(rd.strings).decode() for rrset in r.answer for rd in rrset]


class ChaosServerTests(unittest.TestCase):
    @inlineCallbacks
    def setUp(self) -> Any:
        self.server = InProcessServer(
            '. {\n chaos CoreDNS-001 "Miek Gieben" info@coredns.io\n whoami\n}\n'
            "version.bind {\n chaos CoreDNS-001\n}\n"
        )
        yield self.server.start()
        self.addCleanup(self.server.stop)

    @inlineCallbacks
    def ask(self, qname: str, qtype: str = "TXT", rdclass: str = "CH", **kw: Any) -> Any:
        r = yield self.server.query(qname, qtype, rdclass=rdclass, **kw)
        return r

    @inlineCallbacks
    def test_answers(self) -> Any:
        host = socket.gethostname()
        for qname, expected in [
            ("version.bind.", ["CoreDNS-001"]),
            ("version.server.", ["CoreDNS-001"]),
            ("VERSION.Bind.", ["CoreDNS-001"]),
            ("hostname.bind.", [host]),
            ("id.server.", [host]),
        ]:
            for tcp in (False, True):
                where = f"{qname} tcp={tcp}"
                r = yield self.ask(qname, tcp=tcp)
                self.assertEqual(r.rcode(), 0, where)
                self.assertEqual(_texts(r), expected, where)
                rrset = r.answer[0]
                self.assertEqual(rrset.name.to_text(), qname, f"{where}: owner as asked")
                self.assertEqual((rrset.rdtype, rrset.rdclass, rrset.ttl),
                                 (dns.rdatatype.TXT, dns.rdataclass.CH, 0), where)
                self.assertFalse(r.flags & dns.flags.AA, f"{where}: no AA, as in CoreDNS")

    @inlineCallbacks
    def test_authors_one_record_each_in_random_order(self) -> Any:
        orders = set()
        for _ in range(30):
            r = yield self.ask("authors.bind.")
            self.assertEqual(len(r.answer[0]), 2)
            texts = tuple(b"".join(rd.strings).decode() for rd in r.answer[0])
            self.assertEqual(sorted(texts), ["Miek Gieben", "info@coredns.io"])
            orders.add(texts)
        self.assertEqual(len(orders), 2, "both orders seen in 30 queries (a 1 in 2^29 miss)")

    @inlineCallbacks
    def test_edns_mirrored(self) -> Any:
        r = yield self.ask("version.bind.", edns=0, payload=1400, want_dnssec=True)
        self.assertEqual(_texts(r), ["CoreDNS-001"])
        self.assertEqual((r.edns, r.payload), (0, 1400))
        self.assertTrue(r.ednsflags & dns.flags.DO)

    @inlineCallbacks
    def test_other_queries_go_to_the_next_plugin(self) -> Any:
        # whoami follows chaos in the root block; its CH records would be Chaosnet data to
        # dnspython, so CH queries that pass on are asked in "version.bind." where chaos is last.
        for qname, qtype, rdclass in [
            ("hostname.bind.", "TXT", "IN"),  # not CH
            ("authors.bind.", "SRV", "IN"),
        ]:
            where = f"{qname} {rdclass} {qtype}"
            r = yield self.ask(qname, qtype, rdclass)
            self.assertEqual(r.answer, [], where)
            self.assertEqual(len(r.additional), 2, f"{where}: whoami answered")
        for qname, qtype, rdclass in [
            ("version.bind.", "A", "CH"),
            ("version.bind.", "SRV", "CH"),
            ("x.version.bind.", "TXT", "CH"),
            ("version.bind.", "TXT", "IN"),
        ]:
            r = yield self.ask(qname, qtype, rdclass)
            self.assertEqual(r.rcode(), dns.rcode.SERVFAIL, f"{qname} {rdclass} {qtype}: chaos is last")
        r = yield self.ask("version.bind.")
        self.assertEqual(_texts(r), ["CoreDNS-001"])


class ChaosClassTests(unittest.TestCase):
    @inlineCallbacks
    def test_ch_refused_without_chaos_and_let_in_with_it(self) -> Any:
        without = InProcessServer(". {\n whoami\n}\n")
        yield without.start()
        self.addCleanup(without.stop)
        r = yield without.query("version.bind.", "TXT", rdclass="CH")
        self.assertEqual(r.rcode(), dns.rcode.REFUSED)
        self.assertTrue(build_block("chaos").blocks[0].enable_chaos)
        self.assertFalse(build_block("whoami").blocks[0].enable_chaos)

    @inlineCallbacks
    def test_defaults(self) -> Any:
        server = InProcessServer(". {\n chaos\n}\n")
        yield server.start()
        self.addCleanup(server.stop)
        r = yield server.query("version.bind.", "TXT", rdclass="CH")
        self.assertEqual(_texts(r), [f"twisted-coredns-{__version__}"])
        r = yield server.query("authors.bind.", "TXT", rdclass="CH")
        self.assertEqual(sorted(_texts(r)), sorted(chaos.AUTHORS))


class ChaosSetupTests(unittest.SynchronousTestCase):
    def parsed(self, body: str) -> tuple[str, list[str]]:
        handler = build_block(body).blocks[0].handlers[0]
        assert isinstance(handler, chaos.Chaos)
        return handler.version, handler.authors

    def test_coredns_setup_rows(self) -> None:
        rows = load_setup_rows(DATA / "setup_cases.json", "chaos")
        check_setup_rows(self, rows, error_prefix="plugin/chaos: ")

    def test_arguments(self) -> None:
        long = "v" * 300
        for body, version, authors in [
            ("chaos", f"twisted-coredns-{__version__}", list(chaos.AUTHORS)),
            ("chaos v2", "v2", list(chaos.AUTHORS)),
            ('chaos v3 "Miek Gieben"', "v3", ["Miek Gieben"]),
            ("chaos v4 zed alice zed bob", "v4", ["alice", "bob", "zed"]),  # unique, sorted
            (f"chaos {long}", "v" * 255, list(chaos.AUTHORS)),  # one argument: cut to 255
            (f"chaos {long} {long}", long, ["v" * 255]),  # CoreDNS cuts the authors only
            ("chaos v5 {\n}", "v5", list(chaos.AUTHORS)),  # an empty block is fine
            ("chaos first\nchaos second", "first", list(chaos.AUTHORS)),  # only the first line counts
        ]:
            self.assertEqual(self.parsed(body), (version, authors), body)

    def test_error_messages(self) -> None:
        self.assertEqual(
            setup_error("chaos v2 {\n\t\t\t\tunknown\n\t\t\t}"),
            "plugin/chaos: Corefile:3 - Error during parsing: unknown property 'unknown'",
        )


class ChaosReadmeTests(unittest.TestCase):
    @inlineCallbacks
    def test_readme_corefiles_start_and_answer(self) -> Any:
        for path in readme_corefiles("chaos"):
            server = InProcessServer(path.read_text(encoding="utf-8"))
            yield server.start()
            try:
                r = yield server.query("version.bind.", "TXT", rdclass="CH")
                self.assertEqual(_texts(r), ["CoreDNS-001"], path.name)
                r = yield server.query("authors.bind.", "TXT", rdclass="CH")
                self.assertEqual(_texts(r), ["info@coredns.io"], path.name)
                r = yield server.query("id.server.", "TXT", rdclass="CH")
                self.assertEqual(_texts(r), [socket.gethostname()], path.name)
            finally:
                yield server.stop()
