"""What the benchmark scripts share: starting a server, driving it with dnsperf, measuring it.

``bench/run.py`` (the suite) and ``bench/multisocket.py`` (one question, N sockets) both start a
``twisted-coredns`` child on a free loopback port, wait until it answers, run ``dnsperf`` against
it and read what the server process cost (CPU time and RSS from ``/proc``). Keeping that in one
place means both scripts measure the same way, so their numbers can be compared.

The scripts run as files (``python bench/run.py``), so this module is imported as ``_common``
from the script's own directory, not as a package.
"""

from __future__ import annotations

import argparse
import os
import re
import resource
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import IO, Any

from twisted_coredns.testing import free_port

__all__ = [
    "READY",
    "BenchError",
    "DnsperfResult",
    "ProcessUsage",
    "add_dnsperf_options",
    "dnsperf",
    "dnsperf_missing",
    "free_port",
    "measure_corefile",
    "probe",
    "rss_kb",
    "start_coredns",
    "stop_process",
    "tree_cpu_seconds",
    "wait_until_answers",
]

READY = "twisted-coredns-"
"""The last line of the startup banner: every listener (and every multisocket worker) is up."""

_CLK_TCK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100

_QPS = re.compile(r"Queries per second:\s+([0-9.]+)")
_SENT = re.compile(r"Queries sent:\s+(\d+)")
_COMPLETED = re.compile(r"Queries completed:\s+(\d+)")
_LOST = re.compile(r"Queries lost:\s+(\d+)")
_LATENCY = re.compile(r"Average Latency \(s\):\s+([0-9.]+)")
_RCODES = re.compile(r"Response codes:\s+(.*)")


class BenchError(Exception):
    """A server or a tool did not behave: the row cannot be measured."""


@dataclass
class DnsperfResult:
    """What dnsperf reported for one run."""

    qps: float
    avg_latency_s: float
    sent: int
    completed: int
    lost: int
    rcodes: str

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def dnsperf(
    port: int,
    queryfile: Path,
    *,
    seconds: int | None = None,
    clients: int = 8,
    outstanding: int = 100,
    threads: int = 1,
    max_qps: float | None = None,
    runs: int | None = None,
    host: str = "127.0.0.1",
    mode: str = "udp",
    options: tuple[str, ...] = (),
) -> DnsperfResult:
    """Run dnsperf against ``host:port`` and parse its statistics.

    ``mode`` is dnsperf's ``-m`` (udp, tcp, dot, doh); ``options`` its long options, each
    ``name=value`` (``-O doh-method=POST``)."""
    cmd = ["dnsperf", "-s", host, "-p", str(port), "-d", str(queryfile),
           "-c", str(clients), "-q", str(outstanding), "-T", str(threads)]
    if mode != "udp":
        cmd += ["-m", mode]
    for option in options:
        cmd += ["-O", option]
    if seconds is not None:
        cmd += ["-l", str(seconds)]
    if runs is not None:
        cmd += ["-n", str(runs)]
    if max_qps is not None:
        cmd += ["-Q", str(max(1, int(max_qps)))]
    timeout = (seconds or 120) + 60
    try:
        result = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired as exc:
        raise BenchError(f"dnsperf ran past {timeout} s") from exc
    out = result.stdout
    qps = _QPS.search(out)
    if result.returncode != 0 or qps is None:
        raise BenchError(f"dnsperf failed ({result.returncode}):\n{out}\n{result.stderr}")

    def _int(pattern: re.Pattern[str]) -> int:
        match = pattern.search(out)
        return int(match.group(1)) if match else 0

    latency = _LATENCY.search(out)
    rcodes = _RCODES.search(out)
    return DnsperfResult(
        qps=float(qps.group(1)),
        avg_latency_s=float(latency.group(1)) if latency else 0.0,
        sent=_int(_SENT),
        completed=_int(_COMPLETED),
        lost=_int(_LOST),
        rcodes=rcodes.group(1).strip() if rcodes else "",
    )


def probe(port: int, name: str = "probe.invalid.", host: str = "127.0.0.1", timeout: float = 0.3) -> bool:
    """True when something at ``host:port`` answers an A query for ``name`` over UDP (any rcode)."""
    labels = [label.encode("ascii") for label in name.rstrip(".").split(".") if label]
    qname = b"".join(bytes([len(label)]) + label for label in labels)
    query = b"\xbe\xef\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00" + qname + b"\x00\x00\x01\x00\x01"
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(timeout)
        try:
            sock.sendto(query, (host, port))
            data = sock.recv(4096)
        except OSError:
            return False
    return data[:2] == b"\xbe\xef"


