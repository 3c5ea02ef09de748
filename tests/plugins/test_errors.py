"""The errors plugin: its Corefile syntax (CoreDNS's setup rows and error texts), Go regular
expressions for ``consolidate``, and the lines real servers log for failing queries."""

from __future__ import annotations

import importlib.util
import re
import signal
from collections.abc import Mapping
from typing import Any

import dns.rcode
from twisted.internet.defer import inlineCallbacks
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase, TestCase

from twisted_coredns import clog
from twisted_coredns.corefile import CorefileError
from twisted_coredns.goregexp import GoRegexpError, compile_go
from twisted_coredns.instance import build
from twisted_coredns.plugins.errors.handler import ErrorHandler
from twisted_coredns.testing import InProcessServer, SubprocessServer
from twisted_coredns.testing.setup import SetupResult, check_setup_rows, load_setup_rows

from .logerr_support import DATA, FAILED_ERROR, TIMEOUT_ERROR, LogCapture, answers_registry


def _handler(instance: Any) -> ErrorHandler:
    for handler in instance.blocks[0].handlers:
        if isinstance(handler, ErrorHandler):
            return handler
    raise AssertionError("no errors handler in the chain")


# -- setup ---------------------------------------------------------------------------------------


class SetupTests(SynchronousTestCase):
    def test_coredns_rows(self) -> None:
        """CoreDNS's TestErrorsParse and TestShowFirstOption rows."""
        rows = load_setup_rows(DATA / "errors_setup_cases.json", source_contains="coredns/coredns @4b26cce")
        self.assertEqual(len(rows), 31)

        def parsed(row: Mapping[str, Any], result: SetupResult) -> None:
            text, instance = row["input"], result.instance
            handler = _handler(instance)
            self.assertEqual(len(handler.patterns), row["patterns"], text)
            self.assertEqual(handler.stacktrace, row["stacktrace"], text)
            self.assertEqual(bool(result.config.settings.get("stacktrace")), row["stacktrace"], text)
            if "level" in row:
                self.assertEqual(handler.patterns[0].level, row["level"], text)
                self.assertEqual(handler.patterns[0].show_first, row["show_first"], text)

        check_setup_rows(self, rows, check=parsed, error_prefix="plugin/errors: ")

    def test_error_texts(self) -> None:
        p = "plugin/errors: Corefile:"
        table = [
            ("errors errors.txt", f"{p}2 - Error during parsing: invalid log file: errors.txt"),
            (
                "errors { log visible }",
                f"{p}2 - Syntax error: Unexpected token 'log', expecting 'Unknown field log'",
            ),
            ("errors\nerrors", "plugin/errors: this plugin can only be used once per Server Block"),
            (
                "errors a b",
                f"{p}2 - Error during parsing: Wrong argument count or unexpected line ending after 'b'",
            ),
            (
                "errors {\n consolidate\n}",
                f"{p}3 - Error during parsing: Wrong argument count or unexpected line ending after "
                "'consolidate'",
            ),
            (
                "errors {\n consolidate 1m\n}",
                f"{p}3 - Error during parsing: Wrong argument count or unexpected line ending after '1m'",
            ),
            (
                "errors {\n consolidate 1m a b c d\n}",
                f"{p}3 - Error during parsing: Wrong argument count or unexpected line ending after 'd'",
            ),
            (
                "errors {\n consolidate 1m .* extra\n}",
                f"{p}3 - Error during parsing: unknown option in consolidate: extra",
            ),
            (
                "errors {\n consolidate abc .*\n}",
                f'{p}3 - Error during parsing: time: invalid duration "abc"',
            ),
            (
                "errors {\n consolidate 1 .*\n}",
                f'{p}3 - Error during parsing: time: missing unit in duration "1"',
            ),
            (
                "errors {\n consolidate 1d .*\n}",
                f'{p}3 - Error during parsing: time: unknown unit "d" in duration "1d"',
            ),
            (
                "errors {\n consolidate 1m ())\n}",
                f"{p}3 - Error during parsing: error parsing regexp: unexpected ): `())`",
            ),
            (
                "errors {\n consolidate 1m x warning error\n}",
                f"{p}3 - Error during parsing: multiple log levels specified in consolidate",
            ),
            (
                "errors {\n consolidate 1m x show_first warning\n}",
                f"{p}3 - Error during parsing: log level must come before show_first in consolidate",
            ),
            (
                "errors {\n stacktrace foo\n}",
                f"{p}3 - Syntax error: Unexpected token 'foo', expecting 'Unknown field foo'",
            ),
            (
                "errors {\n stacktrace {\n }\n}",
                f"{p}3 - Syntax error: Unexpected token '{{', expecting 'Unknown field {{'",
            ),
            (
                "errors {\n consolidate 1m " + "a" * 10001 + "\n}",
                f"{p}3 - Error during parsing: regex pattern too long: 10001 > 10000",
            ),
        ]
        for body, want in table:
            with self.assertRaises(CorefileError, msg=body) as caught:
                build(". {\n" + body + "\n}\n")
            self.assertEqual(str(caught.exception), want, body)

    def test_caddy_reads_block_words_one_at_a_time(self) -> None:
        handler = _handler(build(". {\n errors {\n stacktrace consolidate 1m x\n }\n}\n"))
        self.assertTrue(handler.stacktrace)
        self.assertEqual([p.regexp.pattern for p in handler.patterns], ["x"])

    def test_pattern_values(self) -> None:
        handler = _handler(
            build(
                '. {\n errors stdout {\n consolidate 1m30s "^Failed to .+" info show_first\n'
                " consolidate -1s x\n }\n}\n"
            )
        )
        first, second = handler.patterns
        self.assertEqual(
            (first.period_ns, first.regexp.pattern, first.level, first.show_first),
            (90_000_000_000, "^Failed to .+", "info", True),
        )
        self.assertEqual(
            (second.period_ns, second.level, second.show_first), (-1_000_000_000, "error", False)
        )

    def test_readme_corefiles_start(self) -> None:
        """Every Corefile of CoreDNS's errors README sets up. Their forward upstream is rewritten to
        127.0.0.1; while this tree has no forward plugin the forward line is left out."""
        files = sorted((DATA / "readme_corefiles").glob("errors_*.corefile"))
        self.assertEqual(len(files), 3)
        have_forward = importlib.util.find_spec("twisted_coredns.plugins.forward.setup") is not None
        for path in files:
            text = path.read_text(encoding="utf-8")
            self.assertNotIn("8.8.8.8", text)
            if not have_forward:
                text = "\n".join(line for line in text.splitlines() if not line.strip().startswith("forward"))
            try:
                build(text, path.name, dns_port=0)
            except CorefileError as exc:
                self.fail(f"{path.name}: {exc}")


