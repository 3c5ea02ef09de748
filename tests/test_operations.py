"""Running it in production, end to end with real processes and real tools: metrics summed over
multisocket workers, a real Prometheus server scraping them, reloads under dnsperf with nothing
lost, the process model changed by a reload, and Kubernetes' default Corefile."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

from prometheus_client.parser import text_string_to_metric_families
from twisted.trial.unittest import SynchronousTestCase

from twisted_coredns.testing import SubprocessServer, free_port, query, wait_for, worker_pids
from twisted_coredns.testing.unbound import UnboundServer, unbound_missing

DNSPERF = shutil.which("dnsperf")
PROMETHEUS = shutil.which("prometheus")
PROMTOOL = shutil.which("promtool")


def _need(tool: str | None, name: str, package: str) -> str:
    if tool is None:
        raise AssertionError(f"{name} is not installed (apt-get install {package}); make test installs it")
    return tool


_wait = wait_for


def http_get(url: str, timeout: float = 5.0) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as reply:
            return reply.status, reply.read().decode("utf-8")
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode("utf-8")


def scrape(port: int) -> dict[str, dict[tuple[tuple[str, str], ...], float]]:
    """Every sample of ``/metrics``: sample name -> sorted labels -> value."""
    status, text = http_get(f"http://127.0.0.1:{port}/metrics")
    assert status == 200, (status, text)
    samples: dict[str, dict[tuple[tuple[str, str], ...], float]] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples.setdefault(sample.name, {})[tuple(sorted(sample.labels.items()))] = sample.value
    return samples


def total(samples: dict[str, dict[Any, float]], metric: str, **labels: str) -> float:
    return sum(
        value for key, value in samples.get(metric, {}).items()
        if all((k, v) in key for k, v in labels.items())
    )


def listeners(port: int) -> int:
    """TCP sockets listening on ``port`` (IPv4 and IPv6), from /proc/net."""
    n = 0
    for name in ("tcp", "tcp6"):
        for line in Path("/proc/net", name).read_text().splitlines()[1:]:
            fields = line.split()
            if int(fields[1].rsplit(":", 1)[1], 16) == port and fields[3] == "0A":
                n += 1
    return n


def children(pid: int) -> set[int]:
    """The master's workers (not its fork server)."""
    return worker_pids(pid)


def dnsperf(port: int, queries: list[str], seconds: int, qps: int, timeout: int = 2) -> dict[str, str]:
    """Run dnsperf against 127.0.0.1:port; its summary lines, by name, and the whole output."""
    tool = _need(DNSPERF, "dnsperf", "dnsperf")
    with tempfile.NamedTemporaryFile("w", suffix=".txt", delete=False) as f:
        f.write("\n".join(queries) + "\n")
        path = f.name
    try:
        out = subprocess.run(
            [tool, "-s", "127.0.0.1", "-p", str(port), "-d", path, "-l", str(seconds), "-Q", str(qps),
             "-c", "8", "-t", str(timeout)],
            capture_output=True, text=True, timeout=seconds + 30, check=False,
        ).stdout
    finally:
        os.unlink(path)
    lines = {m.group(1): m.group(0).strip() for m in re.finditer(r"^\s*(Queries \w+):.*$", out, re.M)}
    lines["output"] = out
    return lines


def lost(lines: dict[str, str]) -> int:
    match = re.search(r"Queries lost:\s+(\d+)", lines.get("Queries lost", ""))
    assert match is not None, lines["output"]
    return int(match.group(1))


