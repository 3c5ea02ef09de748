"""health: its Corefile syntax and errors (rows from CoreDNS's setup test), ``/health`` on a real
socket, the once-a-second self-check and its metrics, lameduck at SIGTERM, two endpoints, and
reloads that never close the listener.

The helpers here serve test_ready too: ``http_get`` / ``get`` (a probe's GET, blocking or in a
thread), ``refused`` and ``listening`` (the state of a port), ``wait_for`` / ``wait_until`` (a
condition, blocking or in the reactor).
"""

from __future__ import annotations

import os
import signal
import socket
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, NamedTuple

from twisted.internet import reactor
from twisted.internet.defer import Deferred, inlineCallbacks
from twisted.internet.error import ConnectionDone
from twisted.internet.task import deferLater
from twisted.internet.testing import MemoryReactorClock, StringTransport
from twisted.internet.threads import deferToThread
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase, TestCase

from twisted_coredns.instance import build
from twisted_coredns.metrics import PROCESS_REGISTRY
from twisted_coredns.plugin import Controller
from twisted_coredns.plugins.health import setup as health_setup
from twisted_coredns.plugins.health.endpoint import SelfCheck
from twisted_coredns.testing import SubprocessServer, free_port, query, run_cli, serve
from twisted_coredns.testing.setup import SetupResult, check_setup_rows, load_setup_rows, run_setup

from .logerr_support import DATA, LogCapture
from .policy_support import doc_corefiles

LOCAL = "127.0.0.1:0"
"""A listener on a free port: ``server.http_port(LOCAL)`` says which."""
DURATION_COUNT = "coredns_health_request_duration_seconds_count"
FAILURES = "coredns_health_request_failures_total"


# -- HTTP, as a probe sees it ---------------------------------------------------------------------


class Reply(NamedTuple):
    code: int
    body: bytes
    content_type: str


_opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # never a proxy from the env


def http_get(port: int, path: str = "/health", host: str = "127.0.0.1", timeout: float = 3.0) -> Reply:
    """GET, blocking (from a thread, or against a subprocess server); 4xx and 5xx are replies too."""
    try:
        with _opener.open(f"http://{host}:{port}{path}", timeout=timeout) as reply:
            return Reply(reply.status, reply.read(), reply.headers.get("content-type", ""))
    except urllib.error.HTTPError as exc:
        with exc:
            return Reply(exc.code, exc.read(), exc.headers.get("content-type", ""))


def get(port: int, path: str = "/health") -> Deferred[Reply]:
    """``http_get`` in a thread, for servers in this reactor."""
    return deferToThread(http_get, port, path)


def refused(port: int, host: str = "127.0.0.1") -> bool:
    """Nothing listens on ``port`` (TCP) any more."""
    try:
        socket.create_connection((host, port), timeout=2).close()
    except ConnectionRefusedError:
        return True
    return False


def listening(port: int) -> int:
    """How many TCP sockets of this machine listen on ``port`` (/proc/net/tcp and tcp6)."""
    count = 0
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except FileNotFoundError:
            continue
        for line in lines:
            fields = line.split()
            if int(fields[1].rsplit(":", 1)[1], 16) == port and fields[3] == "0A":  # 0A: LISTEN
                count += 1
    return count


@inlineCallbacks
def wait_until(probe: Callable[[], Any], want: Callable[[Any], bool], timeout: float = 5.0) -> Any:
    """Call ``probe`` (it may return a Deferred) until ``want`` holds for its result; return it."""
    deadline = reactor.seconds() + timeout
    while True:
        got = yield probe()
        if want(got):
            return got
        if reactor.seconds() > deadline:
            raise AssertionError(f"still {got!r} after {timeout}s")
        yield deferLater(reactor, 0.05, lambda: None)


def wait_for(probe: Callable[[], Any], want: Callable[[Any], bool], timeout: float = 5.0) -> Any:
    """``wait_until``, blocking: for subprocess servers."""
    deadline = time.monotonic() + timeout
    while True:
        got = probe()
        if want(got):
            return got
        if time.monotonic() > deadline:
            raise AssertionError(f"still {got!r} after {timeout}s")
        time.sleep(0.05)


def metric(name: str) -> float:
    return PROCESS_REGISTRY.get_sample_value(name) or 0.0


# -- setup ----------------------------------------------------------------------------------------


def parsed(result: SetupResult) -> tuple[str, float]:
    """What health's parse reads from the block that ``result`` set up."""
    config = result.config
    return health_setup.parse(Controller("health", config.block.directives_named("health"), config, reactor))


