# ruff: noqa: E501 - the rows hold CoreDNS's error texts whole, one per line
"""dns64 against a real server over IPv6 (and IPv4 with allow_ipv4): AAAA synthesized from the A
records that the rest of the chain gives, RFC 6052 addresses, the TTL rule, the metric; setup
errors; the README Corefiles start and translate."""

from __future__ import annotations

import ipaddress
from typing import Any

import dns.rcode
from twisted.internet.defer import inlineCallbacks
from twisted.trial import unittest

from twisted_coredns.metrics import REGISTRY
from twisted_coredns.plugins.dns64.handler import to6
from twisted_coredns.testing import InProcessServer
from twisted_coredns.testing.setup import setup_error

from .small_plugin_support import readme_corefiles

HOSTS = """hosts {
  ttl 900
  192.0.2.33 ipv4only.example.org
  192.0.2.34 ipv4only.example.org
  198.51.100.1 dual.example.org
  2001:db8::1 dual.example.org
 }"""


def _addresses(reply: Any) -> list[str]:
    return sorted(rdata.address for rrset in reply.answer if rrset.rdtype == dns.rdatatype.AAAA for rdata in rrset)


def _translated(server: str) -> float:
    return REGISTRY.get_sample_value("coredns_dns64_requests_translated_total", {"server": server}) or 0.0


class DNS64Tests(unittest.TestCase):
    host = "::1"
    options = ""

    @inlineCallbacks
    def start(self, options: str = "", host: str = "::1") -> Any:
        server = InProcessServer(f". {{\n dns64 {options}\n {HOSTS}\n}}", host=host)
        yield server.start()
        self.addCleanup(server.stop)
        return server

    @inlineCallbacks
    def test_synthesizes_from_a_over_ipv6(self) -> Any:
        server = yield self.start()
        address = next(iter(server.ports))
        before = _translated(address)
        reply = yield server.query("ipv4only.example.org.", "AAAA", host="::1")
        self.assertEqual(reply.rcode(), dns.rcode.NOERROR)
        self.assertEqual(_addresses(reply), ["64:ff9b::c000:221", "64:ff9b::c000:222"])
        self.assertEqual(reply.answer[0].ttl, 600)  # min(A's 900, 600 without an SOA)
        self.assertEqual(_translated(address), before + 1)

    @inlineCallbacks
    def test_existing_aaaa_stands_and_nxdomain_stands(self) -> Any:
        server = yield self.start()
        reply = yield server.query("dual.example.org.", "AAAA", host="::1")
        self.assertEqual(_addresses(reply), ["2001:db8::1"])

    def test_name_error_stands(self) -> None:
        # RFC 6147 5.1.2: NXDOMAIN is passed on, and no A query is made.
        from twisted_coredns.plugins.dns64.handler import DNS64
        from twisted_coredns.response import error_reply
        from twisted_coredns.testing import make_request

        dns64 = DNS64()
        request = make_request("nowhere.example.org.", "AAAA", remote=("::1", 5353))
        self.assertFalse(dns64._needs_synthesis(error_reply(request, dns.rcode.NXDOMAIN)))
        self.assertTrue(dns64._needs_synthesis(error_reply(request, dns.rcode.SERVFAIL)))

    @inlineCallbacks
    def test_translate_all_replaces_existing_aaaa(self) -> Any:
        server = yield self.start("{\n  translate_all\n }")
        reply = yield server.query("dual.example.org.", "AAAA", host="::1")
        self.assertEqual(_addresses(reply), ["64:ff9b::c633:6401"])

    @inlineCallbacks
    def test_ipv4_clients_only_with_allow_ipv4(self) -> Any:
        server = yield self.start(host="127.0.0.1")
        reply = yield server.query("ipv4only.example.org.", "AAAA")
        self.assertEqual(_addresses(reply), [])
        server = yield self.start("{\n  allow_ipv4\n  prefix 2001:db8:100::/40\n }", host="127.0.0.1")
        reply = yield server.query("ipv4only.example.org.", "AAAA")
        self.assertEqual(_addresses(reply), ["2001:db8:1c0:2:21::", "2001:db8:1c0:2:22::"])

    @inlineCallbacks
    def test_a_queries_pass_untouched(self) -> Any:
        server = yield self.start()
        reply = yield server.query("ipv4only.example.org.", "A", host="::1")
        self.assertEqual(sorted(r.address for r in reply.answer[0]), ["192.0.2.33", "192.0.2.34"])