class MultisocketMetricsTests(SynchronousTestCase):
    """``multisocket 4``: one /metrics, /health and /ready for the process, counting every worker."""

    def setUp(self) -> None:
        self.metrics_port, self.health_port, self.ready_port = free_port(), free_port(), free_port()
        corefile = (
            ". {\n multisocket 4\n"
            f" health 127.0.0.1:{self.health_port}\n ready 127.0.0.1:{self.ready_port}\n"
            f" prometheus 127.0.0.1:{self.metrics_port}\n cache 30\n whoami\n}}\n"
        )
        self.server = SubprocessServer(corefile)
        self.server.start(timeout=30)
        self.addCleanup(self.server.stop)
        assert self.server.process is not None
        self.master = self.server.process.pid
        _wait(lambda: len(children(self.master)) == 4, 10, "four workers")
        _wait(lambda: listeners(self.metrics_port), 10, "the metrics endpoint")

    def requests(self) -> float:
        return total(scrape(self.metrics_port), "coredns_dns_requests_total")

    def send(self, n: int, prefix: str) -> None:
        for i in range(n):
            query(self.server.port, f"{prefix}{i}.example.", "A", tcp=bool(i % 5 == 0))

    def test_one_endpoint_and_the_sum_of_the_workers(self) -> None:
        # Served once, by the master: one listener each, whatever the number of workers.
        for port in (self.metrics_port, self.health_port, self.ready_port):
            self.assertEqual(listeners(port), 1, port)
        self.assertEqual(http_get(f"http://127.0.0.1:{self.health_port}/health"), (200, "OK"))
        self.assertEqual(http_get(f"http://127.0.0.1:{self.ready_port}/ready"), (200, "OK"))

        before = self.requests()
        cached = total(scrape(self.metrics_port), "coredns_cache_entries", type="success")
        self.send(400, "sum")
        # The four workers' counts, summed, are exactly what was sent.
        _wait(lambda: self.requests() == before + 400, 10, "the 400 queries counted")
        samples = scrape(self.metrics_port)
        answered = total(samples, "coredns_dns_responses_total", rcode="NOERROR")
        self.assertGreaterEqual(answered, before + 400)
        self.assertEqual(total(samples, "coredns_dns_requests_total", proto="tcp") % 80, 0)
        self.assertEqual(total(samples, "coredns_dns_request_duration_seconds_count"), before + 400)
        # Process-wide families are the master's, never multiplied by the workers.
        self.assertEqual(total(samples, "coredns_build_info"), 1)
        self.assertEqual(total(samples, "coredns_plugin_enabled", name="whoami"), 1)
        # Each worker has its own cache: 400 distinct names are spread over them, 400 entries in all.
        self.assertEqual(total(samples, "coredns_cache_entries", type="success"), cached + 400)
        # What promtool reads as valid exposition.
        text = http_get(f"http://127.0.0.1:{self.metrics_port}/metrics")[1]
        check = subprocess.run(
            [_need(PROMTOOL, "promtool", "prometheus"), "check", "metrics"],
            input=text, capture_output=True, text=True, check=False,
        )
        self.assertEqual(check.returncode, 0, check.stdout + check.stderr)

    def test_counters_survive_a_killed_worker(self) -> None:
        self.send(200, "before")
        baseline = _wait(lambda: (lambda v: v if v >= 200 else 0)(self.requests()), 10, "200 counted")
        # A scrape has the workers write their counts; the victim's last counts are in.
        self.requests()
        victim = min(children(self.master))
        os.kill(victim, signal.SIGKILL)
        seen = [self.requests()]
        self.assertGreaterEqual(seen[0], baseline)

        def respawned() -> bool:
            seen.append(self.requests())
            return len(children(self.master)) == 4 and victim not in children(self.master)

        _wait(respawned, 15, "the worker restarted")
        # Never down, not for a single scrape.
        self.assertEqual(seen, sorted(seen))
        self.assertEqual(seen[-1], baseline)
        self.send(100, "after")
        _wait(lambda: self.requests() == baseline + 100, 10, "the 100 queries after the restart counted")
        self.server.wait_for_log("was killed by SIGKILL; restarting it in")


