"""A flood of unique names through ``cache`` and ``forward`` to unbound: what grows, and what stops.

    .venv/bin/python bench/flood.py                       # 500,000 names, a row every 100,000
    .venv/bin/python bench/flood.py -n 100000 -s 20000
    .venv/bin/python bench/flood.py -n 100000 -s 20000 --random-types   # any type number

The server runs in this process (so its tables can be counted, not only its RSS), on the
Corefile ``. { prometheus 127.0.0.1:0; cache; forward . 127.0.0.1:UNBOUND }``; unbound answers
every name under ``flood.`` with an A record and every name under ``nxdom.`` NXDOMAIN with an SOA
(both cacheable). dnsperf sends each batch of names once, 100 outstanding. The names have labels of
1 to 40 characters, so request and response sizes vary as a real flood's do. After each batch
the table gets a row: RSS, the cache's two tables, queries still waiting on the chain or on an
upstream, upstream sockets, probes running, query-metric slots and the label sets /metrics would
show. At the end, what the cache's capacity implies for memory: its entries' mean size (the
entry, its bytes, its key, its slot in the table) times the capacity, against the RSS growth.
"""

from __future__ import annotations

import argparse
import gc
import os
import random
import subprocess
import sys
import tempfile
import threading
from pathlib import Path
from typing import Any

import _common
from twisted.internet import reactor
from twisted.internet.threads import blockingCallFromThread

from twisted_coredns.metrics import REGISTRY
from twisted_coredns.metrics import queries as query_metrics
from twisted_coredns.testing import InProcessServer
from twisted_coredns.testing.unbound import UnboundServer, unbound_missing

NXDOMAIN_SOA = "nxdom. 300 IN SOA ns.nxdom. host.nxdom. 1 3600 600 86400 60"


def rss_kb() -> int:
    """This process's RSS (the server runs in it)."""
    return _common.rss_kb(os.getpid(), tree=False)


def write_names(path: Path, start: int, count: int, rng: random.Random, random_types: bool) -> None:
    """``count`` unique names, half under ``flood.`` and half under ``nxdom.``, for dnsperf; type A,
    or (``random_types``) any type number."""
    letters = "abcdefghijklmnopqrstuvwxyz"
    with open(path, "w", encoding="ascii") as out:
        for i in range(start, start + count):
            pad = "".join(rng.choices(letters, k=rng.randint(0, 32)))
            zone = "flood" if i % 2 else "nxdom"
            rtype = f"TYPE{rng.randint(1, 65535)}" if random_types else "A"
            out.write(f"{pad}n{i}.{zone}. {rtype}\n")


def dnsperf_once(port: int, path: Path) -> tuple[int, int]:
    """Send every name in ``path`` once; (sent, completed)."""
    out = subprocess.run(
        ["dnsperf", "-s", "127.0.0.1", "-p", str(port), "-d", str(path), "-n", "1", "-c", "4", "-q", "100",
         "-t", "5"],
        capture_output=True, text=True, check=False,
    ).stdout

    def number(label: str) -> int:
        for line in out.splitlines():
            if line.strip().startswith(label):
                return int(line.split(":", 1)[1].split()[0])
        return 0

    return number("Queries sent"), number("Queries completed")


