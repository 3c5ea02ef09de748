"""The benchmark suite: our server beside unbound and ``twistd dns``, measured by dnsperf in one run.

    .venv/bin/python bench/run.py                       # every row, 10 s each (make bench)
    .venv/bin/python bench/run.py --seconds 5 --only whoami,twistd-zone --json out.json

A number for a Python DNS server means little on its own: it depends on the machine, on what else
runs on it, and on the load generator sharing its CPUs. So every configuration is measured here
beside the references (unbound, and Twisted's own ``twistd dns``) in the same run, with the same
dnsperf flags, and the targets of the performance issue are stated as ratios to them.

Servers run one at a time, each on its own free loopback port: the machine this was written for
has 2 cores and dnsperf needs most of one. For each row the script starts the server, waits until
it answers, runs dnsperf for ``--seconds``, reads the server's CPU time (``/proc/PID/stat`` utime
+ stime, before and after, summed over worker processes) and RSS, and stops it. See
docs/performance.md for what each row measures and a full run.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from _common import (
    READY,
    BenchError,
    DnsperfResult,
    ProcessUsage,
    dnsperf,
    free_port,
    rss_kb,
    selected_rows,
    start_coredns,
    stop_process,
    wait_until_answers,
)
from multisocket import corefile as multisocket_corefile

from twisted_coredns.testing.unbound import UnboundServer, unbound_missing

CLIENTS = 8
"""dnsperf ``-c``: several source ports, so ``multisocket``'s SO_REUSEPORT hash has something to spread."""
OUTSTANDING = 100
"""dnsperf ``-q``: enough to keep a Python server busy; 200 overflowed its socket buffer at start."""
THREADS = 1
"""dnsperf ``-T``: one thread, so dnsperf takes one core and leaves the other to the server."""

ONE_NAME = "bench.example."
ONE_RECORD = f"{ONE_NAME} 3600 IN A 127.0.0.1"
DISTINCT = 10000
"""Distinct names under ``bench.``: at least the cache's default capacity (9984)."""
CACHE_CAPACITY = 9984
MB = 1024 * 1024


@dataclass
class Row:
    """One line of the table."""

    key: str
    title: str
    reference: str | None = None
    """The ``twistd dns`` row this one is compared with."""
    status: str = "pending"
    reason: str = ""
    perf: DnsperfResult | None = None
    cpu_percent: float | None = None
    rss_kb: int | None = None
    client_cpu_percent: float | None = None
    other_cpu_percent: float | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {
            "key": self.key, "title": self.title, "reference": self.reference, "status": self.status,
            "reason": self.reason, "dnsperf": self.perf.as_dict() if self.perf else None,
            "cpu_percent": self.cpu_percent, "rss_kb": self.rss_kb,
            "client_cpu_percent": self.client_cpu_percent, "other_cpu_percent": self.other_cpu_percent,
            "extra": self.extra,
        }


# Our rows whose only difference is the Corefile: each plugin on the answer path, in front of whoami.
_PLUGIN_ROWS = [
    ("whoami", "ours: whoami", ". {\n    whoami\n}\n"),
    ("log", "ours: log + whoami", ". {\n    log\n    whoami\n}\n"),
    ("errors", "ours: errors + whoami", ". {\n    errors\n    whoami\n}\n"),
    ("any", "ours: any + whoami (A queries pass through)", ". {\n    any\n    whoami\n}\n"),
    ("chaos", "ours: chaos + whoami (IN queries pass through)", ". {\n    chaos\n    whoami\n}\n"),
    ("chain", "ours: errors log any chaos whoami",
     ". {\n    errors\n    log\n    any\n    chaos\n    whoami\n}\n"),
    ("prometheus", "ours: prometheus + whoami", ". {\n    prometheus 127.0.0.1:0\n    whoami\n}\n"),
]

ALL_KEYS = ["unbound", "twistd-zone", *(k for k, _, _ in _PLUGIN_ROWS), "cache", "forward",
            "log-cache-forward", "prometheus-log-cache-forward", "twistd-forward", "memory",
            "multisocket-1", "multisocket-2"]