def wait_until_answers(
    proc: subprocess.Popen[bytes], port: int, *, name: str = "probe.invalid.", host: str = "127.0.0.1",
    timeout: float = 60.0, log: Path | None = None, ready: str | None = None,
) -> None:
    """Block until the server answers (and, with ``ready``, has printed that text to ``log``)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise BenchError(f"server exited with {proc.returncode}:\n{_tail(log)}")
        if ready is None or (log is not None and ready in _tail(log)):
            if probe(port, name, host):
                return
        time.sleep(0.1)
    stop_process(proc)
    raise BenchError(f"server did not answer within {timeout:.0f} s:\n{_tail(log)}")


def _tail(log: Path | None) -> str:
    if log is None:
        return ""
    try:
        return log.read_text(encoding="utf-8", errors="replace")[-4000:]
    except FileNotFoundError:
        return ""


def start_coredns(
    directory: Path, corefile: str, port: int, *, name: str = "server", quiet: bool = False,
    probe_name: str = "probe.invalid.", ready: str | None = None,
) -> tuple[subprocess.Popen[bytes], Path]:
    """``twisted-coredns -conf FILE -dns.port PORT`` in ``directory``, answering when this returns.

    ``quiet`` sends its output to /dev/null (the ``log`` rows: a file would grow by a line a query
    and disk writes would become part of the measurement).
    """
    conf = directory / f"Corefile.{name}"
    conf.write_text(corefile, encoding="utf-8")
    log = directory / f"{name}.log"
    out: IO[bytes]
    with open(os.devnull if quiet else log, "wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "twisted_coredns", "-conf", str(conf), "-dns.port", str(port)],
            stdout=out, stderr=subprocess.STDOUT, cwd=directory,
        )
    wait_until_answers(proc, port, name=probe_name, log=None if quiet else log, ready=ready)
    return proc, log


def stop_process(proc: subprocess.Popen[bytes], timeout: float = 20.0) -> None:
    """SIGTERM, then SIGKILL if it has not exited within ``timeout``."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _descendants(pid: int) -> list[int]:
    """``pid`` and every process below it (multisocket workers), from /proc."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", encoding="ascii", errors="replace") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        children.setdefault(int(fields[1]), []).append(int(entry))
    found, todo = [], [pid]
    while todo:
        current = todo.pop()
        found.append(current)
        todo.extend(children.get(current, []))
    return found


def _cpu_seconds(pid: int) -> float:
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    # After the command name: state is field 3, utime 14 and stime 15 (1-based, proc(5)).
    return (int(fields[11]) + int(fields[12])) / _CLK_TCK


def tree_cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of ``pid`` and its live descendants."""
    return sum(_cpu_seconds(p) for p in _descendants(pid))


def rss_kb(pid: int, *, tree: bool = True) -> int:
    """VmRSS (kB) of ``pid``, summed over its descendants when ``tree``."""
    total = 0
    for p in _descendants(pid) if tree else [pid]:
        try:
            with open(f"/proc/{p}/status", encoding="ascii", errors="replace") as f:
                for line in f:
                    if line.startswith("VmRSS:"):
                        total += int(line.split()[1])
                        break
        except OSError:
            continue
    return total


def _host_busy_seconds() -> float:
    """CPU seconds all CPUs spent not idle since boot (``/proc/stat``), to see other load."""
    try:
        with open("/proc/stat", encoding="ascii") as f:
            fields = [int(v) for v in f.readline().split()[1:]]
    except (OSError, ValueError):
        return 0.0
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)  # idle + iowait
    # guest time is already counted in user and nice.
    return (sum(fields[:8]) - idle) / _CLK_TCK


def _children_cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