class Probe:
    """What the server holds, read in the reactor thread."""

    def __init__(self, server: InProcessServer) -> None:
        self.server = server
        handlers = server.instance.blocks[0].handlers
        self.cache = next(h for h in handlers if h.name == "cache")
        self.forward = next(h for h in handlers if h.name == "forward")

    def sample(self) -> dict[str, Any]:
        proxies = self.forward.proxies
        # Private tables, read by a measurement: the forward plugin has no public count of them.
        conns = [c for p in proxies for kind in p._conns.values() for c in kind]
        label_sets = set()
        for family in REGISTRY.collect():
            if family.name.startswith("coredns_dns_"):
                for sample in family.samples:
                    labels = tuple(sorted((k, v) for k, v in sample.labels.items() if k != "le"))
                    label_sets.add((family.name, labels))
        return {
            "rss_kb": rss_kb(),
            "success": len(self.cache.pcache),
            "denial": len(self.cache.ncache),
            "chain_pending": sum(s.router.pending for s in self.server.service.servers),
            "upstream_pending": sum(c.inflight for c in conns),
            "upstream_sockets": len(conns),
            "probes": sum(1 for p in proxies if p.probe.active),
            "metric_slots": len(query_metrics._slots),
            "label_sets": len(label_sets),
        }

    def entry_bytes(self) -> float:
        """Mean bytes of one cached reply: entry, body, TTL offsets, key and name, table slot."""
        total = count = 0
        for table in (self.cache.pcache, self.cache.ncache):
            for key, entry in list(table.items.items())[:2000]:
                total += (sys.getsizeof(entry) + sys.getsizeof(entry.body) + sys.getsizeof(entry.offsets)
                          + sys.getsizeof(key) + sys.getsizeof(key[0]) + 3 * 8 * 3 // 2)
                count += 1
        return total / max(count, 1)


def drive(server: InProcessServer, names: int, step: int, random_types: bool, directory: Path,
          rows: list[dict[str, Any]], summary: dict[str, Any]) -> None:
    probe = Probe(server)
    rng = random.Random(53)
    gc.collect()
    rows.append({"names": 0, "sent": 0, "answered": 0, **blockingCallFromThread(reactor, probe.sample)})
    print(format_row(rows[-1]), flush=True)
    sent_total = answered_total = 0
    for start in range(0, names, step):
        path = directory / "names.txt"
        write_names(path, start, min(step, names - start), rng, random_types)
        sent, answered = dnsperf_once(server.port, path)
        sent_total += sent
        answered_total += answered
        row = {"names": start + min(step, names - start), "sent": sent_total, "answered": answered_total}
        rows.append({**row, **blockingCallFromThread(reactor, probe.sample)})
        print(format_row(rows[-1]), flush=True)
    summary["entry_bytes"] = blockingCallFromThread(reactor, probe.entry_bytes)
    summary["capacity"] = probe.cache.pcache.size + probe.cache.ncache.size


COLUMNS = [
    ("names", "names"), ("sent", "sent"), ("answered", "answered"), ("rss_kb", "RSS kB"),
    ("success", "success"), ("denial", "denial"), ("chain_pending", "chain pending"),
    ("upstream_pending", "upstream pending"), ("upstream_sockets", "upstream sockets"),
    ("probes", "probes"), ("metric_slots", "metric slots"), ("label_sets", "label sets"),
]


def format_row(row: dict[str, Any]) -> str:
    return "| " + " | ".join(f"{row[key]:,}" for key, _ in COLUMNS) + " |"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("-n", "--names", type=int, default=500_000, help="unique names (default 500000)")
    parser.add_argument("-s", "--step", type=int, default=100_000, help="names per row (default 100000)")
    parser.add_argument("--random-types", action="store_true",
                        help="ask for a random type number with each name, not A")
    args = parser.parse_args(argv)
    if _common.dnsperf_missing():
        return 2
    if unbound_missing():
        print(unbound_missing(), file=sys.stderr)
        return 2
    upstream = UnboundServer(["flood. 300 IN A 127.0.0.9", NXDOMAIN_SOA],
                             zones=["flood. redirect", "nxdom. static"]).start()
    rows: list[dict[str, Any]] = []
    summary: dict[str, Any] = {}
    failure: list[BaseException] = []
    try:
        corefile = f". {{\n prometheus 127.0.0.1:0\n cache\n forward . 127.0.0.1:{upstream.port}\n}}\n"
        server = InProcessServer(corefile)
        with tempfile.TemporaryDirectory(prefix="flood-") as tmp:

            def run() -> None:
                try:
                    drive(server, args.names, args.step, args.random_types, Path(tmp), rows, summary)
                except BaseException as exc:  # reported after the reactor stops
                    failure.append(exc)
                finally:
                    blockingCallFromThread(reactor, server.stop)
                    reactor.callFromThread(reactor.stop)  # type: ignore[attr-defined]

            def started(_: Any) -> None:
                threading.Thread(target=run, daemon=True).start()

            print("| " + " | ".join(title for _, title in COLUMNS) + " |")
            print("|" + "---:|" * len(COLUMNS))
            reactor.callWhenRunning(lambda: server.start().addCallback(started))  # type: ignore[attr-defined]
            reactor.run()  # type: ignore[attr-defined]
    finally:
        upstream.stop()
    if failure:
        raise failure[0]
    base, last = rows[0]["rss_kb"], rows[-1]["rss_kb"]
    implied_kb = summary["capacity"] * summary["entry_bytes"] / 1024
    print(
        f"\ncache capacity {summary['capacity']:,} entries x {summary['entry_bytes']:.0f} bytes "
        f"= {implied_kb:,.0f} kB; RSS {base:,} kB at the start, {last:,} kB at the end "
        f"(+{last - base:,} kB); the cap the capacity implies, start + 2 x cache: "
        f"{base + 2 * implied_kb:,.0f} kB: {'under' if last <= base + 2 * implied_kb else 'OVER'}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