def _floor(value: float, places: int = 2) -> str:
    """``value`` cut (never rounded up) to ``places`` decimals: 1.999 must not read as 2.00."""
    scale = 10**places
    return f"{int(value * scale) / scale:.{places}f}"


def _twistd_command(*args: str) -> list[str]:
    # The venv's Twisted, whatever the twistd script on PATH is.
    return [sys.executable, "-c", "from twisted.scripts.twistd import run; run()", "-n", "--pidfile=", *args]


def _port_free(host: str, port: int) -> bool:
    for kind in (socket.SOCK_DGRAM, socket.SOCK_STREAM):
        with socket.socket(socket.AF_INET, kind) as sock:
            if kind == socket.SOCK_STREAM:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                sock.bind((host, port))
            except OSError:
                return False
    return True


def _port53_address() -> str | None:
    """A loopback address whose port 53 is free: twisted.names reads only the address from resolv.conf."""
    for last in (1, 53, 54, 55, 153):
        host = f"127.0.0.{last}"
        if _port_free(host, 53):
            return host
    return None


def _first_line(text: str) -> str:
    return text.strip().splitlines()[0] if text.strip() else "failed"


def machine_info() -> dict[str, Any]:
    """What the numbers depend on."""
    import twisted

    model = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass

    def _version(cmd: list[str]) -> str:
        if shutil.which(cmd[0]) is None and not Path(cmd[0]).exists():
            return "missing"
        try:
            done = subprocess.run(cmd, capture_output=True, text=True, timeout=10)
        except (OSError, subprocess.TimeoutExpired):
            return "unknown"
        text = done.stdout + done.stderr
        for line in text.splitlines():
            if "Version" in line or "version" in line:
                return line.strip()
        return _first_line(text)

    from twisted_coredns.testing.unbound import UNBOUND

    return {
        "nproc": os.cpu_count(),
        "cpu": model,
        "kernel": platform.release(),
        "python": platform.python_version(),
        "twisted": twisted.__version__,
        "dnsperf": _version(["dnsperf", "-h"]),
        "unbound": _version([UNBOUND or "unbound", "-V"]),
        "loadavg": _loadavg(),
    }


def _loadavg() -> str:
    try:
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return "unknown"


