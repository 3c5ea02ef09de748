"""Queries per second with ``multisocket 1`` and ``multisocket 2`` (and more), measured by dnsperf.

    .venv/bin/python bench/multisocket.py                # 1 and 2 sockets, 10 s each
    .venv/bin/python bench/multisocket.py -s 1,2,4 -l 20

Each run starts ``twisted-coredns`` with the Corefile ``. { multisocket N; whoami }`` on a free
port on 127.0.0.1, waits until every worker is ready, and runs
``dnsperf -s 127.0.0.1 -p PORT -d QUERYFILE -l SECONDS -c CLIENTS -q OUTSTANDING``. Many clients
(each its own source port) let the kernel's 4-tuple hash spread the queries over the sockets.

``multisocket 1`` is the plain single process (no master, no workers): the baseline. dnsperf runs
on the same machine and needs CPU too, so on a machine with few cores the ratio understates what
N workers give when the load comes from the network (on 2 cores, dnsperf and two workers share
two CPUs).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from _common import (
    READY,
    BenchError,
    add_dnsperf_options,
    dnsperf,
    dnsperf_missing,
    free_port,
    start_coredns,
    stop_process,
)


def corefile(sockets: int) -> str:
    """The Corefile of one row: ``multisocket N`` in front of ``whoami``."""
    return f". {{\n    multisocket {sockets}\n    whoami\n}}\n"


def _start(directory: Path, sockets: int, port: int) -> subprocess.Popen[bytes]:
    try:
        proc, _log = start_coredns(directory, corefile(sockets), port, name=f"multisocket{sockets}",
                                   ready=READY, probe_name="warm.example.org.")
    except BenchError as exc:
        raise SystemExit(str(exc)) from None
    return proc


def _dnsperf(port: int, queryfile: Path, seconds: int, clients: int, outstanding: int) -> tuple[float, int]:
    try:
        result = dnsperf(port, queryfile, seconds=seconds, clients=clients, outstanding=outstanding)
    except BenchError as exc:
        raise SystemExit(str(exc)) from None
    return result.qps, result.lost


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("-s", "--sockets", default="1,2", help="comma-separated N values (default 1,2)")
    add_dnsperf_options(parser)
    args = parser.parse_args(argv)
    if dnsperf_missing():
        return 2
    counts = [int(n) for n in args.sockets.split(",") if n.strip()]
    rows: list[tuple[int, float, int]] = []
    with tempfile.TemporaryDirectory(prefix="bench-multisocket-") as tmp:
        directory = Path(tmp)
        queryfile = directory / "queries"
        queryfile.write_text("".join(f"host{i}.example.org A\n" for i in range(1000)))
        for n in counts:
            port = free_port()
            proc = _start(directory, n, port)
            try:
                qps, lost = _dnsperf(port, queryfile, args.seconds, args.clients, args.outstanding)
            finally:
                stop_process(proc)
            rows.append((n, qps, lost))
            print(f"multisocket {n}: {qps:,.0f} qps ({lost} lost)", file=sys.stderr, flush=True)
    base = rows[0][1] if rows else 0.0
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    print(f"\nwhoami, dnsperf -l {args.seconds} -c {args.clients} -q {args.outstanding}, "
          f"{cpus} CPUs shared by dnsperf and the server")
    print(f"{'multisocket':>11}  {'queries/s':>11}  {'lost':>6}  {'ratio':>6}")
    for n, qps, lost in rows:
        ratio = qps / base if base else 0.0
        print(f"{n:>11}  {qps:>11,.0f}  {lost:>6}  {ratio:>6.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
