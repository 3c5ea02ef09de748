"""Memory of ``multisocket N``: total PSS over the master and everything below it, and what each
extra worker adds; with the worker start-up time and how soon a killed worker answers again.

    .venv/bin/python bench/memory.py                  # N = 1, 2, 4, 8
    .venv/bin/python bench/memory.py -s 1,8 --queries 2000

Each row starts ``twisted-coredns`` with ``multisocket N`` in front of ``log cache forward`` (to a
loopback unbound), and a second block with ``whoami``; sends ``--queries`` distinct names and as
many whoami queries, so every worker has built its caches and connections; then sums ``Pss`` from
``/proc/PID/smaps_rollup`` over the process tree. PSS charges a page shared by k processes 1/k
to each, so the sum is the memory the tree really holds. Then it kills one worker with SIGKILL and
measures how long until the new one answers on its socket (``worker.multisocket. CH TXT``).
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import tempfile
import time
from pathlib import Path

import dns.message
import dns.query
from _common import READY, BenchError, _descendants, free_port, start_coredns, stop_process

from twisted_coredns.testing.unbound import UnboundServer, unbound_missing


def pss_kb(pid: int) -> int:
    """Pss of ``pid`` and every process below it (kB)."""
    total = 0
    for p in _descendants(pid):
        try:
            with open(f"/proc/{p}/smaps_rollup", encoding="ascii") as f:
                for line in f:
                    if line.startswith("Pss:"):
                        total += int(line.split()[1])
                        break
        except OSError:
            continue
    return total


def corefile(n: int, upstream: int) -> str:
    return (f". {{\n    multisocket {n}\n    log\n    cache\n    forward . 127.0.0.1:{upstream}\n}}\n"
            "who.test {\n    whoami\n}\n")


def _identity(port: int, timeout: float = 0.2) -> str | None:
    q = dns.message.make_query("worker.multisocket.", "TXT", "CH")
    try:
        reply = dns.query.udp(q, "127.0.0.1", port=port, timeout=timeout)
    except Exception:
        return None
    return b" ".join(s for rr in reply.answer[0] for s in rr.strings).decode() if reply.answer else None


def measure(directory: Path, n: int, upstream: int, queries: int) -> dict[str, float]:
    port = free_port()
    started = time.monotonic()
    try:
        proc, _log = start_coredns(directory, corefile(n, upstream), port, name=f"pss{n}",
                                   ready=READY if n > 1 else None, probe_name="warm.who.test.")
    except BenchError as exc:
        raise SystemExit(str(exc)) from None
    start_s = time.monotonic() - started
    try:
        for i in range(queries):
            q = dns.message.make_query(f"name{i}.example.", "A")
            dns.query.udp(q, "127.0.0.1", port=port, timeout=2)
            dns.query.udp(dns.message.make_query(f"w{i}.who.test.", "A"), "127.0.0.1", port=port, timeout=2)
        time.sleep(1.0)
        pss = pss_kb(proc.pid)
        processes = len(_descendants(proc.pid))
        respawn_s = float("nan")
        if n > 1:
            before = set(_descendants(proc.pid)) - {proc.pid}
            victim = next((p for p in sorted(before) if _identity_pid_matches(port, p)), None)
            if victim is not None:
                os.kill(victim, signal.SIGKILL)
                killed = time.monotonic()
                # Answered by a worker that did not exist before the kill: the replacement.
                while time.monotonic() - killed < 10:
                    text = _identity(port, timeout=0.05)
                    pid = int(text.rsplit("pid=", 1)[1]) if text and "pid=" in text else None
                    if pid is not None and pid not in before:
                        respawn_s = time.monotonic() - killed
                        break
    finally:
        stop_process(proc)
    return {"pss_kb": pss, "processes": processes, "start_s": start_s, "respawn_s": respawn_s}


def _identity_pid_matches(port: int, pid: int) -> bool:
    for _ in range(20):
        text = _identity(port)
        if text and f"pid={pid}" in text:
            return True
    return False


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("-s", "--sockets", default="1,2,4,8", help="comma-separated N (default 1,2,4,8)")
    parser.add_argument("--queries", type=int, default=1000, help="distinct names sent (default 1000)")
    args = parser.parse_args(argv)
    missing = unbound_missing()
    if missing:
        print(missing, file=sys.stderr)
        return 2
    counts = [int(x) for x in args.sockets.split(",") if x.strip()]
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench-memory-") as tmp, UnboundServer(
        [f"name{i}.example. 300 IN A 127.0.0.1" for i in range(args.queries)], zones=["example. static"]
    ) as up:
        for n in counts:
            row = measure(Path(tmp), n, up.port, args.queries)
            rows.append((n, row))
            print(f"multisocket {n}: {row['pss_kb'] / 1024:.1f} MB PSS", file=sys.stderr, flush=True)
    print(f"\nlog cache forward + whoami, {args.queries} names; PSS summed over the process tree")
    print(f"{'N':>3}  {'processes':>9}  {'total PSS MB':>12}  {'per extra worker MB':>19}  "
          f"{'start s':>7}  {'respawn s':>9}")
    base = rows[0][1]["pss_kb"] if rows else 0
    base_n = rows[0][0] if rows else 1
    for n, row in rows:
        extra = (row["pss_kb"] - base) / 1024 / (n - base_n) if n > base_n else float("nan")
        print(f"{n:>3}  {row['processes']:>9.0f}  {row['pss_kb'] / 1024:>12.1f}  {extra:>19.1f}  "
              f"{row['start_s']:>7.2f}  {row['respawn_s']:>9.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
