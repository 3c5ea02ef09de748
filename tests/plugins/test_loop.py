"""loop: the probe at start-up, the count, the fatal message; with a real loop and without.

A real loop needs a forwarder pointing at the server itself: in-process, a test-only plugin
(``selfloop``) relays every query to the server's own port over UDP; as a child process, the real
``forward`` does it and the process must exit with CoreDNS's message.
"""

from __future__ import annotations

import re
import time
from pathlib import Path
from typing import Any, cast

from twisted.internet import reactor
from twisted.internet.defer import Deferred, inlineCallbacks
from twisted.internet.task import Clock, deferLater
from twisted.logger import ILogObserver, globalLogPublisher
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase, TestCase

from twisted_coredns.config import BlockConfig
from twisted_coredns.corefile import CorefileError
from twisted_coredns.instance import build
from twisted_coredns.interfaces import IHandler
from twisted_coredns.plugin import Controller, Handler, Plugin
from twisted_coredns.plugins.loop import PROBE_FOR, Loop, probe_name, udp_exchange
from twisted_coredns.registry import Registry, default_registry
from twisted_coredns.request import Request
from twisted_coredns.response import Response, error_reply
from twisted_coredns.testing import InProcessServer, SubprocessServer, free_port, make_request
from twisted_coredns.testing.setup import check_setup_rows, load_setup_rows

DATA = Path(__file__).parent.parent / "data"
MESSAGE = re.compile(
    r'plugin/loop: Loop \((127\.0\.0\.1:\d+) -> ([^)]*)\) detected for zone "(.*)", '
    r"see https://coredns\.io/plugins/loop#troubleshooting\. "
    r'Query: "HINFO (\d+\.\d+\.[^"]*)"'
)


class SelfLoop(Handler):
    """Relays each query to this server's own port (a forwarding loop), until told to stop."""

    name = "selfloop"

    def __init__(self, config: BlockConfig) -> None:
        self.config = config
        self.stopped = False

    def serve(self, request: Request) -> Any:
        if self.stopped:
            return error_reply(request, 2)
        port = self.config.bound_ports[self.config.addresses[0].port]
        d: Deferred[bytes] = udp_exchange(reactor, request.wire, "127.0.0.1", port, timeout=1.0)
        return d.addCallbacks(lambda wire: Response(wire), lambda _f: error_reply(request, 2))


def _selfloop_setup(controller: Controller) -> Any:
    return SelfLoop(controller.config)


def loop_registry() -> Registry:
    reg = Registry(list(default_registry()))
    reg.add(Plugin("selfloop", _selfloop_setup, after="loop"), "tests")
    return reg


def _loop_of(server: InProcessServer) -> Loop:
    return next(h for h in server.instance.blocks[0].handlers if isinstance(h, Loop))


class SetupTests(SynchronousTestCase):
    def test_coredns_rows(self) -> None:
        source = "coredns/coredns @4b26cce, Apache-2.0"
        rows = load_setup_rows(DATA / "loop_setup_cases.json", source_contains=source)
        check_setup_rows(self, rows, error_prefix="plugin/loop: ")

    def test_messages(self) -> None:
        rows = [
            (
                "loop argument",
                "plugin/loop: Corefile:2 - Error during parsing: Wrong argument count or "
                "unexpected line ending after 'argument'",
            ),
            (
                "loop {\n}",
                "plugin/loop: Corefile:2 - Error during parsing: Unexpected token '{', expecting argument",
            ),
            ("loop\nloop", "plugin/loop: this plugin can only be used once per Server Block"),
        ]
        for text, message in rows:
            with self.assertRaises(CorefileError) as caught:
                build(f". {{\n{text}\n}}\n", dns_port=0)
            self.assertEqual(str(caught.exception), message, text)

    def test_zone_is_the_first_key(self) -> None:
        instance = build("Example.ORG:1053 example.net {\nloop\n}\n", dns_port=0)
        loop = next(h for h in instance.blocks[0].handlers if isinstance(h, Loop))
        self.assertEqual(loop.zone, "example.org.")
        self.assertRegex(loop.qname, r"^\d+\.\d+\.example\.org\.$")

    def test_probe_names_are_random(self) -> None:
        names = {probe_name(".") for _ in range(20)}
        self.assertEqual(len(names), 20)
        for name in names:
            first, second, rest = name.split(".", 2)
            self.assertEqual(rest, "")
            self.assertLess(int(first), 1 << 62)
            self.assertLess(int(second), 1 << 62)


