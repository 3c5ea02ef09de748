"""Queries per second over UDP, TCP, DoT and DoH, measured by dnsperf in one run, beside unbound.

    .venv/bin/python bench/transports.py                    # 3 runs of 5 s per row, medians
    .venv/bin/python bench/transports.py --runs 1 --seconds 3 --json /tmp/transports.json
    .venv/bin/python bench/transports.py --only ours-dot,ours-udp

One twisted-coredns process serves whoami on ``dns://`` (UDP and TCP), ``tls://`` and
``https://`` at once, with a certificate from ``twisted_coredns.testing.certs``; one unbound
(1 thread, ``local-data``) serves the same four transports as the reference. dnsperf drives
each row in turn (``-m udp|tcp|dot|doh``, DoH over HTTP/2 with GET and with POST), with the
flags of bench/run.py: ``-c 8`` clients, so 8 TCP/TLS/HTTP/2 connections that are opened once
and kept for the whole row (dnsperf reconnects only when a server closes one), ``-q 100``
queries outstanding over them, ``-T 1``. Every run goes through all the rows, and a row's
figure is the median of its runs, so a burst of someone else's load lands on one run of each
row rather than on every run of one row.

The table gives each row's qps, its ratio to our UDP qps and to unbound's qps on the same
transport, and the server's CPU (queries per CPU-second says what a second of our CPU buys
when the server is not saturated). The target of issue 10, DoT at 0.4x our UDP qps or more, is
printed as met or missed. docs/plugins/https.md has a run and says where DoH's time goes.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from _common import (
    READY,
    BenchError,
    DnsperfResult,
    ProcessUsage,
    dnsperf,
    dnsperf_missing,
    free_port,
    selected_rows,
    start_coredns,
    stop_process,
)

from twisted_coredns.testing.certs import make_certificates
from twisted_coredns.testing.unbound import UnboundServer, unbound_missing

CLIENTS = 8
"""dnsperf ``-c``: 8 clients, each with its own connection on the stream transports."""
OUTSTANDING = 100
"""dnsperf ``-q``: queries outstanding over all the clients."""
THREADS = 1
"""dnsperf ``-T``: one thread, leaving the other core of a 2-core machine to the server."""
NAME = "bench.example."
TARGET_DOT = 0.4
"""Issue 10: DoT at least 0.4x our UDP qps, with connection reuse."""


@dataclass(frozen=True)
class Mode:
    """One way dnsperf talks to a server."""

    key: str
    mode: str
    method: str | None = None
    """DoH only: ``GET`` or ``POST``."""

    @property
    def transport(self) -> str:
        names = {"udp": "dns (UDP)", "tcp": "dns (TCP)", "dot": "tls (DoT)", "doh": "https (DoH, h2)"}
        return names[self.mode]


MODES = [Mode("udp", "udp"), Mode("tcp", "tcp"), Mode("dot", "dot"), Mode("doh-get", "doh", "GET"),
         Mode("doh-post", "doh", "POST")]
SERVERS = ("ours", "unbound")
ALL_KEYS = [f"{server}-{mode.key}" for server in SERVERS for mode in MODES]


@dataclass
class Row:
    key: str
    server: str
    mode: Mode
    runs: list[tuple[DnsperfResult, ProcessUsage]] = field(default_factory=list)
    status: str = "pending"
    reason: str = ""

    def median(self) -> tuple[DnsperfResult, ProcessUsage] | None:
        """The run with the median qps (the lower middle of an even number)."""
        if not self.runs:
            return None
        ordered = sorted(self.runs, key=lambda run: run[0].qps)
        return ordered[(len(ordered) - 1) // 2]

    def as_dict(self) -> dict[str, Any]:
        return {"key": self.key, "server": self.server, "mode": self.mode.mode, "method": self.mode.method,
                "status": self.status, "reason": self.reason,
                "runs": [{"dnsperf": perf.as_dict(), "cpu_percent": usage.cpu_percent,
                          "client_cpu_percent": usage.client_cpu_percent,
                          "other_cpu_percent": usage.other_cpu_percent} for perf, usage in self.runs]}


@dataclass
class Endpoint:
    """Where one server listens for each dnsperf mode, and its process."""

    pid: int
    ports: dict[str, int]


def corefile(ports: dict[str, int], cert: str, key: str) -> str:
    return (
        f"dns://.:{ports['udp']} {{\n    whoami\n}}\n"
        f"tls://.:{ports['dot']} {{\n    tls {cert} {key}\n    whoami\n}}\n"
        f"https://.:{ports['doh']} {{\n    tls {cert} {key}\n    whoami\n}}\n"
    )


def _options(mode: Mode, port: int) -> tuple[str, ...]:
    if mode.mode != "doh":
        return ()
    return (f"doh-uri=https://127.0.0.1:{port}/dns-query", f"doh-method={mode.method}")


class Bench:
    def __init__(self, directory: Path, seconds: int, runs: int, only: list[str] | None) -> None:
        self.dir = directory
        self.seconds = seconds
        self.runs = runs
        self.rows = {key: Row(key, key.split("-", 1)[0], mode)
                     for key, mode in ((f"{s}-{m.key}", m) for s in SERVERS for m in MODES)
                     if only is None or any(key.startswith(name) for name in only)}
        self.queries = directory / "queries"
        self.queries.write_text(f"{NAME} A\n")
        (directory / "certs").mkdir()
        self.certs = make_certificates(directory / "certs")

    def start_ours(self) -> tuple[Any, Endpoint]:
        port = free_port()
        ports = {"udp": port, "tcp": port, "dot": free_port(), "doh": free_port()}
        proc, _log = start_coredns(self.dir, corefile(ports, self.certs.cert_file, self.certs.key_file), port,
                                   name="transports", probe_name=NAME, ready=READY)
        return proc, Endpoint(proc.pid, ports)

    def start_unbound(self) -> tuple[UnboundServer, Endpoint]:
        https = free_port()
        server = UnboundServer(
            [f"{NAME} 3600 IN A 127.0.0.1"], threads=1, tls=(self.certs.cert_file, self.certs.key_file),
            extra=[f"interface: 127.0.0.1@{https}", f"https-port: {https}"],
        ).start()
        assert server.process is not None
        ports = {"udp": server.port, "tcp": server.port, "dot": server.tls_port, "doh": https}
        return server, Endpoint(server.process.pid, ports)

    def measure(self, row: Row, endpoint: Endpoint) -> None:
        port = endpoint.ports[row.mode.mode]
        try:
            perf, usage = ProcessUsage.measure(endpoint.pid, lambda: dnsperf(
                port, self.queries, seconds=self.seconds, clients=CLIENTS, outstanding=OUTSTANDING,
                threads=THREADS, mode=row.mode.mode, options=_options(row.mode, port)))
        except BenchError as exc:
            row.status, row.reason = "failed", str(exc).strip().splitlines()[0]
            print(f"  {row.key}: FAILED\n{exc}", file=sys.stderr, flush=True)
            return
        row.runs.append((perf, usage))
        row.status = "ok"
        print(f"  {row.key}: {perf.qps:,.0f} qps, {perf.avg_latency_s * 1000:.3f} ms, {perf.lost} lost, "
              f"server CPU {usage.cpu_percent:.0f}%, dnsperf {usage.client_cpu_percent:.0f}%, "
              f"others {usage.other_cpu_percent:.0f}%", file=sys.stderr, flush=True)

    def run(self) -> None:
        missing = unbound_missing()
        for row in self.rows.values():
            if row.server == "unbound" and missing:
                row.status, row.reason = "skipped", missing
        wanted = {row.server for row in self.rows.values() if row.status == "pending"}
        ours = unbound = None
        try:
            endpoints: dict[str, Endpoint] = {}
            if "ours" in wanted:
                ours, endpoints["ours"] = self.start_ours()
            if "unbound" in wanted:
                unbound, endpoints["unbound"] = self.start_unbound()
            for n in range(self.runs):
                print(f"run {n + 1} of {self.runs}", file=sys.stderr, flush=True)
                for row in self.rows.values():
                    if row.status != "skipped" and row.server in endpoints:
                        self.measure(row, endpoints[row.server])
        finally:
            if ours is not None:
                stop_process(ours)
            if unbound is not None:
                unbound.stop()


def _floor(value: float) -> str:
    return f"{int(value * 100) / 100:.2f}x"


def table(rows: dict[str, Row]) -> list[str]:
    lines = ["| server | transport | dnsperf | qps (median) | runs (qps) | avg latency (ms) | lost "
             "| server CPU % | qps per server CPU-s | x our UDP | x unbound, same transport |",
             "|---|---|---|---:|---|---:|---:|---:|---:|---:|---:|"]
    ours_udp = rows.get("ours-udp")
    base = ours_udp.median() if ours_udp else None
    for row in rows.values():
        flags = f"-m {row.mode.mode}" + (f" {row.mode.method}" if row.mode.method else "")
        head = f"| {row.server} | {row.mode.transport} | {flags} "
        median = row.median()
        if median is None:
            lines.append(head + f"| {row.status}: {row.reason} | | | | | | | |")
            continue
        perf, usage = median
        runs = ", ".join(f"{p.qps:,.0f}" for p, _u in row.runs)
        per_cpu = f"{perf.qps * 100 / usage.cpu_percent:,.0f}" if usage.cpu_percent else "-"
        x_udp = _floor(perf.qps / base[0].qps) if base and base[0].qps else "-"
        ref_row = rows.get(f"unbound-{row.mode.key}")
        ref = ref_row.median() if ref_row is not None and row.server == "ours" else None
        x_ref = _floor(perf.qps / ref[0].qps) if ref and ref[0].qps else "-"
        lost = sum(p.lost for p, _u in row.runs)
        lines.append(head + f"| {perf.qps:,.0f} | {runs} | {perf.avg_latency_s * 1000:.3f} | {lost} "
                            f"| {usage.cpu_percent:.0f} | {per_cpu} | {x_udp} | {x_ref} |")
    return lines


def target(rows: dict[str, Row]) -> str:
    dot, udp = rows.get("ours-dot"), rows.get("ours-udp")
    dot_m, udp_m = (dot.median() if dot else None), (udp.median() if udp else None)
    label = f"DoT ≥ {TARGET_DOT}x our UDP qps"
    if dot_m is None or udp_m is None or not udp_m[0].qps:
        return f"- {label}: not measured (needs rows ours-dot and ours-udp)"
    ratio = dot_m[0].qps / udp_m[0].qps
    verdict = "met" if ratio >= TARGET_DOT else "missed"
    return f"- {label}: {verdict} — {dot_m[0].qps:,.0f} / {udp_m[0].qps:,.0f} qps = {_floor(ratio)}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--seconds", "-l", type=int, default=5, help="dnsperf run length per row (default 5)")
    parser.add_argument("--runs", "-n", type=int, default=3, help="runs over every row; medians (default 3)")
    parser.add_argument("--only", help=f"comma-separated row keys or prefixes: {', '.join(ALL_KEYS)}")
    parser.add_argument("--json", type=Path, help="also write every run's figures to this file")
    args = parser.parse_args(argv)
    only = selected_rows(parser, args.only, ALL_KEYS)
    if dnsperf_missing():
        return 2
    started = time.time()
    with tempfile.TemporaryDirectory(prefix="bench-transports-") as tmp:
        bench = Bench(Path(tmp), args.seconds, args.runs, only)
        bench.run()
    flags = f"dnsperf -l {args.seconds} -c {CLIENTS} -q {OUTSTANDING} -T {THREADS}"
    print()
    print(f"whoami on each transport (one twisted-coredns process), unbound 1 thread as reference; "
          f"Python {platform.python_version()}; every row: {flags}, median of {args.runs} run(s)")
    print()
    print("\n".join(table(bench.rows)))
    print()
    print(target(bench.rows))
    if args.json:
        args.json.write_text(json.dumps({
            "dnsperf": flags, "seconds": args.seconds, "runs": args.runs, "started": started,
            "rows": [row.as_dict() for row in bench.rows.values()],
        }, indent=2) + "\n")
    return 1 if any(row.status == "failed" for row in bench.rows.values()) else 0


if __name__ == "__main__":
    sys.exit(main())
