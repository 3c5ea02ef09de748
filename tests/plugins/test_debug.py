"""debug: [DEBUG] lines shown and handler tracebacks logged, process-wide, while a Corefile with
debug runs; the server still answers SERVFAIL for a crashing handler and keeps serving."""

from __future__ import annotations

import textwrap
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import dns.message
import dns.rcode
from twisted.internet.defer import inlineCallbacks
from twisted.trial import unittest

from twisted_coredns import clog
from twisted_coredns.plugins.debug import hexdump, log_hexdump
from twisted_coredns.testing import InProcessServer, SubprocessServer, serve
from twisted_coredns.testing.setup import SetupResult, check_setup_rows, load_setup_rows, setup_error

from ..helpers import test_registry
from .small_plugin_support import DATA, build_block, captured_log, readme_corefiles


def _keep_debug_flag(case: unittest.SynchronousTestCase) -> None:
    """Put the process-wide flag back after the test, whatever it started."""
    case.addCleanup(setattr, clog, "debug_enabled", clog.debug_enabled)


class DebugSetupTests(unittest.SynchronousTestCase):
    def test_coredns_setup_rows(self) -> None:
        def debug_on(row: Mapping[str, Any], result: SetupResult) -> None:
            self.assertTrue(result.config.debug, row["input"])

        rows = load_setup_rows(DATA / "setup_cases.json", "debug")
        check_setup_rows(self, rows, check=debug_on, error_prefix="plugin/debug: ")

    def test_error_messages(self) -> None:
        for body, message in [
            ("debug off",
             "plugin/debug: Corefile:2 - Error during parsing: Wrong argument count or unexpected line "
             "ending after 'off'"),
            ("debug {\n}",
             "plugin/debug: Corefile:2 - Error during parsing: Unexpected token '{', expecting argument"),
            ("debug\ndebug on",
             "plugin/debug: Corefile:3 - Error during parsing: Wrong argument count or unexpected line "
             "ending after 'on'"),
        ]:
            self.assertEqual(setup_error(body), message, body)

    def test_setup_alone_does_not_switch_debug_on(self) -> None:
        _keep_debug_flag(self)
        clog.debug_enabled = False
        build_block("debug")
        self.assertFalse(clog.debug_enabled, "only starting the Corefile does")


class HexdumpTests(unittest.SynchronousTestCase):
    def query(self) -> bytes:
        m = dns.message.make_query("example.local.", "A", use_edns=0, payload=4096, want_dnssec=True)
        m.id = 10
        return m.to_wire()

    def test_hexdump_as_coredns_prints_it(self) -> None:
        # The example of CoreDNS's plugin/debug/pcap_test.go, same message, same bytes.
        self.assertEqual(hexdump(self.query()), textwrap.dedent("""\
            debug: 000000 00 0a 01 00 00 01 00 00 00 00 00 01 07 65 78 61
            debug: 000010 6d 70 6c 65 05 6c 6f 63 61 6c 00 00 01 00 01 00
            debug: 000020 00 29 10 00 00 00 80 00 00 00
            debug: 00002a"""))

    def test_log_hexdump_only_in_debug_mode(self) -> None:
        _keep_debug_flag(self)
        log = clog.PluginLogger("forward")
        with captured_log() as out:
            clog.debug_enabled = False
            log_hexdump(log, "Wrong reply for id: 10", self.query())
            self.assertEqual(out.getvalue(), "")
            clog.debug_enabled = True
            log_hexdump(log, "Wrong reply for id: 10", self.query())
            log_hexdump(log, "nothing to dump", b"")
        self.assertEqual(
            out.getvalue().splitlines()[:2],
            [
                "[DEBUG] plugin/forward: Wrong reply for id: 10",
                "debug: 000000 00 0a 01 00 00 01 00 00 00 00 00 01 07 65 78 61",
            ],
        )
        self.assertNotIn("nothing to dump", out.getvalue())


