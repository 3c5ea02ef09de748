"""The multisocket launcher with real processes and sockets: N workers on one port, the kernel
spreading queries over them, a killed worker replaced, clean exits, reload, twistd."""

from __future__ import annotations

import io
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import dns.exception
import dns.message
import dns.rdataclass
import dns.rdatatype
from twisted.internet import reactor
from twisted.internet.defer import inlineCallbacks
from twisted.internet.task import deferLater
from twisted.internet.threads import deferToThread
from twisted.trial.unittest import SkipTest, SynchronousTestCase, TestCase

from twisted_coredns.instance import build
from twisted_coredns.launcher.master import MasterService, WorkerProcess
from twisted_coredns.launcher.worker import Worker
from twisted_coredns.registry import default_registry
from twisted_coredns.server.service import CoreDNSService
from twisted_coredns.testing import SubprocessServer, free_port, query, query_in_thread, worker_pids

from .helpers import test_registry

BANNER = "twisted-coredns-"


def _identity(port: int, *, tcp: bool = False, timeout: float = 3.0) -> tuple[int, int]:
    """(worker index, pid) of the worker that answered a ``worker.multisocket. CH TXT``."""
    q = dns.message.make_query("worker.multisocket.", dns.rdatatype.TXT, dns.rdataclass.CH)
    reply = query(port, "", message=q, tcp=tcp, timeout=timeout)
    fields = dict(s.decode().split("=", 1) for rr in reply.answer[0] for s in rr.strings)
    return int(fields["worker"]), int(fields["pid"])


def _listening(port: int) -> tuple[int, int]:
    """UDP sockets bound to and TCP sockets listening on ``port``, from /proc/net."""
    counts = []
    for kind in ("udp", "tcp"):
        n = 0
        for name in (kind, kind + "6"):
            try:
                lines = Path("/proc/net", name).read_text().splitlines()[1:]
            except OSError:
                continue
            for line in lines:
                fields = line.split()
                local_port = int(fields[1].rsplit(":", 1)[1], 16)
                if local_port == port and (kind == "udp" or fields[3] == "0A"):
                    n += 1
        counts.append(n)
    return counts[0], counts[1]


def _stat(pid: int) -> list[str] | None:
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return text.rsplit(")", 1)[1].split()


def _children(pid: int) -> set[int]:
    return worker_pids(pid)


def _alive(pid: int) -> bool:
    fields = _stat(pid)
    return fields is not None and fields[0] != "Z"


