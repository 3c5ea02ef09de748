"""The authoritative ``file`` plugin: load time and memory of large zones, and queries per second
beside ``twistd dns --bindzone`` and knotd, measured by dnsperf in one run. Prints a table.

    .venv/bin/python bench/authoritative.py                  # every row, 10 s of dnsperf each
    .venv/bin/python bench/authoritative.py --seconds 5 --json out.json

Zones: the root zone of 2018 (tests/data/file/root.zone.gz, 19,597 records, 1,544 TLDs) and a
made-up zone of 10^5 records of the common types (``twisted_coredns.testing.zones``), beside one
of ten records of the same shapes.

- Load: ``Zone.from_file`` in a fresh interpreter with the server's collector settings, wall and
  CPU seconds; what the zone adds to the memory of that interpreter; and the RSS of a server that
  serves it.
- Root zone queries: one file of a third TLD referrals (``www.<tld>. A``), a third DS answers
  (``<tld>. DS``), a third NXDOMAINs (``<tld>-none. A``), shuffled. ``twistd dns`` cannot read the
  root zone's DS, NSEC and DNSKEY records, so it serves the root zone without them (15,274
  records), and so do we in the row beside it; it also answers referrals with NXDOMAIN (no
  delegation support), so it does less work per query than we do. knotd (one UDP worker) serves
  the whole zone as a reference.
- Zone size: qps on the 10^5 zone against qps on the 10-record zone, with the same query shape
  (A questions for hosts of the zone): 10^4 distinct names (they fit the answer cache of 20,000
  entries) and 10^5 distinct names (most questions miss the cache: the lookup and the encoding
  run each time). The 10-record zone has five hosts, so all its answers come from the cache; a
  last row asks it 10^5 distinct names that do not exist, so that both zones miss the cache.
  Besides qps, each row has the server's CPU time per query, which other load on the machine
  disturbs less (dnsperf and the server share two cores here).

Targets (issue 11): file ≥ 3x twistd dns on the same zone; the 10^5 zone loads in under 5 s;
qps on it within 20% of the 10-record zone's.
"""

from __future__ import annotations

import argparse
import gzip
import json
import random
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from _common import (
    BenchError,
    DnsperfResult,
    dnsperf,
    free_port,
    rss_kb,
    start_coredns,
    stop_process,
    tree_cpu_seconds,
    wait_until_answers,
)

from twisted_coredns.testing.knot import KnotServer, KnotZone, knot_available
from twisted_coredns.testing.zones import small_zone, synthetic_zone

ROOT = Path(__file__).resolve().parent.parent
ROOT_ZONE_GZ = ROOT / "tests" / "data" / "file" / "root.zone.gz"
RECORDS = 100_000
SYNTH = "synth.example."
SMALL = "small.example."
CLIENTS = 8
OUTSTANDING = 100
"""dnsperf flags, as bench/run.py uses them."""
TWISTD_CANNOT_READ = ("DS", "NSEC", "DNSKEY")
MB = 1024


@dataclass
class LoadRow:
    title: str
    records: int
    wall_s: float
    cpu_s: float
    zone_mb: float
    server_rss_mb: float | None


@dataclass
class QpsRow:
    key: str
    title: str
    perf: DnsperfResult | None = None
    rss_mb: float | None = None
    cpu_us: float | None = None
    """Server CPU time per answered query (robust to other load on the machine, unlike qps)."""
    note: str = ""


_LOAD = """
import json, sys, time
from twisted_coredns.server.limits import tune_gc
tune_gc()
from twisted_coredns.plugins.file.zone import Zone
def rss():
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmRSS:"))
before = rss()
wall, cpu = time.perf_counter(), time.process_time()
zone = Zone.from_file(sys.argv[1], sys.argv[2])
wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
print(json.dumps({"wall": wall, "cpu": cpu, "kb": rss() - before, "records": zone.records}))
"""


def measure_load(path: Path, origin: str) -> dict[str, Any]:
    """``Zone.from_file`` in a fresh interpreter: wall and CPU seconds, kB it added, records."""
    done = subprocess.run([sys.executable, "-c", _LOAD, str(path), origin], capture_output=True, text=True,
                          timeout=300, check=False)
    if done.returncode != 0:
        raise BenchError(f"loading {path} failed:\n{done.stderr}")
    result: dict[str, Any] = json.loads(done.stdout)
    return result


