"""reload: its Corefile syntax and errors, the hash it watches, and reloads of running servers.

The watching servers use ``reload 2s 0s`` (the shortest interval, no jitter). Those in this
process read their Corefile from ``server.corefile`` (``CountingServer`` counts the reads, so a
test can wait for the watcher's next look instead of sleeping); the one in a child process
reads its file, and reloads on SIGUSR1 too.
"""

from __future__ import annotations

import os
import random
import shutil
import signal
import tempfile
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import dns.rcode
from prometheus_client import generate_latest
from twisted.internet import reactor
from twisted.internet.defer import Deferred, inlineCallbacks
from twisted.trial.unittest import SynchronousTestCase, TestCase

from twisted_coredns.corefile import CorefileError, parse
from twisted_coredns.duration import parse_duration_ns
from twisted_coredns.metrics import PROCESS_REGISTRY
from twisted_coredns.plugin import Controller
from twisted_coredns.plugins.reload import corefile_hash
from twisted_coredns.plugins.reload import setup as reload_setup
from twisted_coredns.testing import InProcessServer, SubprocessServer, free_port
from twisted_coredns.testing.setup import SetupResult, check_setup_rows, load_setup_rows

from .logerr_support import DATA, LogCapture
from .test_prometheus import Scrape, fetch, http_get, wait_until

DOCS = Path(__file__).resolve().parent.parent.parent / "docs" / "plugins"
RUNNING = "[INFO] plugin/reload: Running configuration SHA512 = "


def controller(text: str) -> Controller:
    block = parse(f". {{\n{text}\n}}\n", "Corefile")[0]
    directives = [d for d in block.directives if d.name == "reload"]
    return Controller("reload", directives, None, reactor)  # type: ignore[arg-type]


class RecordingRandom(random.Random):
    """A Random that says which range it was asked for and answers ``pick(n)``."""

    def __init__(self, pick: Callable[[int], int]) -> None:
        super().__init__(0)
        self.pick = pick
        self.asked: list[int] = []

    def randrange(self, start: int, *rest: Any, **kw: Any) -> int:  # type: ignore[override]
        assert not rest and not kw
        self.asked.append(start)
        return self.pick(start)


