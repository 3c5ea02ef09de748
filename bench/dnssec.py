"""What on-the-fly signing costs: ``dnssec`` in front of ``file`` and ``whoami``, in process and
over real sockets.

    .venv/bin/python bench/dnssec.py                # 3 rounds of 1 s per in-process row, 5 s per dnsperf row
    .venv/bin/python bench/dnssec.py -s 2 -r 5 -n 10
    .venv/bin/python bench/dnssec.py -n 0           # in process only

In process (the chain called directly, no sockets): ``dnssec { key file K... }`` then ``file``
with a small unsigned zone. Rows:

- ``no DO``: the query passes through untouched (the price of the zone match);
- ``DO, cache hit``: the same name again and again: the same reply bytes, signed once and then
  taken whole from the handler's memo;
- ``DO, RRset cache hit``: the same with the memo off, as when the reply's bytes change (a TTL
  that counts down behind ``forward``): the reply is walked on the wire and each RRset's
  signatures come from the signature cache;
- ``DO, cache miss``: a new name each time (NXDOMAIN turned into a black lie), so an NSEC is
  signed every time (ECDSA P-256 via cryptography; the SOA's signature is cached);
- ``sign one RRset``: the signature alone.

Over sockets, one server at a time on a free loopback port, driven by dnsperf (``-D`` sets DO)
with the same flags as bench/run.py: ``whoami`` alone, then ``dnssec`` + ``whoami`` and
``dnssec`` + ``file`` with and without DO. The server's CPU is read from /proc as bench/run.py
does; with 2 cores, dnsperf takes most of one.
"""

from __future__ import annotations

import argparse
import functools
import itertools
import os
import re
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import dns.name
import dns.rrset
from _common import BenchError, ProcessUsage, free_port, start_coredns, stop_process

from twisted_coredns.dns.dnssec import key_file_paths, read_key_pair
from twisted_coredns.plugins.dnssec.handler import Dnssec
from twisted_coredns.testing import make_request
from twisted_coredns.testing.setup import run_setup

DATA = Path(__file__).resolve().parent.parent / "tests" / "data" / "dnssec"
KEY = "Kexample.org.+013+45330"
ZONE = """\
$ORIGIN example.org.
@ 3600 IN SOA ns.example.org. admin.example.org. 1 7200 3600 1209600 300
  3600 IN NS ns.example.org.
ns IN A 127.0.0.1
www IN A 127.0.0.1
"""
CLIENTS, OUTSTANDING = 8, 100  # dnsperf -c and -q, as bench/run.py
_QPS = re.compile(r"Queries per second:\s+([0-9.]+)")
_LATENCY = re.compile(r"Average Latency \(s\):\s+([0-9.]+)")
_RCODES = re.compile(r"Response codes:\s+(.*)")

# (title, Corefile, query, DO)
NETWORK_ROWS = [
    ("whoami", ". {\n whoami\n}\n", "a.example.org A", False),
    ("dnssec + whoami, no DO", f"example.org {{\n dnssec {{\n  key file {KEY}\n }}\n whoami\n}}\n",
     "a.example.org A", False),
    ("dnssec + whoami, DO", f"example.org {{\n dnssec {{\n  key file {KEY}\n }}\n whoami\n}}\n",
     "a.example.org A", True),
    ("dnssec + file, no DO",
     f"example.org {{\n dnssec {{\n  key file {KEY}\n }}\n file db.example.org\n}}\n",
     "www.example.org A", False),
    ("dnssec + file, DO",
     f"example.org {{\n dnssec {{\n  key file {KEY}\n }}\n file db.example.org\n}}\n",
     "www.example.org A", True),
]


def _rate(fn: Callable[[int], object], seconds: float) -> float:
    n = 0
    start = time.perf_counter()
    deadline = start + seconds
    while True:
        for _ in range(50):
            fn(n)
            n += 1
        now = time.perf_counter()
        if now >= deadline:
            return n / (now - start)


def _write_files(directory: str) -> None:
    for suffix in (".key", ".private"):
        Path(directory, KEY + suffix).write_bytes((DATA / (KEY + suffix)).read_bytes())
    Path(directory, "db.example.org").write_text(ZONE, encoding="utf-8")