@dataclass
class ProcessUsage:
    """CPU and memory a server spent during one measurement, and what else ran meanwhile.

    ``client_cpu_percent`` is the load generator (children of this script reaped during the run:
    dnsperf), ``other_cpu_percent`` what the rest of the machine used: other people's work
    showing up in the numbers. 100 % is one CPU.
    """

    cpu_percent: float
    rss_kb: int
    client_cpu_percent: float = 0.0
    other_cpu_percent: float = 0.0
    upstream_cpu_percent: float = 0.0

    @classmethod
    def measure(cls, pid: int, run: Any, upstream: int | None = None) -> tuple[Any, ProcessUsage]:
        """Call ``run()``; return its result and what ``pid`` (and its workers) used meanwhile.

        ``upstream`` is a process the server itself queries (unbound behind ``forward``): its CPU
        is part of the configuration, not someone else's load.
        """
        host0, client0 = _host_busy_seconds(), _children_cpu_seconds()
        up0 = tree_cpu_seconds(upstream) if upstream else 0.0
        cpu0, t0 = tree_cpu_seconds(pid), time.monotonic()
        result = run()
        cpu1, t1 = tree_cpu_seconds(pid), time.monotonic()
        up1 = tree_cpu_seconds(upstream) if upstream else 0.0
        host1, client1 = _host_busy_seconds(), _children_cpu_seconds()
        wall = max(t1 - t0, 1e-9)
        server, client, up = cpu1 - cpu0, client1 - client0, up1 - up0
        other = max(0.0, (host1 - host0) - server - client - up)
        usage = cls(cpu_percent=100.0 * server / wall, rss_kb=rss_kb(pid),
                    client_cpu_percent=100.0 * client / wall, other_cpu_percent=100.0 * other / wall,
                    upstream_cpu_percent=100.0 * up / wall)
        return result, usage


def add_dnsperf_options(parser: argparse.ArgumentParser, *, seconds: int = 10) -> None:
    """The dnsperf options the one-server scripts share: ``-l`` run length, ``-c`` clients and
    ``-q`` queries outstanding."""
    parser.add_argument("-l", "--seconds", type=int, default=seconds,
                        help=f"dnsperf run length (default {seconds})")
    parser.add_argument("-c", "--clients", type=int, default=8, help="dnsperf clients (default 8)")
    parser.add_argument("-q", "--outstanding", type=int, default=64, help="dnsperf -q (default 64)")


def selected_rows(parser: Any, only: str | None, keys: list[str]) -> list[str] | None:
    """The row names of ``--only`` (comma-separated keys or prefixes of ``keys``), None for every
    row; an unknown one is a usage error through ``parser``."""
    names = [name.strip() for name in only.split(",") if name.strip()] if only else None
    if names:
        unknown = [name for name in names if not any(key.startswith(name) for key in keys)]
        if unknown:
            parser.error(f"unknown rows {', '.join(unknown)}; known: {', '.join(keys)}")
    return names


def dnsperf_missing() -> bool:
    """True (said on stderr) when dnsperf is not on PATH: the script has nothing to measure with."""
    if shutil.which("dnsperf") is not None:
        return False
    print("dnsperf is not installed (Debian: apt-get install dnsperf)", file=sys.stderr)
    return True


def measure_corefile(
    directory: Path, corefile: str, queryfile: Path, args: argparse.Namespace, *, label: str,
    name: str = "server", warm: bool = False,
) -> tuple[float, int, float]:
    """Start ``twisted-coredns`` with ``corefile``, run dnsperf with ``queryfile`` as ``args``
    says (``seconds``, ``clients``, ``outstanding``) and stop it: (queries per second, queries
    lost, the server's CPU µs per answered query). ``warm`` sends every name once first, so that
    what the plugins remember is in place and the row measures the steady state. A failure
    ends the script with ``label`` and the reason."""
    port = free_port()
    try:
        proc, _log = start_coredns(directory, corefile, port, name=name, probe_name="warm.example.org.")
    except BenchError as exc:
        raise SystemExit(f"{label}: {exc}") from None
    try:
        if warm:
            dnsperf(port, queryfile, runs=1, clients=1, outstanding=args.outstanding)
        result, usage = ProcessUsage.measure(proc.pid, lambda: dnsperf(
            port, queryfile, seconds=args.seconds, clients=args.clients, outstanding=args.outstanding))
    except BenchError as exc:
        raise SystemExit(f"{label}: {exc}") from None
    finally:
        stop_process(proc)
    # The server's CPU time per query: steadier than queries per second when other work shares
    # the machine, as it slows the server and dnsperf alike.
    cpu_us = usage.cpu_percent / 100 * args.seconds / max(result.completed, 1) * 1e6
    return result.qps, result.lost, cpu_us