class _Recorder:
    def __init__(self) -> None:
        self.codes: list[int] = []
        self.lines: list[str] = []

    def exit(self, code: int) -> None:
        self.codes.append(code)

    def observe(self, event: dict[str, Any]) -> None:
        text = event.get("coredns_text")
        if text and event.get("log_namespace") == "coredns.plugin.loop":
            self.lines.append(f"{event['log_level'].name}:{text}")


class CountingTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.loop = Loop(".", Clock())
        self.recorder = _Recorder()
        self.loop.exit = self.recorder.exit
        self.loop.address = ":1053"

        class Answer(Handler):
            def serve(self, request: Request) -> Response:
                return error_reply(request, 3)

        self.loop.next = cast(IHandler, Answer())
        globalLogPublisher.addObserver(cast(ILogObserver, self.recorder.observe))
        self.addCleanup(globalLogPublisher.removeObserver, cast(ILogObserver, self.recorder.observe))

    def probe(self, **kw: Any) -> Request:
        return make_request(self.loop.qname, "HINFO", **kw)

    def test_third_sighting_is_fatal(self) -> None:
        self.loop.serve(self.probe())
        self.loop.serve(self.probe())
        self.assertEqual(self.recorder.codes, [])
        self.loop.serve(self.probe(remote=("127.0.0.1", 55953)))
        self.assertEqual(self.recorder.codes, [1])
        self.assertEqual(
            self.recorder.lines,
            [
                'critical:plugin/loop: Loop (127.0.0.1:55953 -> :1053) detected for zone ".", see '
                f'https://coredns.io/plugins/loop#troubleshooting. Query: "HINFO {self.loop.qname}"'
            ],
        )

    def test_other_queries_are_not_counted(self) -> None:
        for _ in range(5):
            self.loop.serve(make_request(self.loop.qname, "A"))
            self.loop.serve(make_request("1.2.example.org.", "HINFO"))
        self.assertEqual(self.loop.seen, 0)
        self.assertEqual(self.recorder.codes, [])

    def test_disabled_counts_nothing(self) -> None:
        self.loop.disabled = True
        for _ in range(5):
            result = self.loop.serve(self.probe())
            self.assertEqual(result.rcode, 3)
        self.assertEqual(self.recorder.codes, [])

    def test_outside_the_zone(self) -> None:
        loop = Loop("example.org.", Clock())
        loop.exit = self.recorder.exit
        loop.next = self.loop.next
        for _ in range(5):
            loop.serve(make_request("1.2.example.net.", "HINFO"))
            loop.serve(make_request(loop.qname.upper(), "HINFO"))
        self.assertEqual(loop.seen, 5)
        self.assertEqual(self.recorder.codes, [1, 1, 1])


class ProbeTimingTests(SynchronousTestCase):
    """The probe schedule, on a Clock: every second until one reply, for at most 30 seconds."""

    def setUp(self) -> None:
        self.clock = Clock()
        self.loop = Loop(".", self.clock)
        self.attempts: list[tuple[float, Deferred[Any]]] = []

        def exchange(host: str, port: int) -> Deferred[Any]:
            d: Deferred[Any] = Deferred()
            self.attempts.append((self.clock.seconds(), d))
            return d

        self.loop.exchange = exchange

    def test_start_does_not_block(self) -> None:
        self.loop.start("", 1053)
        self.assertEqual(self.attempts, [])
        self.assertEqual(self.loop.address, ":1053")
        self.clock.advance(0)
        self.assertEqual(len(self.attempts), 1)

    def test_retry_after_failure_resets_count(self) -> None:
        self.loop.start("127.0.0.1", 1053)
        self.clock.advance(0)
        self.loop.seen = 2
        self.attempts[0][1].errback(Failure(TimeoutError("i/o timeout")))
        self.assertEqual(self.loop.seen, 0)
        self.clock.advance(0.9)
        self.assertEqual(len(self.attempts), 1)
        self.clock.advance(0.1)
        self.assertEqual(len(self.attempts), 2)
        self.attempts[1][1].callback(b"reply")
        self.assertTrue(self.loop.disabled)
        self.clock.advance(10)
        self.assertEqual(len(self.attempts), 2)

    def test_gives_up_after_thirty_seconds(self) -> None:
        self.loop.start("", 1053)
        self.clock.advance(0)
        while self.clock.seconds() < 60:
            last = self.attempts[-1][1]
            if not last.called:
                self.clock.advance(2)  # the exchange times out after 2 s
                last.errback(Failure(TimeoutError("i/o timeout")))
            self.clock.advance(1)
        self.assertTrue(self.loop.disabled)
        self.assertLessEqual(self.attempts[-1][0], PROBE_FOR)
        self.assertEqual(len(self.attempts), 10)

    def test_ipv6_address_text(self) -> None:
        self.loop.start("::1", 53)
        self.assertEqual(self.loop.address, "[::1]:53")


