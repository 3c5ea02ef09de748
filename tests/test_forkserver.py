"""multisocket workers forked from a prepared fork server: children of the master all the same,
sharing the pages of what was imported before the fork, respawned fast, and spawned as fresh
interpreters where forking cannot be used."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import dns.message
import dns.query
from twisted.trial.unittest import SynchronousTestCase

from twisted_coredns.launcher import forkserver
from twisted_coredns.testing import SubprocessServer, wait_for, worker_pids

CH_WHOAMI = dns.message.make_query("worker.multisocket.", "TXT", "CH")


_wait = wait_for


def _identity(port: int) -> int | None:
    try:
        reply = dns.query.udp(CH_WHOAMI, "127.0.0.1", port=port, timeout=0.2)
    except Exception:
        return None
    text = b" ".join(s for rr in reply.answer[0] for s in rr.strings).decode() if reply.answer else ""
    return int(text.rsplit("pid=", 1)[1]) if "pid=" in text else None


def _smaps(pid: int) -> dict[str, int]:
    out = {}
    for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines()[1:]:
        key, value = line.split(":", 1)
        out[key] = int(value.split()[0])
    return out


def _comm(pid: int) -> str:
    return Path(f"/proc/{pid}/comm").read_text().strip()


class ForkedWorkersTests(SynchronousTestCase):
    def setUp(self) -> None:
        if not forkserver.supported():
            raise AssertionError("workers are forked on Linux x86_64 and aarch64; this machine is neither")
        self.server = SubprocessServer(". {\n multisocket 3\n cache\n whoami\n}\n")
        self.server.start(timeout=30)
        self.addCleanup(self.server.stop)
        assert self.server.process is not None
        self.master = self.server.process.pid
        # The banner comes once the start is complete (every worker ready): a SIGUSR1 before it is
        # refused as CoreDNS refuses one during its start.
        self.server.wait_for_log("twisted-coredns-", timeout=10)
        self.workers = _wait(lambda: (lambda w: w if len(w) == 3 else None)(worker_pids(self.master)), 10,
                             "three workers")

    def test_workers_are_the_masters_children_forked_not_spawned(self) -> None:
        for pid in self.workers:
            self.assertEqual(_comm(pid), "coredns-worker-")
            # Not a new interpreter started on launcher.worker: forked, it keeps the master's.
            self.assertNotIn(b"launcher.worker", Path(f"/proc/{pid}/cmdline").read_bytes())
        others = {int(e) for e in os.listdir("/proc") if e.isdigit() and int(e) not in self.workers
                  and Path(f"/proc/{e}/stat").exists()
                  and Path(f"/proc/{e}/stat").read_text().rsplit(")", 1)[1].split()[1] == str(self.master)}
        self.assertEqual([_comm(p) for p in others], ["coredns-forksrv"])
        answered = {_identity(self.server.port) for _ in range(60)}
        self.assertLessEqual(answered - {None}, self.workers)

    def test_workers_share_what_was_imported_before_the_fork(self) -> None:
        for i in range(50):
            self.server.query(f"n{i}.example.")
        for pid in self.workers:
            smaps = _smaps(pid)
            # Most of a worker is the pages it shares with the master and the fork server; what is
            # its own is its reactor, its chains, its cache and what it touched (about 10 MB).
            shared = smaps["Shared_Clean"] + smaps["Shared_Dirty"]
            self.assertGreater(shared, smaps["Private_Dirty"], smaps)
            self.assertLess(smaps["Private_Dirty"], 20 * 1024, smaps)

    def test_a_killed_worker_answers_again_within_a_second(self) -> None:
        victim = _wait(lambda: (lambda p: p if p in self.workers else None)(_identity(self.server.port)), 5,
                       "an answer")
        os.kill(victim, signal.SIGKILL)
        killed = time.monotonic()
        port = self.server.port
        replacement = _wait(
            lambda: (lambda p: p if p is not None and p not in self.workers else None)(_identity(port)),
            5, "the new worker's answer",
        )
        self.assertLess(time.monotonic() - killed, 1.0)
        self.assertEqual(_comm(replacement), "coredns-worker-")
        self.server.wait_for_log("was killed by SIGKILL; restarting it in")

    def test_reload_forks_the_new_generation(self) -> None:
        self.server.corefile.write_text(". {\n multisocket 2\n errors\n whoami\n}\n")
        os.kill(self.master, signal.SIGUSR1)
        self.server.wait_for_log("[INFO] Reloading complete", timeout=20)
        new = _wait(lambda: (lambda w: w if len(w) == 2 and not w & self.workers else None)(
            worker_pids(self.master)), 10, "two new workers")
        for pid in new:
            self.assertEqual(_comm(pid), "coredns-worker-")

    def test_the_master_killed_takes_everything_with_it(self) -> None:
        children = {int(e) for e in os.listdir("/proc") if e.isdigit() and Path(f"/proc/{e}/stat").exists()
                    and Path(f"/proc/{e}/stat").read_text().rsplit(")", 1)[1].split()[1] == str(self.master)}
        assert self.server.process is not None
        self.server.process.kill()
        self.server.process.wait()

        def gone() -> bool:
            for pid in children:
                try:
                    state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
                except OSError:
                    continue
                if state != "Z":
                    return False
            return True

        _wait(gone, 10, "the workers and the fork server to exit")


class SpawnedWorkersTests(SynchronousTestCase):
    """TWISTED_COREDNS_NO_FORKSERVER=1: workers are fresh interpreters, as on other systems."""

    def test_spawned_as_before(self) -> None:
        server = SubprocessServer(". {\n multisocket 2\n whoami\n}\n",
                                  env={"TWISTED_COREDNS_NO_FORKSERVER": "1"})
        server.start(timeout=30)
        self.addCleanup(server.stop)
        assert server.process is not None
        workers = _wait(lambda: (lambda w: w if len(w) == 2 else None)(worker_pids(server.process.pid)), 10,
                        "two workers")
        for pid in workers:
            self.assertIn(b"twisted_coredns.launcher.worker", Path(f"/proc/{pid}/cmdline").read_bytes())
        self.assertEqual(server.query("example.org.").rcode(), 0)