class HealthSetupTests(SynchronousTestCase):
    def test_setup_rows(self) -> None:
        rows = load_setup_rows(DATA / "health_setup_cases.json", source_contains="coredns/coredns @4b26cce")

        def check(row: Mapping[str, Any], result: SetupResult) -> None:
            self.assertEqual(parsed(result), (row["address"], float(row["lameduck"])), row["input"])
            self.assertIsNone(result.handler, "health adds no handler to the chain")

        self.assertEqual(check_setup_rows(self, rows, check=check, error_prefix="plugin/health: "), len(rows))

    def test_defaults(self) -> None:
        self.assertEqual(parsed(run_setup("health")), (":8080", 0.0))
        self.assertEqual((health_setup.DEFAULT_ADDRESS, health_setup.PATH), (":8080", "/health"))

    def test_process_hooks(self) -> None:
        # health lives in the front process: nothing per worker, a start, a stop and a lameduck.
        config = run_setup("health :8080 {\n lameduck 1s\n}").config
        self.assertEqual((len(config.process_start), len(config.process_stop), len(config.final_shutdown)),
                         (1, 1, 1))
        self.assertEqual((config.startup, config.shutdown, config.handlers), ([], [], []))

    def test_readme_examples_set_up(self) -> None:
        for corefile in doc_corefiles("health"):
            instance = build(corefile, dns_port=0)
            self.assertTrue(any(b.process_start for b in instance.blocks), corefile)

    def test_self_check_url(self) -> None:
        url = health_setup._url
        self.assertEqual(url(":8080", 8080), "http://localhost:8080/health")
        self.assertEqual(url("0.0.0.0:8080", 8080), "http://localhost:8080/health")
        self.assertEqual(url("127.0.0.1:0", 4321), "http://127.0.0.1:4321/health")
        self.assertEqual(url("[::1]:0", 4321), "http://[::1]:4321/health")
        self.assertEqual(url("[::]:8080", 8080), "http://localhost:8080/health")


# -- the endpoint on a real socket ----------------------------------------------------------------


class HealthEndpointTests(TestCase):
    @inlineCallbacks
    def test_health_answers_and_checks_itself(self) -> Any:
        server = yield serve(self, f". {{\n health {LOCAL}\n whoami\n}}\n")
        port = server.http_port(LOCAL)
        self.assertTrue(port, "the front says which port 127.0.0.1:0 got")
        before, failed = metric(DURATION_COUNT), metric(FAILURES)

        reply = yield get(port, "/health")
        self.assertEqual(reply, (200, b"OK", "text/plain; charset=utf-8"))
        reply = yield get(port, "/health?probe=1")
        self.assertEqual(reply.code, 200, "the query string is no part of the path")
        for path in ("/", "/healthz", "/health/", "/ready", "/metrics"):
            self.assertEqual((yield get(port, path))[:2], (404, b"404 page not found\n"), path)
        self.assertEqual((yield server.query("example.org.")).rcode(), 0, "DNS is served beside it")

        # The self-check asks /health once a second: the histogram counts each request.
        yield wait_until(lambda: metric(DURATION_COUNT), lambda n: n >= before + 2, timeout=6)
        self.assertEqual(metric(FAILURES), failed)

        yield server.stop()
        yield wait_until(lambda: refused(port), bool, timeout=2)  # the listener closes with the server
        count = metric(DURATION_COUNT)
        yield deferLater(reactor, 1.2, lambda: None)
        self.assertEqual(metric(DURATION_COUNT), count, "the self-check stops with the server")

    @inlineCallbacks
    def test_two_endpoints_on_two_ports(self) -> Any:
        # The README's example: one health endpoint per block, each on its own port, both saying
        # the same about the one process.
        other = free_port()
        server = yield serve(self, f"com {{\n whoami\n health {LOCAL}\n}}\n"
                                   f"net {{\n whoami\n health 127.0.0.1:{other}\n}}\n")
        for port in (server.http_port(LOCAL), other):
            self.assertEqual((yield get(port))[:2], (200, b"OK"), port)
        first = server.http_port(LOCAL)
        yield server.stop()
        yield wait_until(lambda: refused(first) and refused(other), bool, timeout=2)

    @inlineCallbacks
    def test_reloads_never_close_the_listener(self) -> Any:
        corefiles = [
            f". {{\n health {LOCAL}\n whoami\n}}\n",
            f". {{\n health {LOCAL} {{\n  lameduck 1s\n }}\n ready {LOCAL}\n whoami\n}}\n",
            f"example.org {{\n whoami\n}}\n. {{\n health {LOCAL}\n whoami\n}}\n",
        ]
        server = yield serve(self, corefiles[0])
        port = server.http_port(LOCAL)
        replies: list[object] = []
        done = threading.Event()

        def poll() -> None:
            while not done.is_set():
                try:
                    replies.append(http_get(port).code)
                except OSError as exc:
                    replies.append(repr(exc))

        polling = deferToThread(poll)
        try:
            for corefile in corefiles[1:] + corefiles[:1]:
                wanted = len(replies) + 3  # a few probes land between two reloads
                self.assertTrue((yield server.reload(corefile)), corefile)
                self.assertEqual(server.http_port(LOCAL), port, "the listener is kept, port and all")
                yield wait_until(replies.__len__, wanted.__le__)
        finally:
            done.set()
            yield polling
        self.assertEqual(set(replies), {200}, "a probe never saw the endpoint go")
        self.assertEqual((yield server.query("example.org.")).rcode(), 0)

    @inlineCallbacks
    def test_reload_to_another_address_moves_the_endpoint(self) -> Any:
        other = free_port()
        server = yield serve(self, f". {{\n health {LOCAL}\n whoami\n}}\n")
        first = server.http_port(LOCAL)
        self.assertTrue((yield server.reload(f". {{\n health 127.0.0.1:{other}\n whoami\n}}\n")))
        self.assertEqual((yield get(other)).code, 200)
        yield wait_until(lambda: refused(first), bool, timeout=2)  # a listener serving nothing closes
        self.assertIsNone(server.http_port(LOCAL))

    @inlineCallbacks
    def test_failed_reload_keeps_the_endpoint(self) -> Any:
        server = yield serve(self, f". {{\n health {LOCAL}\n whoami\n}}\n")
        port = server.http_port(LOCAL)
        self.assertFalse((yield server.reload(". {\n health bla\n whoami\n}\n")))
        self.assertEqual(server.service.last_reload_error,
                         "plugin/health: address bla: missing port in address")
        self.assertEqual((yield get(port))[:2], (200, b"OK"))

    @inlineCallbacks
    def test_reload_onto_a_busy_port_keeps_the_endpoint(self) -> Any:
        # The new Corefile's endpoint cannot bind: the reload fails, the old endpoint and the old
        # servers keep serving (CoreDNS's OnRestartFailed).
        busy = socket.socket()
        self.addCleanup(busy.close)
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        taken = busy.getsockname()[1]
        server = yield serve(self, f". {{\n health {LOCAL}\n whoami\n}}\n")
        port = server.http_port(LOCAL)
        ok = yield server.reload(f". {{\n health 127.0.0.1:{taken}\n whoami\n}}\n")
        self.assertFalse(ok)
        self.assertEqual(server.service.last_reload_error,
                         f"listen tcp 127.0.0.1:{taken}: bind: address already in use")
        self.assertEqual((yield get(port))[:2], (200, b"OK"))
        self.assertTrue((yield server.reload(f". {{\n health {LOCAL}\n whoami\n}}\n")), "and reloads again")