class PrometheusServerTests(SynchronousTestCase):
    """Debian's Prometheus scrapes a multisocket 4 server under traffic, and the PromQL of
    CoreDNS's dashboards returns the traffic sent."""

    def test_dashboard_queries(self) -> None:
        if unbound_missing():
            raise AssertionError(unbound_missing())
        prometheus = _need(PROMETHEUS, "prometheus", "prometheus")
        upstream = UnboundServer([f"host{i}.test. 300 IN A 127.0.0.{i + 1}" for i in range(50)],
                                 zones=["test. static"]).start()
        self.addCleanup(upstream.stop)
        metrics_port = free_port()
        server = SubprocessServer(
            ". {\n multisocket 4\n"
            f" prometheus 127.0.0.1:{metrics_port}\n cache 30\n"
            f" forward . 127.0.0.1:{upstream.port}\n}}\n"
        )
        server.start(timeout=30)
        self.addCleanup(server.stop)
        _wait(lambda: listeners(metrics_port), 10, "the metrics endpoint")

        directory = Path(tempfile.mkdtemp(prefix="coredns-prometheus-"))
        self.addCleanup(shutil.rmtree, directory, True)
        (directory / "prometheus.yml").write_text(
            "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n"
            "scrape_configs:\n  - job_name: coredns\n    static_configs:\n"
            f"      - targets: ['127.0.0.1:{metrics_port}']\n"
        )
        web_port = free_port()
        proc = subprocess.Popen(
            [prometheus, f"--config.file={directory / 'prometheus.yml'}",
             f"--storage.tsdb.path={directory / 'data'}", f"--web.listen-address=127.0.0.1:{web_port}"],
            stdout=subprocess.DEVNULL, stderr=open(directory / "prometheus.log", "wb"),
        )
        self.addCleanup(lambda: (proc.terminate(), proc.wait(10)))
        api = f"http://127.0.0.1:{web_port}/api/v1/query?query="

        def promql(expr: str) -> list[dict[str, Any]]:
            status, body = http_get(api + urllib.parse.quote(expr))
            self.assertEqual(status, 200, body)
            data = json.loads(body)
            self.assertEqual(data["status"], "success", body)
            return list(data["data"]["result"])

        def target_up() -> bool:
            try:
                return bool(promql("up{job='coredns'} == 1"))
            except (OSError, AssertionError):
                return False

        _wait(target_up, 30, "Prometheus to scrape the server")
        # 300 qps for 12 s: 50 names (cache hits after the first round) and 10 AAAA.
        names = [f"host{i % 50}.test A" for i in range(50)] + [f"host{i}.test AAAA" for i in range(10)]
        lines = dnsperf(server.port, names, seconds=12, qps=300)
        self.assertEqual(lost(lines), 0, lines["output"])
        time.sleep(2.5)  # two more scrapes: the last of the traffic is in Prometheus

        sent = int(lines["Queries sent"].split()[-1])
        by_type = {r["metric"].get("type"): float(r["value"][1])
                   for r in promql("sum(rate(coredns_dns_requests_total[1m])) by (type)")}
        # The traffic fills 15 s of the one-minute window: the per-second rate over the window,
        # times 60, is what was sent (Prometheus extrapolates a little at the window's edges).
        self.assertLess(abs((by_type.get("A", 0) + by_type.get("AAAA", 0)) * 60 - sent), sent * 0.25, by_type)
        self.assertLess(abs(by_type.get("AAAA", 0) * 60 - sent / 6), sent / 6 * 0.25, by_type)
        # And the counters themselves, summed over the four workers, hold every query.
        counted = {r["metric"].get("type"): float(r["value"][1])
                   for r in promql("sum(coredns_dns_requests_total) by (type)")}
        self.assertGreaterEqual(counted.get("A", 0) + counted.get("AAAA", 0), sent)
        self.assertLessEqual(counted.get("A", 0) + counted.get("AAAA", 0), sent + 50)
        p99 = promql(
            "histogram_quantile(0.99, sum(rate(coredns_dns_request_duration_seconds_bucket[1m])) by (le))"
        )
        self.assertEqual(len(p99), 1)
        self.assertGreater(float(p99[0]["value"][1]), 0)
        self.assertLess(float(p99[0]["value"][1]), 1.0)
        entries = {r["metric"].get("type"): float(r["value"][1])
                   for r in promql("sum(coredns_cache_entries) by (type)")}
        # Each of the 4 workers caches what it was asked: 60 names at least once, 240 at most.
        self.assertGreaterEqual(entries.get("success", 0), 60)
        self.assertLessEqual(entries.get("success", 0), 240)
        forwarded = promql("rate(coredns_forward_requests_total[1m])")
        self.assertEqual({r["metric"]["to"] for r in forwarded}, {f"127.0.0.1:{upstream.port}"})
        self.assertGreater(sum(float(r["value"][1]) for r in forwarded), 0)