def _kill(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.kill()
        proc.wait()


def _tmpdir(case: SynchronousTestCase) -> Path:
    path = Path(tempfile.mkdtemp(prefix="coredns-launcher-"))
    case.addCleanup(shutil.rmtree, path, True)
    return path


def _wait(predicate: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


class _Servers:
    """Start ``twisted-coredns`` with workers, and wait until every worker is ready (the master
    prints the banner only then)."""

    def _serve(self, corefile: str, **kw: Any) -> SubprocessServer:
        server = SubprocessServer(corefile, **kw)
        server.start(timeout=30)
        self.addCleanup(server.__exit__)  # type: ignore[attr-defined]
        server.wait_for_log(BANNER, timeout=30)
        return server


class WorkersTests(_Servers, SynchronousTestCase):
    def test_sockets_and_spread(self) -> None:
        # No argument: the usable CPUs, which GOMAXPROCS overrides as it does for CoreDNS.
        server = self._serve(". {\nmultisocket\nwhoami\n}\n", env={"GOMAXPROCS": "4"})
        assert server.process is not None
        self.assertEqual(_listening(server.port), (4, 4))
        self.assertEqual(len(_children(server.process.pid)), 4)
        # Each query from a new socket, hence a new source port: the kernel hashes the 4-tuples
        # over the 4 sockets.
        seen: dict[int, int] = {}
        for _ in range(2000):
            index, _pid = _identity(server.port)
            seen[index] = seen.get(index, 0) + 1
        self.assertEqual(sum(seen.values()), 2000)
        self.assertGreater(len(seen), 1, seen)
        self.assertLessEqual(set(seen), {0, 1, 2, 3})
        tcp_seen = {_identity(server.port, tcp=True)[0] for _ in range(40)}
        self.assertGreater(len(tcp_seen), 1, tcp_seen)
        # The plugins answer as usual, over both transports.
        for tcp in (False, True):
            reply = server.query("example.org.", "A", tcp=tcp)
            self.assertEqual(len(reply.additional), 2, reply)
        # The banner comes once, from the master.
        log = server.log()
        self.assertEqual(log.count(BANNER), 1, log)

    def test_killed_worker_is_replaced(self) -> None:
        server = self._serve(". {\nmultisocket 2\nwhoami\n}\n")
        victim = None
        for _ in range(200):
            index, pid = _identity(server.port)
            if index == 1:
                victim = pid
                break
        self.assertIsNotNone(victim, "worker 1 never answered")
        assert victim is not None
        os.kill(victim, signal.SIGKILL)
        # Throughout the restart, every query is answered (late, for those hashed to the dead
        # worker's socket: the master keeps it and its queue).
        deadline = time.monotonic() + 2.5
        asked = 0
        while time.monotonic() < deadline:
            for tcp in (False, True):
                reply = server.query("example.org.", "A", tcp=tcp, timeout=8)
                self.assertEqual(len(reply.additional), 2)
                asked += 1
        self.assertGreater(asked, 10)
        replacement: list[int] = []

        def replaced() -> bool:
            index, pid = _identity(server.port, timeout=8)
            if index == 1 and pid != victim:
                replacement.append(pid)
            return bool(replacement)

        _wait(replaced, 20, "a new worker 1")
        self.assertFalse(_alive(victim))
        server.wait_for_log(f"[ERROR] plugin/multisocket: worker 1 (pid {victim}) was killed by SIGKILL")
        server.wait_for_log(f"[INFO] plugin/multisocket: worker 1 (pid {replacement[0]}) restarted")
        self.assertEqual(_listening(server.port), (2, 2))

    def test_sigterm_leaves_nothing(self) -> None:
        server = self._serve(". {\nmultisocket 3\nwhoami\n}\n")
        assert server.process is not None
        workers = _children(server.process.pid)
        self.assertEqual(len(workers), 3)
        self.assertEqual(server.stop(signal.SIGTERM), 0)
        _wait(lambda: not any(_alive(pid) for pid in workers), 5, "the workers to exit")
        self.assertEqual(_listening(server.port), (0, 0))

    def test_sigint_stops_gracefully(self) -> None:
        server = self._serve(". {\nmultisocket 2\nwhoami\n}\n")
        assert server.process is not None
        workers = _children(server.process.pid)
        self.assertEqual(server.stop(signal.SIGINT), 0)
        _wait(lambda: not any(_alive(pid) for pid in workers), 5, "the workers to exit")

    def test_master_sigkill_leaves_no_worker(self) -> None:
        server = self._serve(". {\nmultisocket 2\nwhoami\n}\n")
        assert server.process is not None
        workers = _children(server.process.pid)
        self.assertEqual(len(workers), 2)
        server.process.kill()
        server.process.wait()
        _wait(lambda: not any(_alive(pid) for pid in workers), 10, "orphaned workers to exit")
        _wait(lambda: _listening(server.port) == (0, 0), 5, "the sockets to close")

    def test_per_address_counts_and_plain_addresses(self) -> None:
        port, other = free_port(), free_port()
        log = "log\n" if "log" in default_registry() else ""
        corefile = f".:{port} {{\nmultisocket 3\nwhoami\n}}\n.:{other} {{\n{log}whoami\n}}\n"
        server = self._serve(corefile, port=port)
        self.assertEqual(_listening(server.port), (3, 3))
        self.assertEqual(_listening(other), (1, 1))
        # The plain address is served by worker 0.
        self.assertEqual({_identity(other)[0] for _ in range(30)}, {0})
        if log:
            # Its log lines reach the master's output, tagged with the worker.
            query(other, "tagged.example.org.", "A")
            line = server.wait_for_log('"A IN tagged.example.org. udp')
            line = next(x for x in line.splitlines() if "tagged.example.org." in x)
            self.assertTrue(line.startswith("[INFO] 127.0.0.1:"), line)
            self.assertTrue(line.endswith(" worker=0"), line)


class ReloadTests(_Servers, SynchronousTestCase):
    def test_sigusr1(self) -> None:
        pidfile = _tmpdir(self) / "coredns.pid"
        server = self._serve(". {\nmultisocket 2\nwhoami\n}\n", args=["-pidfile", str(pidfile)])
        assert server.process is not None
        master = server.process.pid
        self.assertEqual(pidfile.read_text().strip(), str(master))
        old = _children(master)

        # More sockets: one more bound, the two old ones kept; all new workers.
        server.corefile.write_text(". {\nmultisocket 3\nwhoami\n}\n")
        os.kill(master, signal.SIGUSR1)
        _wait(lambda: server.log().count("[INFO] Reloading complete") == 1, 30, "the reload")
        self.assertEqual(_listening(server.port), (3, 3))
        new = _children(master)
        self.assertEqual(len(new), 3)
        self.assertFalse(new & old)
        self.assertFalse(any(_alive(pid) for pid in old))
        answered = {_identity(server.port)[1] for _ in range(200)}
        self.assertLessEqual(answered, new)

        # A broken Corefile: CoreDNS's error lines, and the same workers keep serving.
        server.corefile.write_text(". {\nmultisocket x\nwhoami\n}\n")
        os.kill(master, signal.SIGUSR1)
        message = (f"plugin/multisocket: {server.corefile}:2 - Error during parsing: "
                   'invalid num sockets: strconv.Atoi: parsing "x": invalid syntax')
        server.wait_for_log(f"[ERROR] Restart failed: {message}\n", timeout=15)
        self.assertEqual(_children(master), new)
        self.assertEqual(_listening(server.port), (3, 3))
        self.assertLessEqual({_identity(server.port)[1] for _ in range(50)}, new)

        # Fewer sockets: the extra ones are closed, nobody is left reading them. A new address
        # gets its own sockets.
        other = free_port()
        server.corefile.write_text(
            f". {{\nmultisocket 1\nwhoami\n}}\n.:{other} {{\nmultisocket 2\nwhoami\n}}\n"
        )
        os.kill(master, signal.SIGUSR1)
        _wait(lambda: server.log().count("[INFO] Reloading complete") == 2, 30, "the second reload")
        self.assertEqual(_listening(server.port), (1, 1))
        self.assertEqual(_listening(other), (2, 2))
        self.assertEqual(len(_children(master)), 2)
        for tcp in (False, True):
            self.assertEqual(_identity(server.port, tcp=tcp)[0], 0)
            self.assertIn(_identity(other, tcp=tcp)[0], (0, 1))
        self.assertEqual(server.stop(), 0)
        self.assertFalse(pidfile.exists())


class TwistdTests(SynchronousTestCase):
    def test_twistd_runs_the_master(self) -> None:
        twistd = Path(sys.executable).with_name("twistd")
        if not twistd.exists():
            raise SkipTest(f"no twistd next to {sys.executable}")
        tmp = _tmpdir(self)
        (tmp / "Corefile").write_text(". {\nmultisocket 2\nwhoami\n}\n")
        port = free_port()
        pidfile = tmp / "twistd.pid"
        with open(tmp / "out.log", "wb") as out:
            proc = subprocess.Popen(
                [str(twistd), "-n", f"--pidfile={pidfile}", "coredns", "-c", "Corefile", "-p", str(port)],
                cwd=tmp, stdout=out, stderr=subprocess.STDOUT,
            )
        self.addCleanup(_kill, proc)
        _wait(lambda: BANNER in (tmp / "out.log").read_text(), 30, "twistd's workers")
        self.assertEqual(pidfile.read_text().strip(), str(proc.pid))
        workers = _children(proc.pid)
        self.assertEqual(len(workers), 2)
        seen = {_identity(port) for _ in range(100)}
        self.assertEqual({pid for _i, pid in seen}, workers)
        proc.send_signal(signal.SIGTERM)
        # twistd stops its services, then ends by the signal it got (Twisted's exitWithSignal).
        self.assertIn(proc.wait(20), (0, -signal.SIGTERM))
        self.assertIn("Server Shut Down.", (tmp / "out.log").read_text())
        _wait(lambda: not any(_alive(pid) for pid in workers), 5, "the workers to exit")


class RelayTests(SynchronousTestCase):
    def test_lines_are_tagged(self) -> None:
        out, err = io.StringIO(), io.StringIO()
        master = MasterService(build(". {\nmultisocket 2\nwhoami\n}\n", dns_port=0), stdout=out, stderr=err)
        worker = WorkerProcess(master, 1, 1, "")
        worker.childDataReceived(1, b"[INFO] plugin/log: one\n[INFO] tw")
        worker.childDataReceived(1, b"o\n\n")
        worker.childDataReceived(2, b"Traceback (most recent call last):\n  boom")
        self.assertEqual(out.getvalue(), "[INFO] plugin/log: one worker=1\n[INFO] two worker=1\n")
        worker.childDataReceived(2, b"\n")
        self.assertEqual(err.getvalue(), "Traceback (most recent call last): worker=1\n  boom worker=1\n")


class _WorkerService:
    """A worker's service (what ``launcher.worker`` serves) in this reactor, on a free port."""

    def __init__(self, corefile: str, **kw: Any) -> None:
        instance = build(corefile, dns_port=0, default_host="127.0.0.1", **kw)
        self.service = CoreDNSService(instance, reactor, quiet=True)

    def start(self) -> Any:
        self.service.privilegedStartService()
        return self.service.startService()

    def stop(self) -> Any:
        return self.service.stopService() if self.service.running else None

    @property
    def port(self) -> int:
        return self.service.servers[0].port

    def query(self, name: str, rdtype: str, **kw: Any) -> Any:
        return query_in_thread(self.port, name, rdtype, **kw)


class WorkerInProcessTests(TestCase):
    """The worker's side, in this reactor: its identity answer and its graceful stop."""

    @inlineCallbacks
    def test_identity_answer(self) -> Any:
        server = _WorkerService(". {\nwhoami\n}\n")
        Worker(5, server.service, reactor)
        yield server.start()
        self.addCleanup(server.stop)
        index, pid = yield deferToThread(_identity, server.port)
        self.assertEqual((index, pid), (5, os.getpid()))
        index, _pid = yield deferToThread(_identity, server.port, tcp=True)
        self.assertEqual(index, 5)
        # Only CH class: an IN query for the same name goes down the chain as usual.
        reply = yield server.query("worker.multisocket.", "TXT")
        self.assertEqual(reply.answer, [])
        self.assertEqual(len(reply.additional), 2)

    @inlineCallbacks
    def test_stop_lets_in_flight_queries_finish(self) -> Any:
        server = _WorkerService(". {\nslow\n}\n", registry=test_registry())
        worker = Worker(0, server.service, reactor)
        yield server.start()
        self.addCleanup(server.stop)
        slow = server.query("d600.x.", "TXT", timeout=5)
        yield deferLater(reactor, 0.2, lambda: None)
        self.assertEqual(server.service.servers[0].router.pending, 1)
        drained = worker.drain()
        # Stopped reading: a new query is not taken any more.
        late = server.query("d0.late.", "TXT", timeout=0.3)
        with self.assertRaises(dns.exception.Timeout):
            yield late
        reply = yield slow
        self.assertEqual(reply.answer[0][0].strings, (b"d600",))
        yield drained
        self.assertEqual(server.service.servers[0].ports, [])
