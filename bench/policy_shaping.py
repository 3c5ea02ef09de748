"""Queries per second of whoami alone and of rewrite, header and minimal in front of it, each
measured by dnsperf in the same run.

    .venv/bin/python bench/policy_shaping.py                 # 5 s a row, 3 rounds
    .venv/bin/python bench/policy_shaping.py -l 4 -r 5
    .venv/bin/python bench/policy_shaping.py --in-process    # µs a query, no sockets

Each row starts ``twisted-coredns`` with its Corefile on a free port on 127.0.0.1 and runs
``dnsperf -l SECONDS -c CLIENTS -q OUTSTANDING`` with A queries for ``hostN.example.org``. The
rows run in turn, ``-r`` rounds of them, so a busy machine slows every row alike; the table gives
the median of each row's rounds, and its cost against whoami's median. The target is at most 15%
fewer queries per second than whoami alone.

The rewrite rows: one whose rule matches nothing (the cost of testing the rules), one that
rewrites the type (a copy of the query, the reply's question put back), one that rewrites every
name with ``answer auto`` (the reply's names turned back in its bytes), and one exact rule that
matches every query (a rule per query: the reversal made for each).

``--in-process`` calls the zone router on prebuilt queries instead (the server's work less the
sockets and the reactor): the plugin's own cost, in µs, steadier than qps on a loaded machine.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

from _common import BenchError, dnsperf, free_port, start_coredns, stop_process, tree_cpu_seconds

ROWS = {
    "whoami": "",
    "rewrite (no match) + whoami": "    rewrite name exact nothing.example. other.example.\n",
    "rewrite type + whoami": "    rewrite type A AAAA\n",
    "rewrite name suffix auto + whoami": "    rewrite name suffix .example.org. .example.net. answer auto\n",
    "rewrite name regex auto + whoami":
        "    rewrite name regex (.*)\\.example\\.org {1}.example.net answer auto\n",
    "header + whoami": "    header {\n        response set ra\n        query clear rd\n    }\n",
    "minimal + whoami": "    minimal\n",
}
NAMES = 1000


def corefile(rules: str) -> str:
    return f". {{\n{rules}    whoami\n}}\n"


def _dnsperf_rows(args: argparse.Namespace) -> dict[str, list[tuple[float, int, float]]]:
    """Each row's rounds: (queries/s, lost, the server's CPU µs a query)."""
    runs: dict[str, list[tuple[float, int, float]]] = {label: [] for label in ROWS}
    with tempfile.TemporaryDirectory(prefix="bench-policy-") as tmp:
        directory = Path(tmp)
        queryfile = directory / "queries"
        queryfile.write_text("".join(f"host{i}.example.org A\n" for i in range(NAMES)))
        rows = list(ROWS.items())
        for round_ in range(args.rounds):
            # Each round starts one row further on, so no row always runs first or last.
            shift = round_ % len(rows)
            for index, (label, rules) in enumerate(rows[shift:] + rows[:shift]):
                port = free_port()
                try:
                    proc, _log = start_coredns(directory, corefile(rules), port, name=f"row{index}",
                                               probe_name="warm.example.org.")
                except BenchError as exc:
                    raise SystemExit(str(exc)) from None
                try:
                    cpu0 = tree_cpu_seconds(proc.pid)
                    result = dnsperf(port, queryfile, seconds=args.seconds, clients=args.clients,
                                     outstanding=args.outstanding)
                    cpu = tree_cpu_seconds(proc.pid) - cpu0
                except BenchError as exc:
                    raise SystemExit(str(exc)) from None
                finally:
                    stop_process(proc)
                runs[label].append((result.qps, result.lost, cpu / max(result.completed, 1) * 1e6))
                print(f"round {round_ + 1}: {label}: {result.qps:,.0f} qps", file=sys.stderr, flush=True)
    return runs


def _in_process(args: argparse.Namespace) -> int:
    """µs a query through the zone router and the chain, best of ``rounds`` batches a row."""
    from twisted_coredns.instance import build
    from twisted_coredns.request import Request
    from twisted_coredns.response import finish
    from twisted_coredns.server.router import ZoneRouter
    from twisted_coredns.testing import make_query

    wires = [make_query(f"host{i}.example.org", "A").to_wire() for i in range(NAMES)]
    routers = {label: ZoneRouter(build(corefile(rules), dns_port=0).groups[0])
               for label, rules in ROWS.items()}
    batch = 5000

    def run(router: ZoneRouter, count: int) -> None:
        for i in range(count):
            request = Request(wires[i % NAMES], ("127.0.0.1", 40000), "udp", ("127.0.0.1", 53), "dns://:53")
            finish(request, router.dispatch(request))  # type: ignore[arg-type]

    best = dict.fromkeys(ROWS, float("inf"))
    for _round in range(max(args.rounds, 5)):
        for label, router in routers.items():
            run(router, 500)
            start = time.process_time()
            run(router, batch)
            best[label] = min(best[label], (time.process_time() - start) / batch * 1e6)
    base = best["whoami"]
    print(f"\nin process, best of {max(args.rounds, 5)} batches of {batch} (CPU time)")
    print(f"{'row':<36}  {'µs/query':>9}  {'added':>7}")
    for label, micros in best.items():
        print(f"{label:<36}  {micros:>9.2f}  {micros - base:>+7.2f}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("-l", "--seconds", type=int, default=5, help="dnsperf run length (default 5)")
    parser.add_argument("-c", "--clients", type=int, default=8, help="dnsperf clients (default 8)")
    parser.add_argument("-q", "--outstanding", type=int, default=64, help="dnsperf -q (default 64)")
    parser.add_argument("-r", "--rounds", type=int, default=3, help="rounds of every row (default 3)")
    parser.add_argument("--in-process", action="store_true", help="time the router, not dnsperf")
    args = parser.parse_args(argv)
    if args.in_process:
        return _in_process(args)
    if shutil.which("dnsperf") is None:
        print("dnsperf is not installed (Debian: apt-get install dnsperf)", file=sys.stderr)
        return 2
    runs = _dnsperf_rows(args)
    base = statistics.median(qps for qps, _lost, _cpu in runs["whoami"])
    base_cpu = statistics.median(cpu for _qps, _lost, cpu in runs["whoami"])
    print(f"\ndnsperf -l {args.seconds} -c {args.clients} -q {args.outstanding}, "
          f"median of {args.rounds} rounds")
    print("(cost: queries/s lost against whoami's; CPU cost: the same from the server's CPU time a "
          "query, steadier on a busy machine)")
    print(f"{'row':<36}  {'queries/s':>10}  {'lost':>6}  {'cost':>6}  {'CPU µs/q':>8}  {'CPU cost':>8}")
    for label, results in runs.items():
        qps = statistics.median(q for q, _lost, _cpu in results)
        lost = max(lost for _q, lost, _cpu in results)
        cpu = statistics.median(c for _q, _lost, c in results)
        cost = 1 - qps / base if base else 0.0
        cpu_cost = 1 - base_cpu / cpu if cpu else 0.0
        print(f"{label:<36}  {qps:>10,.0f}  {lost:>6}  {cost:>6.0%}  {cpu:>8.1f}  {cpu_cost:>8.0%}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
