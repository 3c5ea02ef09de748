"""auto: its Corefile syntax and errors, and a real server that picks up, reloads and drops the
zone files of a directory (asked over UDP with dnspython)."""

from __future__ import annotations

import os
import tempfile
from typing import Any

import dns.rcode
from twisted.internet import reactor
from twisted.internet.defer import inlineCallbacks
from twisted.internet.task import deferLater
from twisted.trial.unittest import SynchronousTestCase, TestCase

from twisted_coredns.instance import build
from twisted_coredns.plugins.auto.handler import Auto
from twisted_coredns.registry import default_registry
from twisted_coredns.testing import InProcessServer, handler_of, setup_error, until

from ..helpers import write_file
from .file_cases import DATA

README = DATA / "readme"


def _zone(origin: str, serial: int, address: str) -> str:
    return (
        f"$ORIGIN {origin}\n$TTL 300\n@ IN SOA ns hostmaster {serial} 7200 3600 1209600 3600\n"
        f"@ IN NS ns\nns IN A 127.0.0.1\nwww IN A {address}\n"
    )


class AutoSetupTests(SynchronousTestCase):
    """CoreDNS's plugin/auto/setup_test.go rows, and its error texts."""

    def setUp(self) -> None:
        tmp = tempfile.TemporaryDirectory(prefix="auto-setup-")
        self.addCleanup(tmp.cleanup)
        self.dir = tmp.name

    def test_rows(self) -> None:
        from twisted_coredns.testing import run_setup

        auto = run_setup(f"auto example.org {{\n directory {self.dir}\n}}").handler
        self.assertEqual(
            (list(auto.origins), auto.directory, auto.template, auto.reload),
            (["example.org."], self.dir, "${1}", 60.0),
        )
        auto = run_setup(f"auto 10.0.0.0/8 {{\n directory {self.dir} db\\.(.*) {{1}}\n reload 1s\n}}").handler
        self.assertEqual(
            (list(auto.origins), auto.template, auto.reload), (["10.in-addr.arpa."], "${1}", 1.0)
        )
        self.assertIsNotNone(auto.pattern.search("db.example.org"))
        self.assertIsNone(auto.pattern.search("example.org"))

    def test_errors(self) -> None:
        pre = "plugin/auto: Corefile:"
        self.assertEqual(
            setup_error("auto example.org {\n directory\n}"),
            f"{pre}3 - Error during parsing: Wrong argument count or unexpected line ending after "
            "'directory'",
        )
        self.assertEqual(
            setup_error(f"auto example.org {{\n directory {self.dir} db\\.\n}}"),
            f"{pre}3 - Error during parsing: Need at least one sub expression",
        )
        self.assertEqual(
            setup_error(f"auto example.org {{\n directory {self.dir} db\\.(.*)\n}}"),
            f"{pre}3 - Error during parsing: Wrong argument count or unexpected line ending after "
            "'db\\.(.*)'",
        )
        self.assertEqual(
            setup_error(f"auto example.org {{\n directory {self.dir} db\\.(.*) {{1}} extra\n}}"),
            f"{pre}3 - Error during parsing: Wrong argument count or unexpected line ending after 'extra'",
        )
        self.assertEqual(
            setup_error("auto example.org {\n reload\n}"), "plugin/auto: reload duration value is expected"
        )
        self.assertEqual(
            setup_error("auto example.org {\n reload -1s\n}"), "plugin/auto: plugin/file: invalid duration"
        )
        self.assertEqual(
            setup_error("auto example.org {\n no_reload\n}"),
            f"{pre}3 - Error during parsing: unknown property 'no_reload'",
        )

    def test_readme_corefiles_start(self) -> None:
        has_transfer = "transfer" in default_registry()
        for path in sorted(README.glob("auto_*.corefile")):
            text = path.read_text(encoding="utf-8")
            if "transfer" in text and not has_transfer:
                continue
            text = text.replace("/etc/coredns/zones", self.dir)
            instance = build(text, path.name, dns_port=0)
            self.assertIsInstance(handler_of(instance, Auto), Auto)


class AutoServingTests(TestCase):
    timeout = 60

    @inlineCallbacks
    def test_walks_loads_reloads_and_drops(self) -> Any:
        tmp = tempfile.TemporaryDirectory(prefix="auto-test-")
        self.addCleanup(tmp.cleanup)
        d = tmp.name
        write_file(d, "db.example.org", _zone("example.org.", 1, "127.0.0.1"))
        os.mkdir(os.path.join(d, "sub"))
        write_file(os.path.join(d, "sub"), "db.example.net", _zone("example.net.", 1, "127.0.0.2"))
        write_file(d, "README", "not a zone")
        server = InProcessServer(
            f". {{\n auto example.org example.net example.com {{\n  directory {d}\n  reload 50ms\n }}\n}}\n"
        )
        yield server.start()
        self.addCleanup(server.stop)
        auto = handler_of(server.instance, Auto)
        yield until(lambda: auto.walked)
        reply = yield server.query("www.example.org.", "A")
        self.assertEqual(reply.answer[0][0].address, "127.0.0.1")
        reply = yield server.query("www.example.net.", "A")
        self.assertEqual(reply.answer[0][0].address, "127.0.0.2")
        # a zone in the origins without a file: REFUSED (nothing comes after auto)
        reply = yield server.query("www.example.com.", "A")
        self.assertEqual(reply.rcode(), dns.rcode.REFUSED)
        # a new file is picked up
        write_file(d, "db.example.com", _zone("example.com.", 1, "127.0.0.3"))
        yield until(lambda: "example.com." in auto.zones)
        reply = yield server.query("www.example.com.", "A")
        self.assertEqual(reply.answer[0][0].address, "127.0.0.3")
        # a changed serial reloads; a broken file keeps the old zone
        write_file(d, "db.example.org", _zone("example.org.", 2, "127.0.0.9"))
        yield until(lambda: auto.zones["example.org."].serial == 2)
        write_file(d, "db.example.org", _zone("example.org.", 3, "127.0.0.9") + "bad IN A x\n")
        yield deferLater(reactor, 0.2, lambda: None)
        reply = yield server.query("www.example.org.", "A")
        self.assertEqual(reply.answer[0][0].address, "127.0.0.9")
        # a removed file drops its zone
        os.remove(os.path.join(d, "sub", "db.example.net"))
        yield until(lambda: "example.net." not in auto.zones)
        reply = yield server.query("www.example.net.", "A")
        self.assertEqual(reply.rcode(), dns.rcode.REFUSED)
        self.assertIsNotNone(auto.transfer("example.com.", -1))

