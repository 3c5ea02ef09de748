"""etcd with a fleet: a three-member etcd cluster under faults, two twisted-coredns processes
(on 127.0.0.1 and 127.0.0.2) sharing its data, multisocket workers, and /ready before etcd is up.

Every server here is a real ``twisted-coredns`` child process (SubprocessServer) asked over UDP
with dnspython; etcd is Debian's, with 25 ms heartbeats and 250 ms elections so that a fault test
takes seconds. The figures each test measures (queries lost across a leader kill, time to answer
again after the majority returns, time for a write or a delete to be seen) are printed with the
``FIGURE`` prefix: ``pytest -s -k cluster`` shows them.
"""

from __future__ import annotations

import concurrent.futures
import time
import urllib.error
import urllib.request
from typing import Any

import dns.exception
import dns.rcode
from twisted.trial.unittest import SkipTest, SynchronousTestCase

from twisted_coredns.testing import SubprocessServer, free_port, wait_for
from twisted_coredns.testing.etcd import EtcdCluster, etcd_missing

FRESHNESS = 1.0  # seconds: the bound within which every server must show a change made in etcd


def _corefile(endpoints: list[str], *, extra: str = "", bind: str = "") -> str:
    bind_line = f" bind {bind}\n" if bind else ""
    return (
        f"fleet.test {{\n{bind_line} etcd {{\n  endpoint {' '.join(endpoints)}\n }}\n{extra}}}\n"
        f"other.test {{\n{bind_line} whoami\n}}\n"
    )


def _address(server: SubprocessServer, name: str, timeout: float = 1.0) -> tuple[int, list[str]]:
    r = server.query(name, "A", timeout=timeout)
    return r.rcode(), sorted(rd.address for rrset in r.answer for rd in rrset)


def _figure(text: str) -> None:
    print(f"FIGURE {text}")


class _ClusterCase(SynchronousTestCase):
    size = 3

    def setUp(self) -> None:
        reason = etcd_missing()
        if reason is not None:
            raise SkipTest(reason)
        self.etcd = EtcdCluster(self.size).start()
        self.addCleanup(self.etcd.stop)

    def server(self, corefile: str, *, host: str = "127.0.0.1") -> SubprocessServer:
        server = SubprocessServer(corefile, host=host)
        server.start()
        self.addCleanup(server.__exit__)
        return server


class FaultTests(_ClusterCase):
    def test_leader_kill_majority_loss_and_return(self) -> None:
        self.etcd.put("/skydns/test/fleet/www", {"host": "10.20.0.1"})
        server = self.server(_corefile(self.etcd.endpoints))
        self.assertEqual(_address(server, "www.fleet.test."), (dns.rcode.NOERROR, ["10.20.0.1"]))

        # 1. Kill the leader while a client asks 400 queries, 5 ms apart.
        leader = self.etcd.leader()
        assert leader is not None
        results: list[str] = []

        def ask(n: int) -> None:
            for _ in range(n):
                try:
                    rcode, addresses = _address(server, "www.fleet.test.", timeout=2.0)
                    results.append("ok" if addresses == ["10.20.0.1"] else dns.rcode.to_text(rcode))
                except dns.exception.Timeout:
                    results.append("timeout")
                time.sleep(0.005)

        with concurrent.futures.ThreadPoolExecutor(1) as pool:
            running = pool.submit(ask, 400)
            time.sleep(0.3)
            killed_at = time.monotonic()
            self.etcd.kill(leader)
            running.result()
        # What matters is that the queries were answered; the status API is only asked to report
        # the election (it can lag on a loaded machine, so it is not a condition of the test).
        try:
            new_leader = f"m{wait_for(self.etcd.leader, 10, 'a new leader')}"
        except AssertionError:
            new_leader = "not reported by the status API"
        lost = len(results) - results.count("ok")
        _figure(
            f"leader kill: {lost} of {len(results)} queries not answered NOERROR "
            f"({', '.join(sorted(set(results) - {'ok'})) or 'none'}); "
            f"new leader {new_leader} after {time.monotonic() - killed_at:.2f}s"
        )
        self.assertLessEqual(lost, 20, results)
        self.assertEqual(results[-50:], ["ok"] * 50)

        # 2. Stop a majority: only one member left, no quorum. Queries get SERVFAIL within the
        # 5 s timeout (they are not left hanging), and other zones answer at once meanwhile.
        self.etcd.put("/skydns/test/fleet/www", {"host": "10.20.0.2"})
        survivors = self.etcd.running()
        self.etcd.kill(survivors[0])
        started = time.monotonic()
        with concurrent.futures.ThreadPoolExecutor(4) as pool:
            slow = [pool.submit(_address, server, "www.fleet.test.", 9.0) for _ in range(3)]
            fast_started = time.monotonic()
            r = server.query("who.other.test.", "A", timeout=1.0)
            fast = time.monotonic() - fast_started
            rcodes = [f.result()[0] for f in slow]
        waited = time.monotonic() - started
        _figure(
            f"no quorum: SERVFAIL after {waited:.2f}s; another zone answered in {fast * 1000:.1f} ms"
        )
        self.assertEqual(rcodes, [dns.rcode.SERVFAIL] * 3)
        self.assertLess(waited, 7.0)
        self.assertEqual(r.rcode(), dns.rcode.NOERROR)
        self.assertLess(fast, 0.5)

        # 3. Bring the majority back: answers resume with no restart of the server.
        back_at = time.monotonic()
        for index in range(self.size):
            self.etcd.restart(index)

        def answers_again() -> bool:
            try:
                return _address(server, "www.fleet.test.", timeout=6.0) == (dns.rcode.NOERROR, ["10.20.0.2"])
            except dns.exception.Timeout:
                return False

        wait_for(answers_again, 20, "answers after the majority came back", interval=0.05)
        _figure(
            f"majority back: answering again {time.monotonic() - back_at:.2f}s after the members restarted"
        )