class RFC6052Tests(unittest.TestCase):
    def test_the_rfc_examples(self) -> None:
        v4 = ipaddress.IPv4Address("192.0.2.33").packed
        cases = {
            "2001:db8::/32": "2001:db8:c000:221::",
            "2001:db8:100::/40": "2001:db8:1c0:2:21::",
            "2001:db8:122::/48": "2001:db8:122:c000:2:2100::",
            "2001:db8:122:300::/56": "2001:db8:122:3c0:0:221::",
            "2001:db8:122:344::/64": "2001:db8:122:344:c0:2:2100:0",
            "2001:db8:122:344::/96": "2001:db8:122:344::c000:221",
        }
        for prefix, expected in cases.items():
            got = ipaddress.IPv6Address(to6(ipaddress.IPv6Network(prefix), v4))
            self.assertEqual(got, ipaddress.IPv6Address(expected), prefix)


class SetupTests(unittest.TestCase):
    def test_errors(self) -> None:
        rows = {
            "dns64 10.0.0.0/8": 'plugin/dns64: Corefile:2 - Error during parsing: invalid netmask 32 IPv6 address: "10.0.0.0/8"',
            "dns64 64:ff9b::/100": 'plugin/dns64: Corefile:2 - Error during parsing: invalid prefix length "64:ff9b::/100"',
            "dns64 64:ff9b::/24": 'plugin/dns64: Corefile:2 - Error during parsing: invalid prefix length "64:ff00::/24"',
            "dns64 x": "plugin/dns64: invalid CIDR address: x",
            "dns64 a b": "plugin/dns64: Corefile:2 - Error during parsing: Wrong argument count or unexpected line ending after 'b'",
            "dns64 {\n prefix\n}": "plugin/dns64: Corefile:3 - Error during parsing: Wrong argument count or unexpected line ending after 'prefix'",
            "dns64 {\n prefix 10.0.0.0/8\n}": 'plugin/dns64: Corefile:3 - Error during parsing: invalid netmask 32 IPv6 address: "10.0.0.0/8"',
            "dns64 {\n foo\n}": "plugin/dns64: Corefile:3 - Error during parsing: unknown property 'foo'",
        }
        for text, error in rows.items():
            self.assertEqual(setup_error(text), error, text)

    def test_settings(self) -> None:
        from twisted_coredns.testing import run_setup

        h = run_setup("dns64 {\n prefix 64:1337::/96\n translate_all\n allow_ipv4\n}").handler
        self.assertEqual((str(h.prefix), h.translate_all, h.allow_ipv4), ("64:1337::/96", True, True))
        h = run_setup("dns64").handler
        self.assertEqual((str(h.prefix), h.translate_all, h.allow_ipv4), ("64:ff9b::/96", False, False))


class ReadmeTests(unittest.TestCase):
    @inlineCallbacks
    def test_readme_corefiles_translate(self) -> Any:
        expected = {
            "dns64_1.corefile": "64:1337::c000:221",
            "dns64_2.corefile": "64:1337::c000:221",
            "dns64_3.corefile": "64:ff9b::c000:221",
            "dns64_4.corefile": "64:ff9b::c000:221",
        }
        for path in readme_corefiles("dns64"):
            text = path.read_text().rstrip().removesuffix("}") + "  hosts {\n  192.0.2.33 v4.example.org\n }\n}\n"
            server = InProcessServer(text, host="::1")
            yield server.start()
            try:
                reply = yield server.query("v4.example.org.", "AAAA", host="::1")
                self.assertEqual(_addresses(reply), [expected[path.name]], path.name)
            finally:
                yield server.stop()