class InProcessTests(TestCase):
    @inlineCallbacks
    def test_real_loop_is_detected(self) -> Any:
        server = InProcessServer(". {\n loop\n selfloop\n}\n", registry=loop_registry())
        loop = _loop_of(server)
        selfloop = next(h for h in server.instance.blocks[0].handlers if isinstance(h, SelfLoop))
        recorder = _Recorder()

        def stop(code: int) -> None:
            recorder.exit(code)
            selfloop.stopped = True

        loop.exit = stop
        globalLogPublisher.addObserver(cast(ILogObserver, recorder.observe))
        self.addCleanup(globalLogPublisher.removeObserver, cast(ILogObserver, recorder.observe))
        yield server.start()
        self.addCleanup(server.stop)
        for _ in range(50):
            if recorder.codes:
                break
            yield deferLater(reactor, 0.05, lambda: None)
        self.assertEqual(recorder.codes[:1], [1])
        match = MESSAGE.search(recorder.lines[0])
        assert match is not None, recorder.lines
        self.assertEqual(match.group(2), f"127.0.0.1:{server.port}")  # the port actually bound
        self.assertEqual(match.group(3), ".")
        self.assertEqual(match.group(4), loop.qname)

    @inlineCallbacks
    def test_no_loop_keeps_serving(self) -> Any:
        server = InProcessServer(". {\n loop\n whoami\n}\n")
        loop = _loop_of(server)
        recorder = _Recorder()
        loop.exit = recorder.exit
        yield server.start()
        self.addCleanup(server.stop)
        for _ in range(50):
            if loop.disabled:
                break
            yield deferLater(reactor, 0.05, lambda: None)
        self.assertTrue(loop.disabled)
        self.assertEqual(loop.seen, 1)
        self.assertEqual(loop.address, f"127.0.0.1:{server.port}")
        self.assertEqual(recorder.codes, [])
        answer = yield server.query(loop.qname, "HINFO")
        self.assertEqual(len(answer.additional), 2)


class SubprocessTests(SynchronousTestCase):
    def test_forward_to_itself_exits(self) -> None:
        port = free_port()
        server = SubprocessServer(f". {{\n loop\n forward . 127.0.0.1:{port}\n}}\n", port=port)
        try:
            try:
                server.start(timeout=15)
            except RuntimeError:
                pass  # it may well die before it ever answers the readiness probe
            assert server.process is not None, server.log()
            code = server.process.wait(timeout=40)
            log = server.log()
        finally:
            server.stop()
        self.assertEqual(code, 1, log)
        match = MESSAGE.search(log)
        assert match is not None, log
        self.assertIn("[FATAL] plugin/loop: Loop (127.0.0.1:", log)
        self.assertEqual(match.group(2), f":{port}")
        self.assertEqual(match.group(3), ".")

    def test_forward_elsewhere_keeps_serving(self) -> None:
        with SubprocessServer(". {\n whoami\n}\n") as upstream:
            corefile = f". {{\n loop\n forward . 127.0.0.1:{upstream.port}\n}}\n"
            with SubprocessServer(corefile) as server:
                time.sleep(3)
                assert server.process is not None
                self.assertIsNone(server.process.poll(), server.log())
                answer = server.query("example.org.", "A")
                self.assertEqual(len(answer.additional), 2)
                self.assertNotIn("Loop", server.log())