class DebugServerTests(unittest.TestCase):
    """In this process: the flag follows the started Corefile, and a crash is logged in full."""

    @inlineCallbacks
    def test_flag_follows_the_running_corefile(self) -> Any:
        _keep_debug_flag(self)
        clog.debug_enabled = False
        # debug in one block switches it on for the whole process.
        corefile = "example.org {\n whoami\n}\nexample.net {\n debug\n whoami\n}\n"
        yield serve(self, corefile, registry=test_registry())
        self.assertTrue(clog.debug_enabled)
        # A Corefile started later without debug (a reload) switches it off again.
        yield serve(self, ". {\n whoami\n}\n", registry=test_registry())
        self.assertFalse(clog.debug_enabled)

    @inlineCallbacks
    def crash_log(self, corefile: str) -> Any:
        _keep_debug_flag(self)
        with captured_log() as out:
            server = yield serve(self, corefile, registry=test_registry())
            clog.PluginLogger("test").debug("a debug line")
            r = yield server.query("crash.example.")
            self.assertEqual(r.rcode(), dns.rcode.SERVFAIL)
            r = yield server.query("x.crash.example.")
            self.assertEqual(r.rcode(), 0, "the server keeps serving")
        self.assertEqual(len(self.flushLoggedErrors(RuntimeError)), 1)
        return out.getvalue()

    @inlineCallbacks
    def test_without_debug_one_line_and_no_debug_lines(self) -> Any:
        log = yield self.crash_log("crash.example {\n crash\n whoami\n}\n")
        errors = [line for line in log.splitlines() if line.startswith("[ERROR]")]
        self.assertEqual(len(errors), 1, log)
        self.assertIn("handler exploded", errors[0])
        self.assertNotIn("Traceback", log)
        self.assertNotIn("[DEBUG]", log)

    @inlineCallbacks
    def test_with_debug_traceback_and_debug_lines(self) -> Any:
        log = yield self.crash_log("crash.example {\n debug\n crash\n whoami\n}\n")
        self.assertIn("[DEBUG] plugin/test: a debug line", log)
        self.assertIn("Traceback (most recent call last):", log)
        self.assertIn("RuntimeError: handler exploded", log)
        self.assertIn("in serve", log, "the frame of the handler that raised is shown")

    @inlineCallbacks
    def test_readme_corefiles_start_and_answer(self) -> Any:
        _keep_debug_flag(self)
        for path in readme_corefiles("debug"):
            server = InProcessServer(path.read_text(encoding="utf-8"))
            yield server.start()
            try:
                self.assertTrue(clog.debug_enabled, path.name)
                r = yield server.query("example.org.")
                # The example block has no plugin that answers: CoreDNS refuses, so do we.
                self.assertEqual(r.rcode(), dns.rcode.REFUSED, path.name)
            finally:
                yield server.stop()


_DROPIN = '''\
"""Test plugins for tests/plugins/test_debug.py: one that logs at debug level, one that crashes."""
from twisted_coredns.clog import PluginLogger
from twisted_coredns.plugin import Handler, Plugin

_log = PluginLogger("chatty")


class _Chatty(Handler):
    name = "chatty"

    def serve(self, request):
        _log.debug("saw " + request.qname)
        if request.name.startswith("crash."):
            raise RuntimeError("handler exploded")
        return self.serve_next(request)


def _setup(controller):
    return _Chatty()


chatty = Plugin("chatty", _setup, before="whoami")
'''


class DebugCommandTests(unittest.SynchronousTestCase):
    """The real ``twisted-coredns`` command, its own output."""

    def run_server(self, corefile: str) -> str:
        directory = Path(self.mktemp()).resolve()
        plugins = directory / "twisted" / "plugins"
        plugins.mkdir(parents=True)
        (plugins / "coredns_debug_test_dropin.py").write_text(_DROPIN, encoding="utf-8")
        server = SubprocessServer(corefile, directory=directory, env={"PYTHONPATH": str(directory)})
        server.start()
        try:
            self.assertEqual(server.query("crash.example.").rcode(), dns.rcode.SERVFAIL)
            self.assertEqual(server.query("x.crash.example.").rcode(), 0, "the server keeps serving")
            server.wait_for_log("x.crash.example." if "debug" in corefile else "handler exploded")
        finally:
            server.stop()
        return server.log()

    def test_without_debug(self) -> None:
        log = self.run_server(". {\n chatty\n whoami\n}\n")
        self.assertIn('[ERROR] ', log)
        self.assertIn("handler exploded", log)
        self.assertNotIn("Traceback", log)
        self.assertNotIn("[DEBUG]", log)

    def test_with_debug(self) -> None:
        log = self.run_server(". {\n debug\n chatty\n whoami\n}\n")
        self.assertIn("[DEBUG] plugin/chatty: saw crash.example.", log)
        self.assertIn("[DEBUG] plugin/chatty: saw x.crash.example.", log)
        self.assertIn("Traceback (most recent call last):", log)
        self.assertIn("RuntimeError: handler exploded", log)
