"""cancel against a real server: a forward to a loopback upstream that never answers is cancelled
at the deadline, the client gets SERVFAIL, and forward's pending exchange is freed."""

from __future__ import annotations

import time
from typing import Any

import dns.rcode
from twisted.internet.defer import inlineCallbacks
from twisted.trial import unittest

from twisted_coredns.plugins.forward.forward import Forward
from twisted_coredns.testing import InProcessServer
from twisted_coredns.testing.setup import check_setup_rows, load_setup_rows

from .small_plugin_support import DATA, readme_corefiles
from .test_minimal import ScriptedUpstream


class CancelTests(unittest.TestCase):
    @inlineCallbacks
    def test_silent_upstream_is_cancelled(self) -> Any:
        upstream = ScriptedUpstream(lambda query: None)
        self.addCleanup(upstream.stop)
        server = InProcessServer(f". {{\n cancel 200ms\n forward . {upstream.address}\n}}\n")
        yield server.start()
        self.addCleanup(server.stop)
        started = time.monotonic()
        r = yield server.query("example.org.", "A", timeout=4)
        took = time.monotonic() - started
        self.assertEqual(r.rcode(), dns.rcode.SERVFAIL)
        self.assertLess(took, 1.5, "answered at the deadline, not at forward's own timeout")
        forward = next(h for h in server.instance.blocks[0].handlers if isinstance(h, Forward))
        live = [c.liveMessages for p in forward.proxies for conns in p._conns.values() for c in conns]
        self.assertTrue(all(not messages for messages in live), "the cancelled exchange is forgotten")
        self.assertEqual(len(upstream.queries), 1)

    @inlineCallbacks
    def test_quick_answers_pass(self) -> Any:
        server = InProcessServer(". {\n cancel 1s\n whoami\n}\n")
        yield server.start()
        self.addCleanup(server.stop)
        r = yield server.query("example.org.", "A")
        self.assertEqual((r.rcode(), len(r.additional)), (0, 2))

    def test_setup_rows(self) -> None:
        rows = load_setup_rows(DATA / "cancel" / "setup_cases.json", "cancel", source_contains="coredns")
        check_setup_rows(self, rows)

    @inlineCallbacks
    def test_readme_corefiles(self) -> Any:
        for path, timeout in zip(readme_corefiles("cancel"), (5.001, 1.0), strict=True):
            server = InProcessServer(path.read_text())
            yield server.start()
            try:
                handler = server.instance.blocks[0].handlers[0]
                self.assertEqual((handler.name, handler.timeout), ("cancel", timeout))  # type: ignore[attr-defined]
                r = yield server.query("example.org.", "A")
                self.assertEqual(len(r.additional), 2, path.name)
            finally:
                yield server.stop()