class FleetTests(_ClusterCase):
    def test_two_servers_share_the_data(self) -> None:
        one = self.server(_corefile(self.etcd.endpoints, bind="127.0.0.1"))
        two = self.server(_corefile(self.etcd.endpoints, bind="127.0.0.2"), host="127.0.0.2")
        # Written once, with etcdctl, answered by both.
        self.etcd.etcdctl("put", "/skydns/test/fleet/api", '{"host":"10.30.0.1"}')
        written = time.monotonic()
        for server in (one, two):
            wait_for(
                lambda s=server: _address(s, "api.fleet.test.") == (0, ["10.30.0.1"]), FRESHNESS, "the write"
            )
        _figure(f"fleet: a put seen by both servers within {time.monotonic() - written:.3f}s")
        self.etcd.etcdctl("del", "/skydns/test/fleet/api")
        deleted = time.monotonic()
        for server in (one, two):
            wait_for(
                lambda s=server: _address(s, "api.fleet.test.")[0] == dns.rcode.NXDOMAIN, FRESHNESS, "the del"
            )
        _figure(f"fleet: a del seen by both servers within {time.monotonic() - deleted:.3f}s")


class SingleMemberTests(_ClusterCase):
    size = 1

    def test_multisocket_workers_serve_the_same_data(self) -> None:
        server = self.server(_corefile(self.etcd.endpoints, extra=" multisocket 3\n"))
        for value in ("10.40.0.1", "10.40.0.2"):
            self.etcd.put("/skydns/test/fleet/www", {"host": value})
            # 60 queries from fresh source ports: SO_REUSEPORT spreads them over the 3 workers.
            answers = {tuple(_address(server, "www.fleet.test.")[1]) for _ in range(60)}
            self.assertEqual(answers, {(value,)})
        self.etcd.delete("/skydns/test/fleet/www")
        rcodes = {_address(server, "www.fleet.test.")[0] for _ in range(60)}
        self.assertEqual(rcodes, {dns.rcode.NXDOMAIN})

    def test_ready_waits_for_etcd(self) -> None:
        etcd_port = free_port()
        ready = f"127.0.0.1:{free_port()}"
        self.etcd.stop()
        server = self.server(
            f"fleet.test {{\n etcd {{\n  endpoint http://127.0.0.1:{etcd_port}\n }}\n ready {ready}\n}}\n"
        )
        server.wait_for_log("[WARNING] plugin/etcd: etcd is not reachable at http://127.0.0.1:")
        self.assertEqual(_ready_status(ready), 503)
        r = server.query("www.fleet.test.", "A", timeout=8)
        self.assertEqual(r.rcode(), dns.rcode.SERVFAIL)
        late = EtcdCluster(1, client_ports=[etcd_port]).start()
        self.addCleanup(late.stop)
        wait_for(lambda: _ready_status(ready) == 200, 5, "/ready to turn 200")
        server.wait_for_log(f"[INFO] plugin/etcd: etcd is reachable at http://127.0.0.1:{etcd_port}")
        late.put("/skydns/test/fleet/www", {"host": "10.50.0.1"})
        self.assertEqual(_address(server, "www.fleet.test."), (dns.rcode.NOERROR, ["10.50.0.1"]))

    def test_readme_corefiles_start(self) -> None:
        from pathlib import Path

        data = Path(__file__).resolve().parent.parent / "data" / "etcd"
        for corefile in sorted(data.glob("etcd_*.corefile")):
            text = corefile.read_text(encoding="utf-8")
            # The examples use etcd's default endpoint, said (etcd_1) or not (etcd_2): point them here.
            if "endpoint" not in text:
                text = text.replace(
                    "path /skydns\n", "path /skydns\n        endpoint http://localhost:2379\n"
                )
            text = text.replace("http://localhost:2379", self.etcd.endpoints[0])
            # The second block's forward goes to 127.0.0.1:53; nothing is asked of it here.
            with SubprocessServer(text) as server:
                self.etcd.put("/skydns/local/skydns/x1", {"host": "10.60.0.1"})
                r = server.query("x1.skydns.local.", "A")
                self.assertEqual(r.rcode(), dns.rcode.NOERROR, corefile.name)
                self.assertEqual([rd.address for rd in r.answer[0]], ["10.60.0.1"])


def _ready_status(address: str) -> int:
    try:
        with urllib.request.urlopen(f"http://{address}/ready", timeout=2) as reply:
            return int(reply.status)
    except urllib.error.HTTPError as exc:
        return int(exc.code)
    except OSError:
        return 0


__all__: list[Any] = []