# -- Go regular expressions ---------------------------------------------------------------------


class GoRegexpTests(SynchronousTestCase):
    def test_errors_worded_as_go(self) -> None:
        table = [
            ("())", "unexpected ): `())`"),
            (")", "unexpected ): `)`"),
            ("(abc", "missing closing ): `(abc`"),
            ("a(b(c)", "missing closing ): `a(b(c)`"),
            ("[a", "missing closing ]: `[a`"),
            ("x[^a-", "missing closing ]: `[^a-`"),
            ("a**", "invalid nested repetition operator: `**`"),
            ("a*+", "invalid nested repetition operator: `*+`"),
            ("a+?*", "invalid nested repetition operator: `+?*`"),
            ("x{2}{3}", "invalid nested repetition operator: `{2}{3}`"),
            ("*", "missing argument to repetition operator: `*`"),
            ("a|*", "missing argument to repetition operator: `*`"),
            ("(?i)+", "missing argument to repetition operator: `+`"),
            ("(+)", "missing argument to repetition operator: `+`"),
            ("{2}", "missing argument to repetition operator: `{2}`"),
            ("(?=x)", "invalid or unsupported Perl syntax: `(?=`"),
            ("(?!x)", "invalid or unsupported Perl syntax: `(?!`"),
            ("(?i", "invalid or unsupported Perl syntax: `(?i`"),
            ("(?-)", "invalid or unsupported Perl syntax: `(?-)`"),
            ("(?<=x)", "invalid named capture: `(?<=x)`"),
            ("(?P<>x)", "invalid named capture: `(?P<>`"),
            ("(?P<a-b>x)", "invalid named capture: `(?P<a-b>`"),
            ("\\1", "invalid escape sequence: `\\1`"),
            ("\\8", "invalid escape sequence: `\\8`"),
            ("\\q", "invalid escape sequence: `\\q`"),
            ("\\C", "invalid escape sequence: `\\C`"),
            ("\\Z", "invalid escape sequence: `\\Z`"),
            ("\\x{110000}", "invalid escape sequence: `\\x{110000`"),
            ("\\xZZ", "invalid escape sequence: `\\xZZ`"),
            ("x\\", "trailing backslash at end of expression: ``"),
            ("[z-a]", "invalid character class range: `z-a`"),
            ("[[:foo:]]", "invalid character class range: `[:foo:]`"),
            ("\\p{Foo}", "invalid character class range: `\\p{Foo}`"),
            ("a{1001}", "invalid repeat count: `{1001}`"),
            ("a{2,1}", "invalid repeat count: `{2,1}`"),
            ("(a{500}){3}", "invalid repeat count: `{3}`"),
            ("a{99999999999}", "invalid repeat count: `{99999999999}`"),
        ]
        for pattern, message in table:
            with self.assertRaises(GoRegexpError, msg=pattern) as caught:
                compile_go(pattern)
            self.assertEqual(str(caught.exception), f"error parsing regexp: {message}", pattern)

    def test_matches_as_go(self) -> None:
        """(pattern, text, Go's MatchString): the cases where Python's re alone would differ."""
        table = [
            (".* i/o timeout$", "read udp: i/o timeout", True),
            ("timeout$", "timeout\n", False),  # Go's $ is the end of the text
            ("(?m)timeout$", "timeout\nmore", True),
            ("^Failed to .+", "Failed to connect", True),
            ("a\\z", "a\n", False),
            ("\\s", "\v", False),  # Go's \s has no vertical tab
            ("\\s", "\f", True),
            ("a{,3}", "a{,3}", True),  # not a repetition in Go
            ("a{,3}", "aa", False),
            ("x{", "x{", True),
            ("[[:alpha:]]+[[:digit:]]", "abc1", True),
            ("[[:^alpha:]]", "abc", False),
            ("[\\d]", "7", True),
            ("[^\\D]", "x", False),
            ("\\12", "\n", True),  # octal in Go, a back-reference in Python
            ("\\0", "\x00", True),
            ("\\x41\\x{42}", "AB", True),
            ("\\Q.*+\\E$", "a.*+", True),
            ("\\Q.*", "x", False),
            ("(?i)abc", "xABCx", True),
            ("a(?i)b|c", "C", True),  # the flag reaches the next alternative, as in Go
            ("a(?i)b|c", "AB", False),
            ("(a(?i)b)c", "aBC", False),  # and ends with its group
            ("(?i:a)b", "AB", False),
            ("(?s).", "\n", True),
            (".", "\n", False),
            ("(?P<1a>x)(?<n>y)", "xy", True),
            ("\\pL\\p{Nd}\\PL", "é7!", True),
            ("\\p{Greek}", "x", None),
            ("\\bfoo\\b", "a foo b", True),
            ("\\bfoo", "éfoo", True),  # ASCII word boundary
            ("[]a]+", "]a", True),
            ("^*a", "a", True),  # Go repeats the anchor
            ("a(?i)*", "aaa", True),  # a flag group is not an operand: * applies to a
            ("(?U)a+", "a", True),
        ]
        for pattern, text, want in table:
            if want is None:
                self.assertRaises(GoRegexpError, compile_go, pattern)
                continue
            self.assertEqual(compile_go(pattern).match_string(text), want, f"{pattern!r} on {text!r}")

    def test_source_is_kept(self) -> None:
        self.assertEqual(str(compile_go("^error.*!$")), "^error.*!$")