def in_process(directory: str, seconds: float, rounds: int) -> None:
    def chain(memo: bool) -> Dnssec:
        result = run_setup(f"root {directory}\ndnssec {{\n key file {KEY}\n}}\nfile db.example.org",
                           keys="example.org")
        handler = result.config.handlers[0]
        assert isinstance(handler, Dnssec)
        if not memo:
            handler.memo_size = 0
        return handler

    memo, plain_chain = chain(True), chain(False)
    plain = make_request("www.example.org.", "A", edns=True)
    signed = make_request("www.example.org.", "A", edns=True, want_dnssec=True)
    # Twice the cache capacity, visited in turn: the oldest entry always went first.
    misses = [make_request(f"n{i}.example.org.", "A", edns=True, want_dnssec=True) for i in range(20_000)]
    turn = itertools.count()  # across rounds: a name comes back only after the cache has dropped it
    key = read_key_pair(*key_file_paths(os.path.join(directory, KEY)))
    rrset = dns.rrset.from_text("www.example.org.", 300, "IN", "A", "127.0.0.1")
    origin = dns.name.from_text("example.org.")
    now = int(time.time())
    rows: list[tuple[str, Callable[[int], object]]] = [
        ("no DO", lambda i: memo.serve(plain)),
        ("DO, cache hit", lambda i: memo.serve(signed)),
        ("DO, RRset cache hit", lambda i: plain_chain.serve(signed)),
        ("DO, cache miss", lambda i: memo.serve(misses[next(turn) % len(misses)])),
        ("sign one RRset", lambda i: key.sign_rrset(rrset, origin, now, now + 86400, 3600)),
    ]
    print(f"in process (the chain called directly; best of {rounds} rounds of {seconds} s, rows interleaved)")
    print(f"{'row':<24} {'per second':>12} {'us each':>9}")
    best: dict[str, float] = {}
    for _ in range(rounds):  # interleaved, so that a burst of other load hits every row alike
        for name, fn in rows:
            best[name] = max(best.get(name, 0.0), _rate(fn, seconds))
    for name, _fn in rows:
        print(f"{name:<24} {best[name]:>12,.0f} {1e6 / best[name]:>9.1f}", flush=True)


def _dnsperf(port: int, queryfile: Path, seconds: int, do: bool) -> tuple[float, float, str]:
    """dnsperf's queries per second, average latency and response codes (bench/_common's helper
    has no ``-D``)."""
    cmd = ["dnsperf", "-s", "127.0.0.1", "-p", str(port), "-d", str(queryfile), "-c", str(CLIENTS),
           "-q", str(OUTSTANDING), "-T", "1", "-l", str(seconds)]
    if do:
        cmd.append("-D")
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=seconds + 60)
    qps = _QPS.search(result.stdout)
    if result.returncode != 0 or qps is None:
        raise BenchError(f"dnsperf failed ({result.returncode}):\n{result.stdout}\n{result.stderr}")
    latency = _LATENCY.search(result.stdout)
    rcodes = _RCODES.search(result.stdout)
    return (float(qps.group(1)), float(latency.group(1)) if latency else 0.0,
            rcodes.group(1).strip() if rcodes else "")


def over_sockets(directory: str, seconds: int) -> None:
    print(f"\nover sockets (dnsperf -c {CLIENTS} -q {OUTSTANDING}, {seconds} s a row; -D where DO)")
    print(f"{'row':<24} {'qps':>9} {'latency ms':>11} {'server CPU':>11}  rcodes")
    for title, corefile, query, do in NETWORK_ROWS:
        queryfile = Path(directory, "queries")
        queryfile.write_text(query + "\n", encoding="utf-8")
        port = free_port()
        try:
            # The server runs in ``directory``: the key and zone files are found there.
            proc, _log = start_coredns(Path(directory), corefile, port, name="dnssec",
                                       probe_name=query.split()[0] + ".")
        except BenchError as exc:
            print(f"{title:<24} failed to start: {exc}")
            continue
        try:
            (qps, latency, rcodes), usage = ProcessUsage.measure(
                proc.pid, functools.partial(_dnsperf, port, queryfile, seconds, do)
            )
            print(f"{title:<24} {qps:>9,.0f} {latency * 1000:>11.2f} {usage.cpu_percent:>10.0f}%  {rcodes}",
                  flush=True)
        except BenchError as exc:
            print(f"{title:<24} {exc}")
        finally:
            stop_process(proc)


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("-s", "--seconds", type=float, default=1.0,
                        help="seconds per in-process row, each round")
    parser.add_argument("-r", "--rounds", type=int, default=3, help="in-process rounds (the best is shown)")
    parser.add_argument("-n", "--net-seconds", type=int, default=5,
                        help="seconds per dnsperf row (0: no socket rows)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as directory:
        _write_files(directory)
        in_process(directory, args.seconds, args.rounds)
        if args.net_seconds > 0:
            over_sockets(directory, args.net_seconds)


if __name__ == "__main__":
    main()