class ReloadUnderLoadTests(SynchronousTestCase):
    """Two SIGUSR1 reloads during a steady dnsperf run: not one query lost."""

    NAMES = [f"name{i}.example A" for i in range(200)]

    def _reload_under_load(self, corefile: str, changes: list[str], qps: int, sockets: int) -> dict[str, str]:
        server = SubprocessServer(corefile)
        server.start(timeout=30)
        self.addCleanup(server.stop)
        assert server.process is not None
        pid = server.process.pid
        _wait(lambda: self._udp_sockets(server.port) == sockets, 10, f"{sockets} sockets bound")

        def reloads() -> None:
            for i, text in enumerate(changes):
                time.sleep(3)
                server.corefile.write_text(text)
                os.kill(pid, signal.SIGUSR1)
                server.wait_for_log("[INFO] Reloading complete", timeout=10)
                _wait(lambda n=i + 1: server.log().count("Reloading complete") == n, 10, "the reload")

        import threading

        thread = threading.Thread(target=reloads)
        thread.start()
        lines = dnsperf(server.port, self.NAMES, seconds=10, qps=qps)
        thread.join()
        summary = ("Queries sent", "Queries completed", "Queries lost")
        print("\n".join(lines[k] for k in summary if k in lines))
        self.assertEqual(server.log().count("[INFO] Reloading complete"), len(changes), server.log())
        self.assertEqual(lost(lines), 0, lines["output"] + server.log())
        self.last = server
        return lines

    @staticmethod
    def _udp_sockets(port: int) -> int:
        n = 0
        for name in ("udp", "udp6"):
            for line in Path("/proc/net", name).read_text().splitlines()[1:]:
                if int(line.split()[1].rsplit(":", 1)[1], 16) == port:
                    n += 1
        return n

    def test_one_process(self) -> None:
        corefile = ". {\n whoami\n}\n"
        self._reload_under_load(corefile, [corefile, ". {\n errors\n whoami\n}\n"], qps=10000, sockets=1)
        self.assertEqual(self._udp_sockets(self.last.port), 1)

    def test_multisocket_2(self) -> None:
        corefile = ". {\n multisocket 2\n whoami\n}\n"
        self._reload_under_load(corefile, [corefile, corefile], qps=10000, sockets=2)
        # The same two sockets: a reload neither adds nor collapses them (CoreDNS once did).
        self.assertEqual(self._udp_sockets(self.last.port), 2)

    def test_changing_the_process_model(self) -> None:
        # One process -> 2 workers -> one process, with queries flowing all along.
        single, workers = ". {\n whoami\n}\n", ". {\n multisocket 2\n whoami\n}\n"
        self._reload_under_load(single, [workers, single], qps=5000, sockets=1)
        server = self.last
        self.assertEqual(self._udp_sockets(server.port), 1)
        assert server.process is not None
        self.assertEqual(children(server.process.pid), set())


class KubernetesCorefileTests(SynchronousTestCase):
    """The Corefile every Kubernetes cluster ships, the kubernetes block taken out, its upstream a
    loopback unbound and its HTTP endpoints on loopback ports."""

    def test_serves_and_answers(self) -> None:
        if unbound_missing():
            raise AssertionError(unbound_missing())
        upstream = UnboundServer(["svc.test. 300 IN A 10.96.0.10"], zones=["test. static"]).start()
        self.addCleanup(upstream.stop)
        health, ready, metrics = free_port(), free_port(), free_port()
        corefile = (
            ".:53 {\n"
            "    errors\n"
            f"    health 127.0.0.1:{health} {{\n       lameduck 5s\n    }}\n"
            f"    ready 127.0.0.1:{ready}\n"
            f"    prometheus 127.0.0.1:{metrics}\n"
            f"    forward . 127.0.0.1:{upstream.port} {{\n       max_concurrent 1000\n    }}\n"
            "    cache 30\n"
            "    loop\n"
            "    reload\n"
            "}\n"
        )
        port = free_port()
        server = SubprocessServer(corefile.replace(".:53", f".:{port}"), port=port)
        server.start(timeout=30, probe="svc.test.")
        self.addCleanup(server.stop)
        _wait(lambda: listeners(metrics), 10, "the metrics endpoint")
        reply = query(port, "svc.test.", "A")
        self.assertEqual([rr.to_text() for rrset in reply.answer for rr in rrset], ["10.96.0.10"])
        self.assertEqual(http_get(f"http://127.0.0.1:{health}/health"), (200, "OK"))
        _wait(lambda: http_get(f"http://127.0.0.1:{ready}/ready") == (200, "OK"), 10, "/ready 200")
        samples = scrape(metrics)
        self.assertGreaterEqual(total(samples, "coredns_dns_requests_total", type="A"), 1)
        self.assertGreaterEqual(total(samples, "coredns_cache_misses_total"), 1)
        self.assertIn("[INFO] plugin/reload: Running configuration SHA512 = ", server.log())