class Bench:
    """Runs the selected rows in order, keeping one server loaded at a time."""

    def __init__(self, directory: Path, seconds: int, only: list[str] | None) -> None:
        self.dir = directory
        self.seconds = seconds
        self.only = only
        self.rows: dict[str, Row] = {}
        self.one = directory / "queries.one"
        self.one.write_text(f"{ONE_NAME} A\n")
        self.many = directory / "queries.distinct"
        self.many.write_text("".join(f"h{i}.bench. A\n" for i in range(DISTINCT)))
        # Half of the names exist, half do not: success and denial entries for the memory row.
        self.fill = directory / "queries.fill"
        self.fill.write_text("".join(f"h{i}.bench. A\nnx{i}.bench. A\n" for i in range(CACHE_CAPACITY)))
        self._upstream: UnboundServer | None = None
        self.upstream53: str | None = None
        self._port = 0

    # -- selection and bookkeeping ----------------------------------------------------------

    def selected(self, key: str) -> bool:
        if self.only is None:
            return True
        return any(key.startswith(name) for name in self.only)

    def row(self, key: str, title: str, reference: str | None = None) -> Row:
        row = Row(key, title, reference)
        self.rows[key] = row
        return row

    def skip(self, row: Row, reason: str) -> None:
        row.status, row.reason = "skipped", reason
        print(f"  {row.title}: skipped ({reason})", file=sys.stderr, flush=True)

    def measure(self, row: Row, pid: int, queryfile: Path, **kw: Any) -> None:
        upstream = self._upstream.process if self._upstream is not None else None
        perf, usage = ProcessUsage.measure(pid, lambda: dnsperf(
            self._port, queryfile, seconds=self.seconds, clients=CLIENTS, outstanding=OUTSTANDING,
            threads=THREADS, **kw), upstream=upstream.pid if upstream is not None else None)
        if upstream is not None:
            row.extra["upstream_cpu_percent"] = usage.upstream_cpu_percent
        row.perf, row.cpu_percent, row.rss_kb, row.status = perf, usage.cpu_percent, usage.rss_kb, "ok"
        row.client_cpu_percent, row.other_cpu_percent = usage.client_cpu_percent, usage.other_cpu_percent
        print(f"  {row.title}: {perf.qps:,.0f} qps, {perf.avg_latency_s * 1000:.3f} ms, "
              f"{perf.lost} lost, CPU {usage.cpu_percent:.0f}% (dnsperf {usage.client_cpu_percent:.0f}%, "
              f"upstream {usage.upstream_cpu_percent:.0f}%, others {usage.other_cpu_percent:.0f}%), "
              f"RSS {usage.rss_kb / 1024:.1f} MB",
              file=sys.stderr, flush=True)

    def attempt(self, row: Row, body: Callable[[], None]) -> None:
        print(f"{row.title} ...", file=sys.stderr, flush=True)
        try:
            body()
        except (BenchError, RuntimeError, OSError) as exc:
            row.status, row.reason = "failed", _first_line(str(exc))
            print(f"  {row.title}: FAILED\n{exc}", file=sys.stderr, flush=True)

    @contextmanager
    def _coredns(self, name: str, corefile: str, *, quiet: bool = False, probe_name: str = ONE_NAME,
                 ready: str | None = None) -> Iterator[int]:
        self._port = free_port()
        proc, _log = start_coredns(self.dir, corefile, self._port, name=name, quiet=quiet,
                                   probe_name=probe_name, ready=ready)
        try:
            yield proc.pid
        finally:
            stop_process(proc)

    @contextmanager
    def _twistd(self, name: str, args: list[str], probe_name: str) -> Iterator[int]:
        self._port = free_port()
        log = self.dir / f"{name}.log"
        with open(log, "wb") as out:
            proc = subprocess.Popen(
                _twistd_command("dns", *args, "-p", str(self._port), "-i", "127.0.0.1"),
                stdout=out, stderr=subprocess.STDOUT, cwd=self.dir,
            )
        try:
            wait_until_answers(proc, self._port, name=probe_name, log=log)
            yield proc.pid
        finally:
            stop_process(proc)

    def upstream(self) -> UnboundServer:
        """unbound holding ``bench.`` (10000 names, and denial for the rest) and ``bench.example.``."""
        if self._upstream is None:
            self.upstream53 = _port53_address()
            extra = [f"interface: {self.upstream53}@53"] if self.upstream53 else []
            records = [ONE_RECORD, "bench. 3600 IN SOA ns.bench. hostmaster.bench. 1 3600 600 86400 300",
                       "bench. 3600 IN NS ns.bench.", "ns.bench. 3600 IN A 127.0.0.1"]
            records += [f"h{i}.bench. 3600 IN A 127.{i >> 16 & 255}.{i >> 8 & 255}.{i & 255}"
                        for i in range(DISTINCT)]
            self._upstream = UnboundServer(records, zones=["bench. static"], extra=extra, threads=1).start()
        return self._upstream

    # -- the rows -----------------------------------------------------------------------------

    def run(self) -> None:
        if shutil.which("dnsperf") is None:
            for key in ALL_KEYS:
                if self.selected(key):
                    self.skip(self.row(key, key), "dnsperf is not installed: make tools")
            return
        missing_unbound = unbound_missing()
        if self.selected("unbound"):
            self.run_unbound(missing_unbound)
        if self.selected("twistd-zone"):
            self.run_twistd_zone()
        for key, title, corefile in _PLUGIN_ROWS:
            if self.selected(key):
                self.run_plugin_row(key, title, corefile)
        try:
            for key in ("cache", "forward", "log-cache-forward", "prometheus-log-cache-forward",
                        "twistd-forward", "memory"):
                if not self.selected(key):
                    continue
                if missing_unbound:
                    self.skip(self.row(key, key), f"needs unbound as upstream: {missing_unbound}")
                    continue
                getattr(self, "run_" + key.replace("-", "_"))()
        finally:
            if self._upstream is not None:
                self._upstream.stop()
        for n in (1, 2):
            if self.selected(f"multisocket-{n}"):
                self.run_multisocket(n)

    def run_unbound(self, missing: str | None) -> None:
        row = self.row("unbound", "unbound (1 thread, local-data)")
        if missing:
            self.skip(row, missing)
            return

        def body() -> None:
            with UnboundServer([ONE_RECORD], threads=1) as server:
                assert server.process is not None
                self._port = server.port
                self.measure(row, server.process.pid, self.one)
        self.attempt(row, body)

    def run_twistd_zone(self) -> None:
        row = self.row("twistd-zone", "twistd dns --bindzone (one-record zone)")
        zone = self.dir / "bench.example.zone"
        zone.write_text(
            "$ORIGIN bench.example.\n$TTL 3600\n"
            "@ IN SOA ns.bench.example. hostmaster.bench.example. 1 3600 600 86400 300\n"
            "@ IN NS ns\n"
            "@ IN A 127.0.0.1\n"
        )

        def body() -> None:
            with self._twistd("twistd-zone", [f"--bindzone={zone}"], ONE_NAME) as pid:
                self.measure(row, pid, self.one)
        self.attempt(row, body)

    def run_plugin_row(self, key: str, title: str, corefile: str) -> None:
        row = self.row(key, title, "twistd-zone")

        def body() -> None:
            with self._coredns(key, corefile, quiet=key in ("log", "chain")) as pid:
                self.measure(row, pid, self.one)
                if key == "whoami" and row.perf is not None:
                    half = self.row("whoami-half", "")
                    half.extra["rate_limited"] = True
                    rate = int(row.perf.qps / 2)
                    half.title = f"ours: whoami at half the peak (-Q {rate})"
                    half.extra["max_qps"] = rate
                    self.measure(half, pid, self.one, max_qps=rate)
        self.attempt(row, body)

    def run_cache(self) -> None:
        row = self.row("cache", "ours: cache hit (cache + forward to unbound)", "twistd-zone")

        def body() -> None:
            up = self.upstream()
            corefile = f". {{\n    cache\n    forward . 127.0.0.1:{up.port}\n}}\n"
            with self._coredns("cache", corefile) as pid:
                self.measure(row, pid, self.one)
        self.attempt(row, body)

    def _run_chain(self, key: str, title: str, front: str) -> None:
        row = self.row(key, title, "log-cache-forward" if front else None)

        def body() -> None:
            up = self.upstream()
            corefile = f". {{\n{front}    log\n    cache\n    forward . 127.0.0.1:{up.port}\n}}\n"
            with self._coredns(key, corefile, quiet=True) as pid:
                self.measure(row, pid, self.one)
        self.attempt(row, body)

    def run_log_cache_forward(self) -> None:
        self._run_chain("log-cache-forward", "ours: log + cache + forward (cache hits)", "")

    def run_prometheus_log_cache_forward(self) -> None:
        self._run_chain("prometheus-log-cache-forward", "ours: prometheus + log + cache + forward",
                        "    prometheus 127.0.0.1:0\n")

    def run_forward(self) -> None:
        row = self.row("forward", f"ours: forward to unbound, no cache, {DISTINCT} names", "twistd-forward")

        def body() -> None:
            up = self.upstream()
            target = f"{self.upstream53}:53" if self.upstream53 else f"127.0.0.1:{up.port}"
            row.extra["upstream"] = target
            corefile = f". {{\n    forward . {target}\n}}\n"
            with self._coredns("forward", corefile, probe_name="h0.bench.") as pid:
                self.measure(row, pid, self.many)
        self.attempt(row, body)

    def run_twistd_forward(self) -> None:
        row = self.row("twistd-forward", f"twistd dns --resolv-conf (forwarder, no cache), {DISTINCT} names")

        def body() -> None:
            self.upstream()
            if self.upstream53 is None:
                self.skip(row, "no 127.0.0.x:53 is free, and twisted.names only forwards to port 53")
                return
            resolv = self.dir / "resolv.conf"
            resolv.write_text(f"nameserver {self.upstream53}\n")
            row.extra["upstream"] = f"{self.upstream53}:53"
            with self._twistd("twistd-forward", [f"--resolv-conf={resolv}"], "h0.bench.") as pid:
                self.measure(row, pid, self.many)
        self.attempt(row, body)

    def run_memory(self) -> None:
        row = self.row("memory", f"ours: cache filled ({CACHE_CAPACITY} success + {CACHE_CAPACITY} denial)")

        def body() -> None:
            up = self.upstream()
            corefile = f". {{\n    cache\n    forward . 127.0.0.1:{up.port}\n}}\n"
            with self._coredns("memory", corefile, probe_name="probe.bench.") as pid:
                row.extra["rss_idle_kb"] = rss_kb(pid, tree=False)
                fills = []
                # Twice: the second pass refills anything a lost query left out, and should be all hits.
                for _ in range(2):
                    perf = dnsperf(self._port, self.fill, runs=1, clients=CLIENTS, outstanding=OUTSTANDING,
                                   threads=THREADS)
                    fills.append(perf.as_dict())
                row.extra["fill"] = fills
                row.rss_kb = rss_kb(pid, tree=False)
                row.status = "ok"
                print(f"  {row.title}: RSS {row.extra['rss_idle_kb'] / 1024:.1f} MB idle, "
                      f"{row.rss_kb / 1024:.1f} MB filled ({fills[0]['rcodes']})",
                      file=sys.stderr, flush=True)
        self.attempt(row, body)

    def run_multisocket(self, n: int) -> None:
        row = self.row(f"multisocket-{n}", f"ours: multisocket {n} + whoami (CPU, RSS: all processes)",
                       "twistd-zone")

        def body() -> None:
            with self._coredns(f"multisocket{n}", multisocket_corefile(n), ready=READY) as pid:
                self.measure(row, pid, self.one)
        self.attempt(row, body)