class ReloadSetupTests(SynchronousTestCase):
    """Setup, row by row from CoreDNS's setup_test.go and ours, with CoreDNS's error texts."""

    def test_setup_rows(self) -> None:
        rows = load_setup_rows(DATA / "reload_setup_cases.json", source_contains="coredns/coredns @4b26cce")

        def check(row: Mapping[str, Any], result: SetupResult) -> None:
            interval, jitter = parse_duration_ns(row["interval"]), parse_duration_ns(row["jitter"])
            self.assertIsNone(result.handler)  # reload only watches; it joins no chain
            # the lowest offset the jitter allows, and which range was drawn from
            low = RecordingRandom(lambda n: 0)
            got = reload_setup.parse(controller(row["input"]), low)
            self.assertEqual(low.asked, [jitter] if jitter else [])
            self.assertEqual(got, (interval - jitter // 2) / 1e9)

        count = check_setup_rows(self, rows, check=check, error_prefix="plugin/reload: ")
        self.assertEqual(count, 23)

    def test_jitter_is_plus_or_minus_half(self) -> None:
        # CoreDNS: interval + rand.Int63n(jitter) - jitter/2, jitter capped at interval/2
        high = RecordingRandom(lambda n: n - 1)
        self.assertEqual(reload_setup.parse(controller("reload 10s 20s"), high), (10e9 + 5e9 // 2 - 1) / 1e9)
        self.assertEqual(high.asked, [5_000_000_000])
        for seed in range(50):
            got = reload_setup.parse(controller("reload 30s"), random.Random(seed))
            draw = random.Random(seed).randrange(15_000_000_000)
            self.assertEqual(got, (30_000_000_000 + draw - 7_500_000_000) / 1e9)
            self.assertTrue(22.5 <= got < 37.5, got)

    def test_zero_jitter_draws_nothing(self) -> None:
        never = RecordingRandom(lambda n: 1 / 0)  # type: ignore[arg-type, return-value]
        self.assertEqual(reload_setup.parse(controller("reload 2s 0s"), never), 2.0)
        self.assertEqual(never.asked, [])

    def test_no_handler_and_no_watcher_before_start(self) -> None:
        from twisted_coredns.instance import build

        instance = build(". {\n    reload 2s 0s\n    whoami\n}\n", dns_port=0)
        self.assertEqual([h.name for h in instance.blocks[0].handlers], ["whoami"])
        self.assertEqual(len(instance.blocks[0].process_start), 1)


class CorefileHashTests(SynchronousTestCase):
    """The SHA-512 of the parsed Corefile: tokens with their file and line, as CoreDNS hashes
    caddy's server blocks. Its value is ours; what changes it is CoreDNS's."""

    BASE = ". {\n    whoami\n    log\n}\n"

    def test_what_changes_the_hash(self) -> None:
        base = corefile_hash(self.BASE, "Corefile")
        self.assertRegex(base, r"^[0-9a-f]{128}$")
        same = [
            ". {\n    whoami # answers everything\n    log\n}\n",  # a comment at the end of a line
            ". {\n\twhoami\n  log   \n}\n",  # other blanks, same lines
            self.BASE + "# a last line\n",
            self.BASE + "\n\n",
        ]
        for text in same:
            self.assertEqual(corefile_hash(text, "Corefile"), base, text)
        different = [
            ". {\n    # a comment line moves the next lines\n    whoami\n    log\n}\n",
            ". {\n    whoami\n    log stdout\n}\n",
            ". {\n    log\n    whoami\n}\n",
            "example.org {\n    whoami\n    log\n}\n",
        ]
        for text in different:
            self.assertNotEqual(corefile_hash(text, "Corefile"), base, text)
        self.assertNotEqual(corefile_hash(self.BASE, "/etc/coredns/Corefile"), base)  # tokens carry the file

    def test_imported_file_counts(self) -> None:
        directory = tempfile.mkdtemp()
        self.addCleanup(shutil.rmtree, directory)
        extra = Path(directory, "extra.conf")
        extra.write_text("whoami\n")
        text = f". {{\n    import {extra}\n}}\n"
        first = corefile_hash(text, "Corefile")
        extra.write_text("whoami # a comment\n")
        self.assertEqual(corefile_hash(text, "Corefile"), first)
        extra.write_text("log\nwhoami\n")
        self.assertNotEqual(corefile_hash(text, "Corefile"), first)

    def test_unparsable(self) -> None:
        with self.assertRaises(CorefileError):
            corefile_hash(". {\n    whoami\n", "Corefile")


# -- watching, in this process -------------------------------------------------------------------------------


class CountingServer(InProcessServer):
    """An in-process server whose Corefile text counts its reads: the watcher reads it once a tick."""

    reads = 0

    @property  # type: ignore[override]
    def corefile(self) -> str:
        self.reads += 1
        return self._text

    @corefile.setter
    def corefile(self, text: str) -> None:
        self._text = text


WATCHED = """\
. {{
    reload 2s 0s
    prometheus 127.0.0.1:0
    {answer}
}}
"""
HOSTS = "hosts {\n        10.0.0.1 a.example.org\n    }"


def failures() -> float:
    return PROCESS_REGISTRY.get_sample_value("coredns_reload_failed_total") or 0.0


def version_info() -> dict[str, float]:
    """coredns_reload_version_info's series: {hash value: gauge value}."""
    scrape = Scrape(generate_latest(PROCESS_REGISTRY).decode())
    series = scrape.samples("coredns_reload_version_info", hash="sha512")
    return {dict(labels)["value"]: value for labels, value in series.items()}


class WatcherCase(TestCase):
    @inlineCallbacks
    def start(self, corefile: str) -> Any:
        self.log = LogCapture(self)
        self.server = CountingServer(corefile)
        yield self.server.start()
        self.addCleanup(self.server.stop)

    def lines(self) -> list[str]:
        return [f"[{level}] {text}" for level, text in self.log.lines()
                if "plugin/reload" in text or text.startswith(("Reloading", "Restart failed"))]

    def looked(self) -> Deferred[None]:
        """Wait for the watcher's next look at the Corefile."""
        seen = self.server.reads
        return wait_until(lambda: self.server.reads > seen)

    @inlineCallbacks
    def answers(self) -> Any:
        reply = yield self.server.query("a.example.org.")
        self.assertEqual(reply.rcode(), dns.rcode.NOERROR)
        return [rd.to_text() for rrset in reply.answer for rd in rrset]


class WatcherTests(WatcherCase):
    @inlineCallbacks
    def test_a_change_reloads(self) -> Any:
        yield self.start(WATCHED.format(answer="whoami"))
        first = corefile_hash(WATCHED.format(answer="whoami"), "Corefile")
        self.assertEqual(self.lines(), [RUNNING + first])
        self.assertEqual(version_info(), {first: 1})
        self.assertEqual((yield self.answers()), [])  # whoami answers in the additional section

        changed = WATCHED.format(answer=HOSTS)
        self.server.corefile = changed
        yield wait_until(lambda: "[INFO] Reloading complete" in self.lines())
        second = corefile_hash(changed, "Corefile")
        self.assertEqual(self.lines(), [
            RUNNING + first,
            "[INFO] Reloading",
            RUNNING + second,
            "[INFO] Reloading complete",
        ])
        self.assertEqual((yield self.answers()), ["10.0.0.1"])
        # one series, the running configuration's, on /metrics as on the registry
        self.assertEqual(version_info(), {second: 1})
        scrape = Scrape((yield http_get(self.server.http_port("127.0.0.1:0")))[2])
        self.assertEqual(scrape.samples("coredns_reload_version_info"),
                         {frozenset({("hash", "sha512"), ("value", second)}): 1})

    @inlineCallbacks
    def test_a_comment_at_the_end_of_a_line_does_not_reload(self) -> Any:
        text = WATCHED.format(answer="whoami")
        yield self.start(text)
        self.server.corefile = text.replace("reload 2s 0s", "reload 2s 0s # check often")
        yield self.looked()
        self.assertEqual(len(self.lines()), 1, self.lines())

    @inlineCallbacks
    def test_a_change_in_an_imported_file_reloads(self) -> Any:
        directory = tempfile.mkdtemp()
        self.addCleanup(shutil.rmtree, directory)
        extra = Path(directory, "answer.conf")
        extra.write_text("whoami\n")
        yield self.start(WATCHED.format(answer=f"import {extra}"))
        extra.write_text(HOSTS + "\n")
        yield wait_until(lambda: "[INFO] Reloading complete" in self.lines())
        self.assertEqual((yield self.answers()), ["10.0.0.1"])

    @inlineCallbacks
    def test_a_broken_corefile_is_not_loaded(self) -> Any:
        text = WATCHED.format(answer=HOSTS)
        yield self.start(text)
        self.server.corefile = text + "broken {\n"
        yield wait_until(lambda: len(self.lines()) > 1)
        self.assertEqual(self.lines()[1:], [
            "[WARNING] plugin/reload: Corefile parse failed: Corefile:8 - Syntax error: "
            "Unexpected token '{', expecting '}'",
        ])
        self.assertEqual((yield self.answers()), ["10.0.0.1"])
        self.assertNotIn("[INFO] Reloading", self.lines())

    @inlineCallbacks
    def test_a_failing_setup_is_reported_once_and_not_retried(self) -> Any:
        text = WATCHED.format(answer=HOSTS)
        yield self.start(text)
        failed_before = failures()
        bad = text.replace("prometheus 127.0.0.1:0", "prometheus /foo")
        self.server.corefile = bad
        yield wait_until(lambda: any(line.startswith("[ERROR] plugin/reload") for line in self.lines()))
        error = ("[ERROR] plugin/reload: Corefile changed but reload failed: "
                 "plugin/prometheus: address /foo: missing port in address")
        self.assertEqual(self.lines()[1:], [
            "[INFO] Reloading",
            "[ERROR] Restart failed: plugin/prometheus: address /foo: missing port in address",
            error,
        ])
        self.assertEqual(failures() - failed_before, 1)
        self.assertEqual((yield self.answers()), ["10.0.0.1"])
        # CoreDNS shows the hash of the file that failed, and does not try it again
        self.assertEqual(version_info(), {corefile_hash(bad, "Corefile"): 1})
        yield self.looked()
        self.assertEqual(self.lines().count(error), 1)
        self.assertEqual(failures() - failed_before, 1)
        # until the file changes again
        self.server.corefile = text.replace("10.0.0.1", "10.0.0.2")
        yield wait_until(lambda: "[INFO] Reloading complete" in self.lines())
        self.assertEqual((yield self.answers()), ["10.0.0.2"])

    @inlineCallbacks
    def test_one_watcher_for_several_blocks(self) -> Any:
        text = WATCHED.format(answer="whoami") + "example.net {\n    reload 3s\n    whoami\n}\n"
        yield self.start(text)
        self.assertEqual(len(self.lines()), 1, self.lines())
        self.assertEqual(len(version_info()), 1)
        self.assertEqual([w.interval for w in reload_setup._watching.values()], [2.0])  # the first's

    @inlineCallbacks
    def test_sigusr1_with_the_same_corefile_keeps_the_series(self) -> Any:
        text = WATCHED.format(answer="whoami")
        yield self.start(text)
        ok = yield self.server.reload()
        self.assertIs(ok, True)
        sha = corefile_hash(text, "Corefile")
        self.assertEqual(self.lines().count(RUNNING + sha), 2)
        self.assertEqual(version_info(), {sha: 1})

    @inlineCallbacks
    def test_without_reload_nothing_watches(self) -> Any:
        text = WATCHED.format(answer="whoami")
        yield self.start(text)
        ok = yield self.server.reload(text.replace("    reload 2s 0s\n", ""))
        self.assertIs(ok, True)
        self.assertEqual(version_info(), {})
        self.assertEqual(reload_setup._watching, {})  # the old configuration's watcher is stopped

    @inlineCallbacks
    def test_stopping_removes_the_series(self) -> Any:
        yield self.start(WATCHED.format(answer="whoami"))
        self.assertEqual(len(version_info()), 1)
        yield self.server.stop()
        self.assertEqual(version_info(), {})


class ReadmeTests(TestCase):
    """The Corefiles of docs/plugins/reload.md start (and stop, with their watchers)."""

    @inlineCallbacks
    def test_examples_start(self) -> Any:
        text = (DOCS / "reload.md").read_text(encoding="utf-8")
        examples = [part.split("~~~", 1)[0] for part in text.split("~~~ corefile\n")[1:]]
        self.assertGreaterEqual(len(examples), 2)
        log = LogCapture(self, "reload")
        for example in examples:
            server = InProcessServer(example)
            yield server.start()
            try:
                reply = yield server.query("a.example.org.")
                self.assertEqual(reply.rcode(), dns.rcode.NOERROR, example)
            finally:
                yield server.stop()
        self.assertEqual(len(log.texts()), len(examples))
        self.assertEqual(version_info(), {})


# -- a child process: the Corefile file, and SIGUSR1 ---------------------------------------------------------


def udp_sockets(port: int) -> int:
    """The UDP sockets bound to ``port`` (the kernel's tables, whichever process holds them)."""
    count = 0
    for table in ("/proc/net/udp", "/proc/net/udp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except FileNotFoundError:
            continue
        count += sum(1 for line in lines if int(line.split()[1].rsplit(":", 1)[1], 16) == port)
    return count


def wait_for_count(server: SubprocessServer, text: str, count: int, timeout: float = 6.0) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        log = server.log()
        if log.count(text) >= count:
            return log
        time.sleep(0.05)
    raise AssertionError(f"{text!r} not {count} times in the server's output:\n{server.log()}")


class SubprocessReloadTests(SynchronousTestCase):
    """``twisted-coredns -conf Corefile``: the file edited in place, then SIGUSR1."""

    def test_file_changes_then_sigusr1(self) -> None:
        if not Path("/proc/net/udp").exists():
            self.skipTest("no /proc/net/udp to count sockets in")
        http = free_port()
        text = WATCHED.format(answer="whoami").replace("127.0.0.1:0", f"127.0.0.1:{http}")
        with SubprocessServer(text) as server:
            path = str(server.corefile)
            first = corefile_hash(text, path)
            server.wait_for_log(RUNNING + first)
            sockets = udp_sockets(server.port)
            self.assertGreaterEqual(sockets, 1)

            # parses, but whoami takes no argument: the old configuration keeps answering
            failing = text.replace("whoami", "whoami extra")
            server.corefile.write_text(failing)
            log = server.wait_for_log("[ERROR] plugin/reload")
            error = WHOAMI_ERROR.format(path=path)
            self.assertEqual(_reload_lines(log), [
                RUNNING + first,
                "[INFO] Reloading",
                "[ERROR] Restart failed: " + error,
                "[ERROR] plugin/reload: Corefile changed but reload failed: " + error,
            ])
            self.assertEqual(server.query("a.example.org.").additional[0].to_text().split()[-1], "127.0.0.1")
            scrape = Scrape(fetch(http)[2])
            self.assertEqual(scrape.value("coredns_reload_failed_total"), 1)
            self.assertEqual(scrape.samples("coredns_reload_version_info"),
                             {frozenset({("hash", "sha512"), ("value", corefile_hash(failing, path))}): 1})

            changed = text.replace("whoami", HOSTS)
            server.corefile.write_text(changed)
            log = server.wait_for_log("[INFO] Reloading complete")
            second = corefile_hash(changed, path)
            self.assertEqual(_reload_lines(log)[4:], [
                "[INFO] Reloading",
                RUNNING + second,
                "[INFO] Reloading complete",
            ])
            self.assertEqual([rd.to_text() for rd in server.query("a.example.org.").answer[0]], ["10.0.0.1"])
            scrape = Scrape(fetch(http)[2])
            self.assertEqual(scrape.samples("coredns_reload_version_info"),
                             {frozenset({("hash", "sha512"), ("value", second)}): 1})
            self.assertEqual(scrape.value("coredns_reload_failed_total"), 1)
            self.assertEqual(udp_sockets(server.port), sockets)

            assert server.process is not None
            os.kill(server.process.pid, signal.SIGUSR1)
            log = wait_for_count(server, "[INFO] Reloading complete", 2)
            self.assertEqual(_reload_lines(log)[7:], [
                "[INFO] SIGUSR1: Reloading",
                "[INFO] Reloading",
                RUNNING + second,
                "[INFO] Reloading complete",
            ])
            self.assertEqual([rd.to_text() for rd in server.query("a.example.org.").answer[0]], ["10.0.0.1"])
            self.assertEqual(udp_sockets(server.port), sockets)
            scrape = Scrape(fetch(http)[2])
            self.assertEqual(scrape.samples("coredns_reload_version_info"),
                             {frozenset({("hash", "sha512"), ("value", second)}): 1})


WHOAMI_ERROR = ("plugin/whoami: {path}:4 - Error during parsing: "
                "Wrong argument count or unexpected line ending after 'extra'")


def _reload_lines(log: str) -> list[str]:
    return [line for line in log.splitlines()
            if "plugin/reload" in line or "Reloading" in line or "failed" in line]