def write_queries(path: Path, lines: list[str]) -> Path:
    path.write_text("\n".join(lines) + "\n", encoding="ascii")
    return path


def root_queries(tlds: list[str], seed: int = 1) -> list[str]:
    lines = [f"www.{tld} A" for tld in tlds] + [f"{tld} DS" for tld in tlds]
    lines += [f"{tld.rstrip('.')}-none. A" for tld in tlds]
    random.Random(seed).shuffle(lines)
    return lines


def host_queries(origin: str, hosts: int, distinct: int, count: int, seed: int = 1) -> list[str]:
    """``count`` A questions for ``distinct`` hosts (h0, h1, ...) of a synthetic zone."""
    rnd = random.Random(seed)
    names = rnd.sample(range(hosts), distinct) if distinct < hosts else list(range(hosts))
    lines = [f"h{names[i % len(names)]}.{origin} A" for i in range(max(count, len(names)))]
    rnd.shuffle(lines)
    return lines


class Bench:
    def __init__(self, folder: Path, seconds: int) -> None:
        self.dir = folder
        self.seconds = seconds
        self.loads: list[LoadRow] = []
        self.rows: dict[str, QpsRow] = {}

    # -- servers -------------------------------------------------------------------------------

    @contextmanager
    def coredns(self, name: str, corefile: str, probe: str) -> Iterator[tuple[int, int]]:
        port = free_port()
        proc, _log = start_coredns(self.dir, corefile, port, name=name, probe_name=probe)
        try:
            yield port, proc.pid
        finally:
            stop_process(proc)

    @contextmanager
    def twistd(self, zone: Path, probe: str) -> Iterator[tuple[int, int]]:
        port = free_port()
        log = self.dir / "twistd.log"
        command = [sys.executable, "-c", "from twisted.scripts.twistd import run; run()", "-n", "--pidfile=",
                   "dns", f"--bindzone={zone}", "-p", str(port), "-i", "127.0.0.1"]
        with open(log, "wb") as out:
            proc = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, cwd=self.dir)
        try:
            wait_until_answers(proc, port, name=probe, log=log, timeout=300)
            yield port, proc.pid
        finally:
            stop_process(proc)

    @contextmanager
    def knotd(self, origin: str, text: str) -> Iterator[tuple[int, int]]:
        knot = KnotServer([KnotZone(origin, text=text)]).start(timeout=120)
        try:
            assert knot.process is not None
            yield knot.port, knot.process.pid
        finally:
            knot.stop()

    def qps(self, key: str, title: str, server: Any, queries: Path, note: str = "") -> QpsRow:
        row = self.rows[key] = QpsRow(key, title, note=note)
        try:
            with server as (port, pid):
                # One pass first: the answer cache warm, as it is on a server that has been up.
                dnsperf(port, queries, runs=1, clients=CLIENTS, outstanding=OUTSTANDING)
                cpu = tree_cpu_seconds(pid)
                row.perf = dnsperf(port, queries, seconds=self.seconds, clients=CLIENTS,
                                   outstanding=OUTSTANDING)
                cpu = tree_cpu_seconds(pid) - cpu
                row.rss_mb = rss_kb(pid) / MB
                if row.perf.completed:
                    row.cpu_us = cpu / row.perf.completed * 1e6
        except BenchError as exc:
            row.note = f"failed: {str(exc).splitlines()[0]}"
        return row

    # -- the measurements ----------------------------------------------------------------------

    def run(self) -> None:
        root_text = gzip.decompress(ROOT_ZONE_GZ.read_bytes()).decode("ascii")
        root = self.dir / "root.zone"
        root.write_text(root_text, encoding="ascii")
        plain_text = "".join(
            line + "\n" for line in root_text.splitlines() if line.split()[3] not in TWISTD_CANNOT_READ
        )
        plain_lines = plain_text.splitlines()
        # The file repeats the SOA at its end (AXFR form); twistd takes it for a second SOA record.
        plain = self.dir / "root.plain.zone"
        plain.write_text("\n".join(plain_lines[:-1]) + "\n", encoding="ascii")
        synth = self.dir / "synth.zone"
        synth.write_text(synthetic_zone(RECORDS, SYNTH), encoding="ascii")
        small = self.dir / "small.zone"
        small.write_text(small_zone(SMALL), encoding="ascii")
        tlds = sorted({line.split()[0] for line in root_text.splitlines() if line.split()[3] == "NS"} - {"."})

        self.measure_loads(root, synth, small)
        if shutil.which("dnsperf") is None:
            raise SystemExit("dnsperf is not installed (make tools)")
        mix = write_queries(self.dir / "root.queries", root_queries(tlds))
        self.qps("root", "ours: file, root zone",
                 self.coredns("root", f". {{\n file {root}\n}}\n", "com."), mix)
        self.qps("root-plain", "ours: file, root zone without DS/NSEC/DNSKEY",
                 self.coredns("plain", f". {{\n file {plain}\n}}\n", "com."), mix)
        self.qps("twistd", "twistd dns --bindzone, root zone without DS/NSEC/DNSKEY",
                 self.twistd(plain, "com."), mix, note="answers referrals NXDOMAIN")
        if knot_available():
            self.qps("knotd", "knotd (1 UDP worker), root zone", self.knotd(".", root_text), mix)
        small_q = write_queries(self.dir / "small.queries", host_queries(SMALL, 5, 5, 100_000))
        warm_q = write_queries(self.dir / "warm.queries", host_queries(SYNTH, RECORDS - 5, 10_000, 100_000))
        cold_q = write_queries(self.dir / "cold.queries", host_queries(SYNTH, RECORDS - 5, RECORDS - 5, 0))
        self.qps("small", "ours: file, 10-record zone",
                 self.coredns("small", f"{SMALL} {{\n file {small}\n}}\n", f"h0.{SMALL}"), small_q)
        small_cold = [f"x{i}.{SMALL} A" for i in range(RECORDS)]
        random.Random(2).shuffle(small_cold)
        small_cold_q = write_queries(self.dir / "small-cold.queries", small_cold)
        self.qps("small-cold", "ours: file, 10-record zone, 10^5 names (NXDOMAIN, cache mostly missed)",
                 self.coredns("small-cold", f"{SMALL} {{\n file {small}\n}}\n", f"h0.{SMALL}"), small_cold_q)
        self.qps("synth-warm", "ours: file, 10^5 zone, 10^4 names (in the answer cache)",
                 self.coredns("warm", f"{SYNTH} {{\n file {synth}\n}}\n", f"h0.{SYNTH}"), warm_q)
        self.qps("synth-cold", "ours: file, 10^5 zone, 10^5 names (answer cache mostly missed)",
                 self.coredns("cold", f"{SYNTH} {{\n file {synth}\n}}\n", f"h0.{SYNTH}"), cold_q)

    def measure_loads(self, root: Path, synth: Path, small: Path) -> None:
        baseline = self.server_rss(f"{SMALL} {{\n file {small}\n}}\n", f"h0.{SMALL}")
        for title, path, origin, probe in (
            ("root zone (2018)", root, ".", "com."),
            (f"synthetic, {RECORDS:,} records", synth, SYNTH, f"h0.{SYNTH}"),
        ):
            load = measure_load(path, origin)
            served = self.server_rss(f"{origin} {{\n file {path}\n}}\n", probe)
            self.loads.append(
                LoadRow(title, load["records"], load["wall"], load["cpu"], load["kb"] / MB, served)
            )
        self.baseline_rss_mb = baseline

    def server_rss(self, corefile: str, probe: str) -> float | None:
        try:
            with self.coredns("rss", corefile, probe) as (_port, pid):
                return rss_kb(pid) / MB
        except BenchError:
            return None

    # -- the report ----------------------------------------------------------------------------

    def report(self) -> list[str]:
        lines = ["| zone | records | load (s, wall) | load (s, CPU) | zone in memory (MB) "
                 "| server RSS (MB) |", "|---|---:|---:|---:|---:|---:|"]
        for load in self.loads:
            served = f"{load.server_rss_mb:.1f}" if load.server_rss_mb is not None else "-"
            lines.append(f"| {load.title} | {load.records:,} | {load.wall_s:.2f} | {load.cpu_s:.2f} "
                         f"| {load.zone_mb:.1f} | {served} |")
        if getattr(self, "baseline_rss_mb", None) is not None:
            lines.append(f"| (a server with the 10-record zone) | 10 | | | | {self.baseline_rss_mb:.1f} |")
        lines += ["", "| configuration | qps | server CPU µs/query | avg latency (ms) | lost | rcodes "
                  "| RSS (MB) | note |", "|---|---:|---:|---:|---:|---|---:|---|"]
        for row in self.rows.values():
            if row.perf is None:
                lines.append(f"| {row.title} | - | - | - | - | - | - | {row.note} |")
                continue
            rss = f"{row.rss_mb:.1f}" if row.rss_mb is not None else "-"
            cpu = f"{row.cpu_us:.1f}" if row.cpu_us is not None else "-"
            lines.append(f"| {row.title} | {row.perf.qps:,.0f} | {cpu} | {row.perf.avg_latency_s * 1000:.3f} "
                         f"| {row.perf.lost} | {row.perf.rcodes} | {rss} | {row.note} |")
        lines += ["", "| target | verdict | detail |", "|---|---|---|"]
        lines += [f"| {t['target']} | {t['verdict']} | {t['detail']} |" for t in self.targets()]
        return lines

    def targets(self) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []

        def ratio(key: str, ref: str, label: str, test: Callable[[float], bool], need: str) -> None:
            row, base = self.rows.get(key), self.rows.get(ref)
            if row is None or base is None or row.perf is None or base.perf is None or not base.perf.qps:
                out.append({"target": label, "verdict": "not measured", "detail": f"needs {key} and {ref}"})
                return
            value = row.perf.qps / base.perf.qps
            out.append({"target": label, "verdict": "met" if test(value) else "missed", "value": value,
                        "detail": f"{row.perf.qps:,.0f} / {base.perf.qps:,.0f} qps = {value:.2f}x ({need})"})

        ratio("root-plain", "twistd", "file ≥ 3x twistd dns, same zone", lambda v: v >= 3.0, "needs ≥ 3x")
        synth = next((row for row in self.loads if row.records >= RECORDS), None)
        if synth is None:
            out.append({"target": "10^5 records load in < 5 s", "verdict": "not measured", "detail": ""})
        else:
            verdict = "met" if synth.wall_s < 5 else "missed"
            out.append({"target": "10^5 records load in < 5 s", "verdict": verdict, "value": synth.wall_s,
                        "detail": f"{synth.wall_s:.2f} s wall, {synth.cpu_s:.2f} s CPU"})
        within = "needs ≥ 0.8x: slower by at most 20%"

        def per_cpu(key: str, ref: str, label: str) -> None:
            row, base = self.rows.get(key), self.rows.get(ref)
            if row is None or base is None or not row.cpu_us or not base.cpu_us:
                return
            value = base.cpu_us / row.cpu_us
            out.append({"target": label, "verdict": "met" if value >= 0.8 else "missed", "value": value,
                        "detail": f"{row.cpu_us:.1f} µs against {base.cpu_us:.1f} µs of server CPU a "
                                  f"query: {value:.2f}x the small zone's rate per CPU second ({within})"})

        ratio("synth-warm", "small", "10^5 zone within 20% of a 10-record zone (same cache use)",
              lambda v: v >= 0.8, within)
        per_cpu("synth-warm", "small", "the same, per server CPU second")
        ratio("synth-cold", "small", "10^5 zone, answer cache mostly missed, against a 10-record zone",
              lambda v: v >= 0.8, within)
        per_cpu("synth-cold", "small", "the same, per server CPU second")
        ratio("synth-cold", "small-cold", "10^5 zone against a 10-record zone, both missing the cache",
              lambda v: v >= 0.8, within)
        per_cpu("synth-cold", "small-cold", "the same, per server CPU second")
        return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=int, default=10, help="dnsperf seconds per row")
    parser.add_argument("--json", type=Path, help="also write the rows and targets here")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-authoritative-") as folder:
        bench = Bench(Path(folder), args.seconds)
        bench.run()
        print("\n".join(bench.report()))
        if args.json:
            args.json.write_text(json.dumps({
                "loads": [row.__dict__ for row in bench.loads],
                "rows": {k: {"title": r.title, "perf": r.perf.as_dict() if r.perf else None,
                             "rss_mb": r.rss_mb, "cpu_us": r.cpu_us, "note": r.note}
                         for k, r in bench.rows.items()},
                "targets": bench.targets(),
            }, indent=2), encoding="utf-8")


if __name__ == "__main__":
    if not knot_available():
        print("knotd is not installed: its row is left out", file=sys.stderr)
    main()
