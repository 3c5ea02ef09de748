"""ready: its Corefile syntax and errors (rows from CoreDNS's setup test), ``/ready`` on a real
socket with plugins that are ready or not (forward, and a test plugin whose readiness the test
sets), ``monitor until-ready`` and ``continuously``, shutdown, and multisocket workers summed
behind the one listener of the front process."""

from __future__ import annotations

import os
import signal
from collections.abc import Mapping
from typing import Any

from twisted.internet import reactor
from twisted.internet.defer import inlineCallbacks
from twisted.trial.unittest import SynchronousTestCase, TestCase
from zope.interface import implementer

from twisted_coredns.instance import build
from twisted_coredns.interfaces import IReady
from twisted_coredns.plugin import Controller, Handler, Plugin
from twisted_coredns.plugins.ready import setup as ready_setup
from twisted_coredns.registry import Registry, default_registry
from twisted_coredns.testing import SubprocessServer, free_port, serve, worker_pids
from twisted_coredns.testing.setup import SetupResult, check_setup_rows, load_setup_rows, run_setup

from .logerr_support import DATA
from .policy_support import doc_corefiles
from .small_plugin_support import captured_log
from .test_health import (
    LOCAL,
    get,
    http_get,
    listening,
    refused,
    wait_for,
    wait_until,
)

# -- a plugin whose readiness the test decides ----------------------------------------------------


@implementer(IReady)
class Toggle(Handler):
    """Ready when ``is_ready`` says so; counts how often ``/ready`` asked."""

    name = "toggle"

    def __init__(self) -> None:
        self.is_ready = False
        self.asked = 0

    def ready(self) -> bool:
        self.asked += 1
        return self.is_ready


def toggle_registry() -> tuple[Registry, list[Toggle]]:
    """The installed plugins and ``toggle``; the list fills with the handlers set up, in block order."""
    made: list[Toggle] = []

    def setup(controller: Controller) -> Toggle:
        for directive in controller.directives:
            controller.no_args(directive)
        made.append(Toggle())
        return made[-1]

    registry = Registry(list(default_registry()))
    registry.add(Plugin("toggle", setup, before="whoami"), "tests")
    return registry, made


# -- setup ----------------------------------------------------------------------------------------


def parsed(result: SetupResult) -> tuple[str, str]:
    config = result.config
    return ready_setup.parse(Controller("ready", config.block.directives_named("ready"), config, reactor))


class ReadySetupTests(SynchronousTestCase):
    def test_setup_rows(self) -> None:
        rows = load_setup_rows(DATA / "ready_setup_cases.json", source_contains="coredns/coredns @4b26cce")

        def check(row: Mapping[str, Any], result: SetupResult) -> None:
            self.assertEqual(parsed(result), (row["address"], row["monitor"]), row["input"])
            config = result.config
            self.assertTrue(config.watch_ready, "the block's plugins count for /ready")
            self.assertEqual(config.settings["ready.monitor"], row["monitor"])
            self.assertIsNone(result.handler, "ready adds no handler to the chain")

        self.assertEqual(check_setup_rows(self, rows, check=check, error_prefix="plugin/ready: "), len(rows))

    def test_defaults(self) -> None:
        self.assertEqual(parsed(run_setup("ready")), (":8181", "until-ready"))
        self.assertEqual((ready_setup.DEFAULT_ADDRESS, ready_setup.PATH), (":8181", "/ready"))
        self.assertFalse(run_setup("whoami").config.watch_ready, "a block without ready is not watched")

    def test_readme_examples_set_up(self) -> None:
        registry, _ = toggle_registry()
        for corefile in doc_corefiles("ready"):
            instance = build(corefile, dns_port=0, registry=registry)
            self.assertTrue(any(b.watch_ready for b in instance.blocks), corefile)


# -- the endpoint on a real socket ----------------------------------------------------------------