# -- the report -------------------------------------------------------------------------------


def _ratio(row: Row, reference: Row | None) -> str:
    # A row held to a fixed rate (-Q) measures latency: its qps is not comparable.
    if row.extra.get("rate_limited") or row.perf is None:
        return "-"
    if reference is None or reference.perf is None or reference.perf.qps <= 0:
        return "-"
    return _floor(row.perf.qps / reference.perf.qps) + "x"


def table(rows: dict[str, Row]) -> list[str]:
    lines = ["| configuration | qps | avg latency (ms) | lost | server CPU % | queries per server CPU-s "
             "| RSS (MB) | x twistd dns | x unbound | others' CPU % |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    unbound = rows.get("unbound")
    for row in rows.values():
        if row.status in ("skipped", "failed"):
            lines.append(f"| {row.title} | {row.status}: {row.reason} | | | | | | | | |")
            continue
        rss = f"{row.rss_kb / 1024:.1f}" if row.rss_kb is not None else "-"
        cpu = f"{row.cpu_percent:.0f}" if row.cpu_percent is not None else "-"
        if row.perf is None:
            lines.append(f"| {row.title} | - | - | - | {cpu} | - | {rss} | - | - | - |")
            continue
        ref = rows.get(row.reference) if row.reference else None
        other = f"{row.other_cpu_percent:.0f}" if row.other_cpu_percent is not None else "-"
        # What one CPU second of the server buys: comparable even when the server was not saturated.
        per_cpu = f"{row.perf.qps * 100 / row.cpu_percent:,.0f}" if row.cpu_percent else "-"
        lines.append(
            f"| {row.title} | {row.perf.qps:,.0f} | {row.perf.avg_latency_s * 1000:.3f} | {row.perf.lost} "
            f"| {cpu} | {per_cpu} | {rss} | {_ratio(row, ref)} | {_ratio(row, unbound)} | {other} |"
        )
    return lines


def targets(rows: dict[str, Row]) -> list[dict[str, Any]]:
    """Each target of the issue: met, missed, or not measured, with the numbers behind it."""
    out: list[dict[str, Any]] = []

    def qps_target(key: str, ref_key: str, factor: float, label: str) -> None:
        row, ref = rows.get(key), rows.get(ref_key)
        if row is None or ref is None or row.perf is None or ref.perf is None:
            out.append({"target": label, "verdict": "not measured",
                        "detail": f"needs rows {key} and {ref_key}"})
            return
        ratio = row.perf.qps / ref.perf.qps if ref.perf.qps else 0.0
        out.append({"target": label, "verdict": "met" if ratio >= factor else "missed", "value": ratio,
                    "detail": f"{row.perf.qps:,.0f} / {ref.perf.qps:,.0f} qps = {_floor(ratio)}x "
                              f"(needs ≥ {factor}x)"})

    qps_target("whoami", "twistd-zone", 2.0, "whoami ≥ 2x twistd dns (zone)")
    qps_target("cache", "twistd-zone", 2.0, "cache hit ≥ 2x twistd dns (zone)")
    qps_target("prometheus", "whoami", 0.9, "prometheus + whoami ≥ 0.9x whoami alone")
    qps_target("prometheus-log-cache-forward", "log-cache-forward", 0.9,
               "prometheus + log + cache + forward ≥ 0.9x the same without prometheus")
    qps_target("forward", "twistd-forward", 1.5, "forward ≥ 1.5x twistd dns (forwarder)")
    half = rows.get("whoami-half")
    if half is None or half.perf is None:
        out.append({"target": "latency < 1 ms at half the peak", "verdict": "not measured",
                    "detail": "needs row whoami"})
    else:
        ms = half.perf.avg_latency_s * 1000
        out.append({"target": "latency < 1 ms at half the peak", "verdict": "met" if ms < 1.0 else "missed",
                    "value": ms, "detail": f"{ms:.3f} ms average at -Q {half.extra.get('max_qps')} "
                                           f"({half.perf.qps:,.0f} qps achieved)"})
    mem = rows.get("memory")
    if mem is None or mem.rss_kb is None:
        out.append({"target": "RSS < 100 MB with a full cache", "verdict": "not measured",
                    "detail": "needs row memory"})
    else:
        mb = mem.rss_kb / 1024
        out.append({"target": "RSS < 100 MB with a full cache", "verdict": "met" if mb < 100 else "missed",
                    "value": mb,
                    "detail": f"{_floor(mb, 1)} MB filled ({mem.extra['rss_idle_kb'] / 1024:.1f} MB idle)"})
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--seconds", "-l", type=int, default=10,
                        help="dnsperf run length per row (default 10)")
    parser.add_argument("--only", help=f"comma-separated row keys or prefixes: {', '.join(ALL_KEYS)}")
    parser.add_argument("--json", type=Path, help="also write the raw results to this file")
    args = parser.parse_args(argv)
    only = selected_rows(parser, args.only, ALL_KEYS)

    machine = machine_info()
    started = time.time()
    with tempfile.TemporaryDirectory(prefix="bench-run-") as tmp:
        bench = Bench(Path(tmp), args.seconds, only)
        bench.run()
    machine["loadavg_after"] = _loadavg()
    flags = (f"dnsperf -s 127.0.0.1 -p PORT -d FILE -l {args.seconds} -c {CLIENTS} -q {OUTSTANDING} "
             f"-T {THREADS}")
    results = targets(bench.rows)

    print()
    print(f"Machine: {machine['nproc']} CPUs ({machine['cpu']}), Linux {machine['kernel']}, "
          f"Python {machine['python']}, Twisted {machine['twisted']}")
    print(f"Tools: {machine['dnsperf']}; {machine['unbound']}")
    print(f"Load average: {machine['loadavg']} before, {machine['loadavg_after']} after")
    print(f"Every row: {flags}")
    print()
    print("\n".join(table(bench.rows)))
    mem = bench.rows.get("memory")
    if mem is not None and mem.status == "ok":
        fill = mem.extra["fill"]
        print(f"\nmemory: RSS {mem.extra['rss_idle_kb'] / 1024:.1f} MB after start, "
              f"{(mem.rss_kb or 0) / 1024:.1f} MB after two passes over {2 * CACHE_CAPACITY} names "
              f"(first pass: {fill[0]['rcodes']}; lost {fill[0]['lost']}, {fill[1]['lost']})")
    print()
    for target in results:
        print(f"- {target['target']}: {target['verdict']} — {target['detail']}")

    if args.json:
        args.json.write_text(json.dumps({
            "machine": machine, "dnsperf": flags, "seconds": args.seconds, "started": started,
            "rows": [row.as_dict() for row in bench.rows.values()], "targets": results,
        }, indent=2) + "\n")
    failed = [row for row in bench.rows.values() if row.status == "failed"]
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