# -- real servers --------------------------------------------------------------------------------


class ErrorsServerTests(TestCase):
    @inlineCallbacks
    def serve(self, corefile: str) -> Any:
        server = InProcessServer(corefile, registry=answers_registry())
        yield server.start()
        self.addCleanup(server.stop)
        self.server = server
        self.handler = _handler(server.instance)
        self.clock = Clock()
        self.handler.reactor = self.clock
        self.log = LogCapture(self, "errors")
        return server

    @inlineCallbacks
    def ask(self, name: str, times: int = 1) -> Any:
        reply = None
        for _ in range(times):
            reply = yield self.server.query(name, "A")
        return reply

    @inlineCallbacks
    def test_errors_are_logged(self) -> Any:
        yield self.serve(". {\n errors\n answers\n}\n")
        reply = yield self.ask("servfail.example.org.")
        self.assertEqual(reply.rcode(), dns.rcode.SERVFAIL)
        reply = yield self.ask("notauth.example.org.")
        self.assertEqual(reply.rcode(), dns.rcode.NOTAUTH)
        yield self.ask("ok.example.org.")
        yield self.ask("nxdomain.example.org.")  # a denial is not an error
        self.assertEqual(
            self.log.lines(),
            [
                ("ERROR", "plugin/errors: 2 servfail.example.org. A: backend unreachable"),
                ("ERROR", "plugin/errors: 9 notauth.example.org. A: test error"),
            ],
        )

    @inlineCallbacks
    def test_no_next_plugin(self) -> Any:
        yield self.serve(". {\n errors\n}\n")
        reply = yield self.ask("Example.ORG.")
        self.assertEqual(reply.rcode(), dns.rcode.SERVFAIL)
        self.assertEqual(
            self.log.texts(), ["plugin/errors: 2 example.org. A: plugin/errors: no next plugin found"]
        )

    @inlineCallbacks
    def test_raised_exceptions_are_errors(self) -> Any:
        yield self.serve(". {\n errors\n answers\n}\n")
        all_log = LogCapture(self)
        reply = yield self.ask("crash.example.")
        self.assertEqual(reply.rcode(), dns.rcode.SERVFAIL)
        reply = yield self.ask("slowcrash.example.")
        self.assertEqual(reply.rcode(), dns.rcode.SERVFAIL)
        self.assertEqual(
            self.log.texts(),
            [
                "plugin/errors: 2 crash.example. A: handler exploded",
                "plugin/errors: 2 slowcrash.example. A: late failure",
            ],
        )
        # Reported once, by errors: the server's own crash report stays quiet.
        self.assertEqual([t for t in all_log.all_texts() if "chain failed" in t], [])
        self.assertNotIn("Traceback", "\n".join(self.log.texts()))

    @inlineCallbacks
    def test_stacktrace(self) -> Any:
        yield self.serve(". {\n errors {\n stacktrace\n }\n answers\n}\n")
        yield self.ask("crash.example.")
        yield self.ask("slowcrash.example.")
        crash, slow = self.log.texts()
        self.assertTrue(
            crash.startswith("plugin/errors: 2 crash.example. A: handler exploded\nTraceback"), crash
        )
        self.assertIn("RuntimeError: handler exploded", crash)
        self.assertIn("ValueError: late failure", slow)

    @inlineCallbacks
    def test_consolidate(self) -> Any:
        yield self.serve(
            ". {\n errors {\n"
            '  consolidate 30s "i/o timeout$" warning\n'
            '  consolidate 1m "^Failed"\n'
            '  consolidate 1m "timeout"\n'  # never used: the first matching pattern counts
            " }\n answers\n}\n"
        )
        yield self.ask("timeout.example.", 3)
        yield self.ask("failed.example.")
        yield self.ask("servfail.example.")
        self.assertEqual(
            self.log.lines(), [("ERROR", "plugin/errors: 2 servfail.example. A: backend unreachable")]
        )
        self.log.clear()
        self.clock.advance(29.9)
        self.assertEqual(self.log.lines(), [])
        self.clock.advance(0.1)
        self.assertEqual(
            self.log.lines(),
            [("WARNING", "plugin/errors: 3 errors like 'i/o timeout$' occurred in last 30s")],
        )
        self.clock.advance(30)
        self.assertEqual(
            self.log.lines()[1:], [("ERROR", "plugin/errors: 1 errors like '^Failed' occurred in last 1m0s")]
        )
        # A new period starts with the next error.
        self.log.clear()
        yield self.ask("timeout.example.")
        self.clock.advance(30)
        self.assertEqual(
            self.log.texts(), ["plugin/errors: 1 errors like 'i/o timeout$' occurred in last 30s"]
        )

    @inlineCallbacks
    def test_show_first(self) -> Any:
        yield self.serve(
            ". {\n errors {\n"
            '  consolidate 5m "i/o timeout$" warning show_first\n'
            '  consolidate 5m "^Failed" show_first\n'
            " }\n answers\n}\n"
        )
        yield self.ask("timeout.example.", 3)
        self.assertEqual(
            self.log.lines(), [("WARNING", f"plugin/errors: 2 timeout.example. A: {TIMEOUT_ERROR}")]
        )
        yield self.ask("failed.example.")
        self.assertEqual(
            self.log.lines()[1:], [("ERROR", f"plugin/errors: 2 failed.example. A: {FAILED_ERROR}")]
        )
        self.log.clear()
        self.clock.advance(300)
        # Three timeouts: a summary. One failure, already shown: none.
        self.assertEqual(
            self.log.lines(),
            [("WARNING", "plugin/errors: 3 errors like 'i/o timeout$' occurred in last 5m0s")],
        )

    @inlineCallbacks
    def test_levels(self) -> Any:
        yield self.serve(
            ". {\n errors {\n"
            '  consolidate 1s "timeout" info\n'
            '  consolidate 1s "^Failed" debug\n'
            " }\n answers\n}\n"
        )
        self.patch(clog, "debug_enabled", False)
        yield self.ask("timeout.example.", 2)
        yield self.ask("failed.example.", 2)
        self.clock.advance(1)
        self.assertEqual(
            self.log.lines(), [("INFO", "plugin/errors: 2 errors like 'timeout' occurred in last 1s")]
        )
        self.patch(clog, "debug_enabled", True)
        yield self.ask("failed.example.", 2)
        self.clock.advance(1)
        self.assertEqual(
            self.log.lines()[1:], [("DEBUG", "plugin/errors: 2 errors like '^Failed' occurred in last 1s")]
        )

    @inlineCallbacks
    def test_shutdown_flushes_and_stops_counting(self) -> Any:
        yield self.serve('. {\n errors {\n  consolidate 5m "timeout" warning\n }\n answers\n}\n')
        yield self.ask("timeout.example.", 2)
        self.assertEqual(self.log.lines(), [])
        yield self.server.instance.stop()
        self.assertEqual(
            self.log.lines(), [("WARNING", "plugin/errors: 2 errors like 'timeout' occurred in last 5m0s")]
        )
        self.assertEqual(self.clock.getDelayedCalls(), [])
        # Once stopped, matching errors are logged one by one, at the pattern's level.
        yield self.ask("timeout.example.")
        self.assertEqual(
            self.log.lines()[1:], [("WARNING", f"plugin/errors: 2 timeout.example. A: {TIMEOUT_ERROR}")]
        )

    @inlineCallbacks
    def test_with_log(self) -> Any:
        yield self.serve('. {\n log . "{name} {rcode}"\n errors\n answers\n}\n')
        yield self.ask("servfail.example.")
        yield self.ask("crash.example.")
        self.assertEqual(
            self.log.texts(),
            [
                "plugin/errors: 2 servfail.example. A: backend unreachable",
                "plugin/errors: 2 crash.example. A: handler exploded",
            ],
        )
        self.assertEqual(self.log.texts("log"), ["servfail.example. SERVFAIL", "crash.example. SERVFAIL"])


class SubprocessErrorsTests(SynchronousTestCase):
    """The lines a ``twisted-coredns`` process prints: at once, and consolidated at shutdown."""

    def test_stdout_lines(self) -> None:
        corefile = 'a. {\n errors\n}\nb. {\n errors {\n  consolidate 5m "no next plugin" warning\n }\n}\n'
        server = SubprocessServer(corefile)
        self.addCleanup(server.__exit__)
        server.start(probe="probe.a.")
        reply = server.query("x.a.")
        self.assertEqual(reply.rcode(), dns.rcode.SERVFAIL)
        server.query("x.b.")
        server.query("y.b.")
        output = server.wait_for_log("[ERROR] plugin/errors: 2 x.a. A:")
        self.assertIn("[ERROR] plugin/errors: 2 x.a. A: plugin/errors: no next plugin found\n", output)
        self.assertNotIn("x.b.", output)
        server.stop(signal.SIGTERM)
        output = server.log()
        self.assertIn(
            "[WARNING] plugin/errors: 2 errors like 'no next plugin' occurred in last 5m0s\n", output
        )
        self.assertIsNone(re.search(r"Traceback", output), output)