class ReadyEndpointTests(TestCase):
    @inlineCallbacks
    def test_ready_with_nothing_to_wait_for(self) -> Any:
        server = yield serve(self, f". {{\n ready {LOCAL}\n whoami\n}}\n")
        port = server.http_port(LOCAL)
        self.assertEqual((yield get(port, "/ready")), (200, b"OK", "text/plain; charset=utf-8"))
        for path in ("/", "/ready/", "/health"):
            self.assertEqual((yield get(port, path))[:2], (404, b"404 page not found\n"), path)
        yield server.stop()
        yield wait_until(lambda: refused(port), bool, timeout=2)

    @inlineCallbacks
    def test_forward_to_a_closed_port_is_not_ready(self) -> Any:
        dead = free_port()
        with captured_log() as out:
            server = yield serve(self, f". {{\n ready {LOCAL}\n forward . 127.0.0.1:{dead}\n}}\n")
            reply = yield get(server.http_port(LOCAL), "/ready")
        self.assertEqual(reply[:2], (503, b"forward"))
        self.assertIn('[INFO] plugin/ready: Plugins not ready: "forward"\n', out.getvalue())

    @inlineCallbacks
    def test_forward_is_ready_once_its_upstream_answered(self) -> Any:
        upstream = yield serve(self, ". {\n whoami\n}\n")
        server = yield serve(self, f". {{\n ready {LOCAL}\n forward . 127.0.0.1:{upstream.port}\n}}\n")
        port = server.http_port(LOCAL)
        # No query needed: with ready in its block, forward checks its upstreams at start.
        yield wait_until(lambda: get(port, "/ready"), lambda r: r[:2] == (200, b"OK"))

    @inlineCallbacks
    def test_not_ready_names_are_sorted_and_joined(self) -> Any:
        registry, toggles = toggle_registry()
        corefile = f". {{\n ready {LOCAL}\n forward . 127.0.0.1:{free_port()}\n toggle\n}}\n"
        server = yield serve(self, corefile, registry=registry)
        port = server.http_port(LOCAL)
        self.assertEqual((yield get(port, "/ready"))[:2], (503, b"forward,toggle"))
        toggles[0].is_ready = True
        self.assertEqual((yield get(port, "/ready"))[:2], (503, b"forward"))

    @inlineCallbacks
    def test_until_ready_asks_until_ready(self) -> Any:
        registry, toggles = toggle_registry()
        server = yield serve(self, f". {{\n ready {LOCAL}\n toggle\n whoami\n}}\n", registry=registry)
        port, toggle = server.http_port(LOCAL), toggles[0]
        self.assertEqual((yield get(port, "/ready"))[:2], (503, b"toggle"))
        toggle.is_ready = True
        self.assertEqual((yield get(port, "/ready"))[:2], (200, b"OK"))
        asked = toggle.asked
        toggle.is_ready = False
        self.assertEqual((yield get(port, "/ready"))[:2], (200, b"OK"), "once ready, not asked again")
        self.assertEqual(toggle.asked, asked)

    @inlineCallbacks
    def test_continuously_asks_every_time(self) -> Any:
        registry, toggles = toggle_registry()
        corefile = f". {{\n ready {LOCAL} {{\n  monitor continuously\n }}\n toggle\n whoami\n}}\n"
        server = yield serve(self, corefile, registry=registry)
        port, toggle = server.http_port(LOCAL), toggles[0]
        for state, want in [(False, (503, b"toggle")), (True, (200, b"OK")), (False, (503, b"toggle")),
                            (True, (200, b"OK"))]:
            toggle.is_ready = state
            self.assertEqual((yield get(port, "/ready"))[:2], want, state)

    @inlineCallbacks
    def test_only_blocks_with_ready_count(self) -> Any:
        # The README's example: every block with ready reports into the one endpoint; a block
        # without it does not.
        registry, toggles = toggle_registry()
        server = yield serve(
            self,
            f"a.example {{\n ready {LOCAL}\n toggle\n whoami\n}}\n"
            f"b.example {{\n ready {LOCAL}\n toggle\n whoami\n}}\n"
            f"c.example {{\n toggle\n whoami\n}}\n",
            registry=registry,
        )
        port = server.http_port(LOCAL)
        a, b, _c = toggles
        a.is_ready = True
        self.assertEqual((yield get(port, "/ready"))[:2], (503, b"toggle"))
        b.is_ready = True
        self.assertEqual((yield get(port, "/ready"))[:2], (200, b"OK"), "c.example has no ready")

    @inlineCallbacks
    def test_shutting_down_during_lameduck(self) -> Any:
        corefile = f". {{\n health {LOCAL} {{\n  lameduck 1s\n }}\n ready {LOCAL}\n whoami\n}}\n"
        server = yield serve(self, corefile)
        port = server.http_port(LOCAL)
        self.assertEqual((yield get(port, "/ready"))[:2], (200, b"OK"))
        stopping = server.stop()
        self.assertEqual((yield get(port, "/ready"))[:2], (503, b"Shutting down"))
        self.assertEqual((yield get(port, "/health"))[:2], (200, b"OK"), "health and ready share the address")
        self.assertEqual((yield server.query("example.org.")).rcode(), 0, "DNS is still served")
        yield stopping
        yield wait_until(lambda: refused(port), bool, timeout=2)

    @inlineCallbacks
    def test_reload_keeps_ready_and_takes_the_new_plugins(self) -> Any:
        registry, toggles = toggle_registry()
        server = yield serve(self, f". {{\n ready {LOCAL}\n whoami\n}}\n", registry=registry)
        port = server.http_port(LOCAL)
        self.assertEqual((yield get(port, "/ready"))[:2], (200, b"OK"))
        self.assertTrue((yield server.reload(f". {{\n ready {LOCAL}\n toggle\n whoami\n}}\n")))
        self.assertEqual(server.http_port(LOCAL), port)
        self.assertEqual((yield get(port, "/ready"))[:2], (503, b"toggle"))
        toggles[0].is_ready = True
        self.assertEqual((yield get(port, "/ready"))[:2], (200, b"OK"))


