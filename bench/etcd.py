"""etcd-backed answers against the same records from ``hosts``, measured by dnsperf in one run.

    .venv/bin/python bench/etcd.py            # 10 s a row
    .venv/bin/python bench/etcd.py -l 5

Rows, each its own ``twisted-coredns`` child on a free 127.0.0.1 port, all asked the same 100 A
names (``hN.bench.test``) with ``dnsperf -c CLIENTS -q OUTSTANDING``:

- ``hosts``: the records in a hosts file (``hosts FILE bench.test``): the baseline;
- ``etcd``: the records in etcd (one local member, Debian's etcd), read on every query;
- ``etcd + cache 30``: the same, with ``cache 30`` in front;
- ``etcd, multisocket 2``: uncached, two worker processes on the port.

It also times etcd's own round trip (a linearizable range read over the JSON gateway, from a
plain blocking HTTP client, one at a time) so that the uncached latency can be read against it.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
import urllib.request
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

from twisted_coredns.plugins.etcd.service import path
from twisted_coredns.testing.etcd import EtcdCluster, etcd_missing

NAMES = 100


def _etcd_round_trip(endpoint: str, key: str, n: int = 500) -> float:
    """Median seconds of one range read of ``key`` (what an uncached A query asks of etcd, twice
    when the prefix read finds nothing and the exact key is read next)."""
    import base64

    body = json.dumps({"key": base64.b64encode(key.encode()).decode()}).encode()
    times = []
    for _ in range(n):
        started = time.perf_counter()
        request = urllib.request.Request(
            endpoint + "/v3/kv/range", body, {"Content-Type": "application/json"}
        )
        with urllib.request.urlopen(request, timeout=5) as reply:
            reply.read()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def _sequential_latency(port: int, n: int = 500) -> float:
    """Median seconds of one A query with nothing else in flight (UDP, a plain socket)."""
    import socket

    times = []
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(6)
        for i in range(n):
            label = f"h{i % NAMES}".encode()
            query = (i & 0xFFFF).to_bytes(2, "big") + b"\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00"
            query += bytes([len(label)]) + label + b"\x05bench\x04test\x00\x00\x01\x00\x01"
            started = time.perf_counter()
            sock.sendto(query, ("127.0.0.1", port))
            while sock.recv(4096)[:2] != query[:2]:
                pass
            times.append(time.perf_counter() - started)
    return statistics.median(times)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    add_dnsperf_options(parser)
    args = parser.parse_args(argv)
    if dnsperf_missing():
        return 2
    reason = etcd_missing()
    if reason is not None:
        print(reason, file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory(prefix="bench-etcd-") as tmp, EtcdCluster(1) as etcd:
        directory = Path(tmp)
        endpoint = etcd.endpoints[0]
        hosts = directory / "hosts"
        lines = []
        for i in range(NAMES):
            address = f"10.77.{i // 250}.{i % 250 + 1}"
            lines.append(f"{address} h{i}.bench.test")
            etcd.put(path(f"h{i}.bench.test.", "skydns"), {"host": address, "ttl": 300})
        hosts.write_text("\n".join(lines) + "\n", encoding="utf-8")
        queryfile = directory / "queries"
        queryfile.write_text("".join(f"h{i}.bench.test A\n" for i in range(NAMES)), encoding="utf-8")
        etcd_block = f"    etcd {{\n        endpoint {endpoint}\n    }}\n"
        rows = [
            ("hosts", f"bench.test {{\n    hosts {hosts} bench.test\n}}\n"),
            ("etcd", f"bench.test {{\n{etcd_block}}}\n"),
            ("etcd + cache 30", f"bench.test {{\n    cache 30\n{etcd_block}}}\n"),
            ("etcd, multisocket 2", f"bench.test {{\n    multisocket 2\n{etcd_block}}}\n"),
        ]
        results = {}
        latencies: dict[str, float] = {}
        for name, corefile in rows:
            port = free_port()
            try:
                proc, _log = start_coredns(
                    directory,
                    corefile,
                    port,
                    name=name.replace(" ", "").replace("+", "_"),
                    probe_name="h0.bench.test.",
                    ready=READY,
                )
            except BenchError as exc:
                print(f"{name}: {exc}", file=sys.stderr)
                return 1
            try:
                dnsperf(
                    port, queryfile, seconds=1, clients=args.clients, outstanding=args.outstanding
                )  # warm
                results[name] = dnsperf(
                    port, queryfile, seconds=args.seconds, clients=args.clients, outstanding=args.outstanding
                )
                latencies[name] = _sequential_latency(port)
            finally:
                stop_process(proc)
        round_trip = _etcd_round_trip(endpoint, path("h0.bench.test.", "skydns") + "/")
    base = results["hosts"].qps
    print(
        f"{'row':<24}{'qps':>10}{'x hosts':>10}{'avg ms':>16}{'1-at-a-time ms':>16}{'lost':>7}  rcodes"
    )
    for name, r in results.items():
        print(
            f"{name:<24}{r.qps:>10.0f}{r.qps / base:>10.2f}{r.avg_latency_s * 1000:>16.3f}"
            f"{latencies[name] * 1000:>16.3f}{r.lost:>7}  {r.rcodes}"
        )
    print(
        f"etcd's own round trip (one range read, urllib, median): {round_trip * 1000:.3f} ms; an uncached A "
        "query makes two (the prefix read, then the exact key)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