# -- the self-check -------------------------------------------------------------------------------


class SelfCheckTests(TestCase):
    def setUp(self) -> None:
        self.log = LogCapture(self, "health")
        self.counts = (metric(DURATION_COUNT), metric(FAILURES))

    def changes(self) -> tuple[float, float]:
        return (metric(DURATION_COUNT) - self.counts[0], metric(FAILURES) - self.counts[1])

    def clocked(self) -> tuple[MemoryReactorClock, SelfCheck]:
        clock = MemoryReactorClock()
        check = SelfCheck(clock, "http://127.0.0.1:8080/health")
        check.start()
        self.addCleanup(check.stop)
        return clock, check

    def connect(self, clock: MemoryReactorClock) -> tuple[Any, StringTransport]:
        """Complete the check's connection by hand: its HTTP client protocol, on a string."""
        host, port, factory, _timeout, _bind = clock.tcpClients[-1]
        self.assertEqual((host, port), ("127.0.0.1", 8080))
        protocol: Any = factory.buildProtocol(None)
        transport = StringTransport()
        protocol.makeConnection(transport)
        return protocol, transport

    @inlineCallbacks
    def test_refused_connection_is_a_failure(self) -> Any:
        dead = free_port()
        url = f"http://127.0.0.1:{dead}/health"
        check = SelfCheck(reactor, url)
        check.start()
        self.addCleanup(check.stop)
        yield check.check()
        self.assertEqual(self.changes(), (1, 1))
        self.assertEqual(self.log.lines(), [(
            "WARNING",
            f'plugin/health: Local health request to "{url}" failed: Get "{url}": '
            f"dial tcp 127.0.0.1:{dead}: connect: connection refused",
        )])

    def test_no_answer_in_3s_is_a_failure(self) -> None:
        clock, check = self.clocked()
        check.check()
        self.assertIsNone(check.check(), "one request at a time")
        clock.advance(2.9)
        self.assertEqual(self.changes(), (0, 0))
        clock.advance(0.1)
        self.assertEqual(self.changes(), (1, 1))
        url = "http://127.0.0.1:8080/health"
        self.assertEqual(self.log.texts(), [
            f'plugin/health: Local health request to "{url}" failed: Get "{url}": '
            "context deadline exceeded (Client.Timeout exceeded while awaiting headers)",
        ])

    def test_slow_answer_is_logged_not_failed(self) -> None:
        clock, check = self.clocked()
        check.check()
        protocol, transport = self.connect(clock)
        self.assertTrue(transport.value().startswith(b"GET /health HTTP/1.1\r\n"))
        clock.advance(1.5)
        protocol.dataReceived(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nOK")
        self.assertEqual(self.changes(), (1, 0))
        stopped = check.stop()  # closes the kept-alive connection, and waits for it to close
        protocol.connectionLost(Failure(ConnectionDone()))
        self.successResultOf(stopped)
        self.assertEqual(self.log.lines(), [
            ("WARNING",
             'plugin/health: Local health request to "http://127.0.0.1:8080/health" took more than 1s: 1.5s'),
        ])

    def test_body_cut_short_by_the_timeout(self) -> None:
        clock, check = self.clocked()
        check.check()
        protocol, transport = self.connect(clock)
        protocol.dataReceived(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nOK")
        clock.advance(3)
        self.assertEqual(self.changes(), (1, 1))
        self.assertEqual(transport.producerState, "stopped", "the connection is given up")
        self.assertIn("context deadline exceeded", self.log.texts()[0])
        protocol.connectionLost(Failure(ConnectionDone()))

    def test_once_a_second_and_stop(self) -> None:
        clock, check = self.clocked()
        clock.advance(0.9)
        self.assertEqual(len(clock.tcpClients), 0, "the first check is a second after the start")
        clock.advance(0.1)
        self.assertEqual(len(clock.tcpClients), 1)
        check.stop()
        clock.advance(5)
        self.assertEqual(self.changes(), (0, 0), "a check cut short by stop is not a failure")
        self.assertEqual(len(clock.tcpClients), 1)
        self.assertEqual(self.log.lines(), [])


# -- the command: lameduck, and a start that cannot bind -----------------------------------------


class HealthProcessTests(SynchronousTestCase):
    def test_lameduck_at_sigterm(self) -> None:
        health, ready = free_port(), free_port()
        server = SubprocessServer(
            f". {{\n health 127.0.0.1:{health} {{\n  lameduck 2s\n }}\n"
            f" ready 127.0.0.1:{ready}\n whoami\n}}\n"
        )
        server.start()
        self.addCleanup(server.stop)
        assert server.process is not None
        process, dns_port = server.process, server.port
        self.assertEqual(http_get(health)[:2], (200, b"OK"))
        self.assertEqual(http_get(ready, "/ready")[:2], (200, b"OK"))

        process.send_signal(signal.SIGTERM)
        sent = time.monotonic()
        server.wait_for_log("[INFO] plugin/health: Going into lameduck mode for 2s")
        rounds = 0
        while time.monotonic() - sent < 1.5:
            self.assertEqual(http_get(health)[:2], (200, b"OK"), "health stays OK in lameduck")
            self.assertEqual(http_get(ready, "/ready")[:2], (503, b"Shutting down"))
            self.assertEqual(query(dns_port, "example.org.", timeout=1).rcode(), 0, "DNS is still served")
            rounds += 1
            time.sleep(0.1)
        self.assertGreater(rounds, 3)

        self.assertEqual(process.wait(timeout=10), 0)
        self.assertGreaterEqual(time.monotonic() - sent, 2.0, "the server waited the whole lameduck")
        log = server.log()
        self.assertIn("[INFO] SIGTERM: Shutting down servers then terminating\n"
                      "[INFO] plugin/health: Going into lameduck mode for 2s\n", log)
        for port in (health, ready, dns_port):
            self.assertTrue(refused(port), f"port {port} is closed")

    def test_two_blocks_on_one_address_fail_to_start(self) -> None:
        # health is process-wide: two blocks asking for it on one address is CoreDNS's bind error.
        health = free_port()
        directory = os.path.abspath(self.mktemp())
        os.makedirs(directory)
        corefile = os.path.join(directory, "Corefile")
        Path(corefile).write_text(f"com {{\n whoami\n health 127.0.0.1:{health}\n}}\n"
                                  f"net {{\n whoami\n health 127.0.0.1:{health}\n}}\n", encoding="utf-8")
        result = run_cli(["-conf", corefile, "-dns.port", str(free_port())], cwd=directory)
        self.assertEqual(result.returncode, 1, result.stdout + result.stderr)
        self.assertIn(f"listen tcp 127.0.0.1:{health}: bind: address already in use\n", result.stdout)
        self.assertTrue(refused(health))
