# ruff: noqa: E501 - the rows hold CoreDNS's error texts whole, one per line
"""autopath against a real server: the search path from a resolv.conf file or from a plugin
(``@erratic``), the CNAME to the name found, the metric; setup errors."""

from __future__ import annotations

from typing import Any

import dns.rcode
import dns.rdatatype
from twisted.internet.defer import inlineCallbacks
from twisted.trial import unittest

from twisted_coredns.metrics import REGISTRY
from twisted_coredns.plugins.autopath.handler import trim_zone
from twisted_coredns.testing import InProcessServer
from twisted_coredns.testing.setup import setup_error

from .small_plugin_support import DATA

RESOLV = DATA / "autopath" / "resolv.conf"
HOSTS = "hosts {\n  192.0.2.7 www.b.example.org\n  192.0.2.8 api\n }"


class AutoPathTests(unittest.TestCase):
    @inlineCallbacks
    def setUp(self) -> Any:
        self.server = InProcessServer(f". {{\n autopath {RESOLV}\n {HOSTS}\n}}")
        yield self.server.start()
        self.addCleanup(self.server.stop)

    @inlineCallbacks
    def test_found_in_a_later_search_element(self) -> Any:
        server = next(iter(self.server.ports))
        before = REGISTRY.get_sample_value("coredns_autopath_success_total", {"server": server}) or 0
        reply = yield self.server.query("www.a.example.org.", "A")
        self.assertEqual(reply.rcode(), dns.rcode.NOERROR)
        self.assertEqual(str(reply.question[0].name), "www.a.example.org.")
        cname, a = reply.answer
        self.assertEqual((str(cname.name), cname.rdtype, str(cname[0].target)),
                         ("www.a.example.org.", dns.rdatatype.CNAME, "www.b.example.org."))
        self.assertEqual(a[0].address, "192.0.2.7")
        after = REGISTRY.get_sample_value("coredns_autopath_success_total", {"server": server})
        self.assertEqual(after, before + 1)

    @inlineCallbacks
    def test_bare_name_is_the_last_element(self) -> Any:
        reply = yield self.server.query("api.a.example.org.", "A")
        self.assertEqual(str(reply.answer[0][0].target), "api.")
        self.assertEqual(reply.answer[1][0].address, "192.0.2.8")

    @inlineCallbacks
    def test_names_outside_the_first_element_pass(self) -> Any:
        reply = yield self.server.query("www.b.example.org.", "A")
        self.assertEqual([r.rdtype for r in reply.answer], [dns.rdatatype.A])

    @inlineCallbacks
    def test_nothing_found_gives_the_first_reply(self) -> Any:
        reply = yield self.server.query("none.a.example.org.", "A")
        self.assertEqual(reply.rcode(), dns.rcode.SERVFAIL)  # hosts' answer for a missing name
        self.assertEqual(reply.answer, [])


class PluginSourceTests(unittest.TestCase):
    @inlineCallbacks
    def test_search_path_from_erratic(self) -> Any:
        server = InProcessServer(". {\n autopath @erratic\n erratic {\n  drop 0\n }\n}")
        yield server.start()
        self.addCleanup(server.stop)
        reply = yield server.query("host.a.example.org.", "A")
        self.assertEqual(reply.rcode(), dns.rcode.NOERROR)
        self.assertEqual(reply.answer[0][0].address, "192.0.2.53")

    def test_a_plugin_without_a_search_path_is_an_error(self) -> None:
        from twisted_coredns.instance import build

        instance = build(". {\n autopath @whoami\n whoami\n}", reactor=None)
        d = instance.start()
        failures: list[Any] = []
        d.addErrback(failures.append)
        self.assertEqual(len(failures), 1)
        self.assertIn("plugin/autopath: whoami does not implement the AutoPather interface",
                      failures[0].getErrorMessage())


class SetupTests(unittest.TestCase):
    def test_errors(self) -> None:
        self.assertEqual(setup_error("autopath"), "plugin/autopath: no resolv-conf specified")
        self.assertEqual(setup_error("autopath /nonexistent"),
                         'plugin/autopath: failed to parse "/nonexistent": open /nonexistent: no such file or directory')

    def test_zones_and_search(self) -> None:
        from twisted_coredns.testing import run_setup

        h = run_setup(f"autopath example.org {RESOLV}").handler
        self.assertEqual(list(h.zones), ["example.org."])
        self.assertEqual(h.search, ["a.example.org.", "b.example.org.", ""])

    def test_trim_zone(self) -> None:
        self.assertEqual(trim_zone("www.a.example.org.", "a.example.org."), "www")
        with self.assertRaises(ValueError):
            trim_zone("a.example.org.", "a.example.org.")