# -- multisocket: workers asked, one listener in the front process --------------------------------


def workers_of(pid: int) -> list[int]:
    """The multisocket workers of the master ``pid`` (from /proc)."""
    return sorted(worker_pids(pid))


def resume(pid: int) -> None:
    try:
        os.kill(pid, signal.SIGCONT)
    except ProcessLookupError:
        pass


def first_reply(port: int, path: str) -> tuple[int, bytes]:
    """The first reply of an endpoint that may not listen yet: with workers, DNS is answered (and
    ``SubprocessServer.start`` returns) a moment before the front process opens its endpoints."""

    def probe() -> tuple[int, bytes] | None:
        try:
            return http_get(port, path)[:2]
        except OSError:
            return None

    return wait_for(probe, lambda reply: reply is not None)


class ReadyWorkersTests(SynchronousTestCase):
    def start(self, corefile: str) -> SubprocessServer:
        server = SubprocessServer(corefile)
        server.start()
        self.addCleanup(server.stop)
        return server

    def test_ready_only_when_every_worker_is(self) -> None:
        ready, health = free_port(), free_port()
        server = self.start(
            f". {{\n multisocket 2\n ready 127.0.0.1:{ready}\n health 127.0.0.1:{health}\n whoami\n}}\n"
        )
        assert server.process is not None
        self.assertEqual(first_reply(ready, "/ready"), (200, b"OK"))
        self.assertEqual((listening(ready), listening(health)), (1, 1), "served by the front process alone")
        workers = workers_of(server.process.pid)
        self.assertEqual(len(workers), 2, workers)

        os.kill(workers[0], signal.SIGSTOP)  # a worker that does not answer is not ready
        self.addCleanup(resume, workers[0])
        self.assertEqual(http_get(ready, "/ready")[:2], (503, b"multisocket"))
        resume(workers[0])
        wait_for(lambda: http_get(ready, "/ready")[:2], lambda r: r == (200, b"OK"))
        self.assertEqual(server.stop(), 0)

    def test_workers_report_their_plugins(self) -> None:
        ready = free_port()
        server = self.start(
            f". {{\n multisocket 2\n ready 127.0.0.1:{ready}\n whoami\n}}\n"
            f"example.org {{\n multisocket 2\n ready 127.0.0.1:{ready}\n"
            f" forward . 127.0.0.1:{free_port()}\n}}\n"
        )
        self.assertEqual(first_reply(ready, "/ready"), (503, b"forward"))
        self.assertEqual(listening(ready), 1)
        server.wait_for_log('[INFO] plugin/ready: Plugins not ready: "forward"\n')
