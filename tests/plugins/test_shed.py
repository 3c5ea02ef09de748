# ruff: noqa: E501 - the rows hold CoreDNS's error texts whole, one per line
"""shed against a real server: UDP queries past the bound of unanswered ones are dropped and
counted, TCP passes; setup errors; its README Corefile starts."""

from __future__ import annotations

from typing import Any

import dns.exception
import dns.query
from twisted.internet.defer import inlineCallbacks
from twisted.internet.threads import deferToThread
from twisted.trial import unittest

from twisted_coredns.metrics import REGISTRY
from twisted_coredns.testing import InProcessServer, make_query
from twisted_coredns.testing.setup import setup_error

from .small_plugin_support import readme_corefiles


def _udp(port: int, name: str, timeout: float = 0.5) -> Any:
    def ask() -> Any:
        try:
            return dns.query.udp(make_query(name, "A"), "127.0.0.1", port=port, timeout=timeout)
        except dns.exception.Timeout:
            return None
    return deferToThread(ask)


def _dropped(server: str, reason: str) -> float:
    return REGISTRY.get_sample_value("coredns_shed_dropped_total", {"server": server, "reason": reason}) or 0.0


class ShedTests(unittest.TestCase):
    @inlineCallbacks
    def test_full_listener_drops_udp_and_lets_tcp_through(self) -> Any:
        server = InProcessServer(". {\n shed\n erratic {\n  drop 0\n  delay 1 300ms\n }\n}")
        yield server.start()
        self.addCleanup(server.stop)
        shed = server.instance.blocks[0].handlers[0]
        shed.depth = 1  # one query in flight fills the listener
        address = next(iter(server.ports))
        before = _dropped(address, "query")
        first = _udp(server.port, "a.example.org.", timeout=2.0)
        # Wait until the first query is held, then a second one is dropped.
        from twisted.internet import reactor
        from twisted.internet.task import deferLater

        for _ in range(100):
            if shed.listeners.get(address) and shed.listeners[address].in_flight:
                break
            yield deferLater(reactor, 0.01, lambda: None)
        second = yield _udp(server.port, "b.example.org.", timeout=0.2)
        self.assertIsNone(second)
        self.assertEqual(_dropped(address, "query"), before + 1)
        tcp = yield server.query("c.example.org.", "A", tcp=True)
        self.assertEqual(tcp.answer[0][0].address, "192.0.2.53")
        reply = yield first
        self.assertEqual(reply.answer[0][0].address, "192.0.2.53")
        third = yield _udp(server.port, "d.example.org.", timeout=2.0)
        self.assertIsNotNone(third)  # the listener drained: queries are taken again


class SetupTests(unittest.TestCase):
    def test_errors(self) -> None:
        self.assertIsNone(setup_error("shed"))
        self.assertEqual(setup_error("shed extra"),
                         "plugin/shed: Corefile:2 - Error during parsing: Wrong argument count or unexpected line ending after 'extra'")
        self.assertEqual(setup_error("shed {\n depth 10\n}"),
                         "plugin/shed: Corefile:3 - Error during parsing: shed takes no options")
        self.assertEqual(setup_error("shed\nshed"), "plugin/shed: this plugin can only be used once per Server Block")
        self.assertEqual(setup_error("shed", keys="tls://.:853"),
                         'plugin/shed: Corefile:2 - Error during parsing: only plain DNS server blocks are supported; '
                         '"tls://.:853" uses transport "tls"')


class ReadmeTests(unittest.TestCase):
    @inlineCallbacks
    def test_readme_corefile_forwards(self) -> Any:
        upstream = InProcessServer(". {\n whoami\n}")
        yield upstream.start()
        self.addCleanup(upstream.stop)
        for path in readme_corefiles("shed"):
            text = path.read_text().replace("forward . 127.0.0.1", f"forward . 127.0.0.1:{upstream.port}")
            server = InProcessServer(text)
            yield server.start()
            try:
                reply = yield server.query("example.org.", "A")
                self.assertEqual(len(reply.additional), 2, path.name)
            finally:
                yield server.stop()
