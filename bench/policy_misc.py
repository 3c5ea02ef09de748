"""What the per-query policy plugins of set C cost: ``X + whoami`` beside ``whoami`` alone, in one
run, measured by dnsperf.

    .venv/bin/python bench/policy_misc.py                  # 5 s a row, 3 rounds
    .venv/bin/python bench/policy_misc.py -l 4 -r 3 --only whoami,loadbalance

Each row starts ``twisted-coredns`` with ``. { X; whoami }`` on a free port on 127.0.0.1, waits
until it answers, and runs dnsperf with A queries for 1,000 names. The rows:

- ``loadbalance``: round robin on whoami's additional section (A and SRV: the SRV record goes
  first, as CoreDNS's round robin puts the other types before the addresses), on the wire;
- ``loadbalance prefer``: the same with a preferred subnet, which puts the address back first:
  the new order is the old one, and the reply goes out as it came;
- ``dns64``: an A query, which dns64 passes on untouched (it only works on AAAA);
- ``geoip``: a City database without the client's network; geoip is a metadata provider, and
  its look-up runs only when the metadata plugin collects and something reads ``geoip/...``
  values, so here the query only passes through it;
- ``trace every 0``: CoreDNS samples no query at all with ``every 0``, so no span is made or
  exported; what is left is trace's step into each plugin after it;
- ``shed``: counts the UDP queries in flight against its bound.

The rows run ``--rounds`` rounds, interleaved and each round starting at another row (a slow
spell of the machine hits every row, not one), and each row shows its median round. ``CPU µs/q``
is the server's CPU time per answered query (from /proc), steadier than queries per second when
other work shares the machine. The target of issue 12: each plugin costs at most 15% of whoami's
queries per second (ratio >= 0.85).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
from pathlib import Path

from _common import add_dnsperf_options, dnsperf_missing, measure_corefile

ROWS = {
    "whoami": "",
    "loadbalance": "    loadbalance\n",
    "loadbalance prefer": "    loadbalance {\n        prefer 127.0.0.0/8\n    }\n",
    "dns64": "    dns64 64:ff9b::/96\n",
    "geoip": "    geoip {directory}/city.mmdb\n",
    "trace every 0": "    trace zipkin 127.0.0.1:9 {\n        every 0\n    }\n",
    "shed": "    shed\n",
}


def _city_database(path: Path) -> None:
    """A GeoLite2-City database whose one network (TEST-NET-2) holds no loopback address."""
    from mmdb_writer import MMDBWriter
    from netaddr import IPSet

    writer = MMDBWriter(ip_version=6, database_type="GeoLite2-City", ipv4_compatible=True)
    writer.insert_network(IPSet(["198.51.100.0/24"]), {
        "city": {"names": {"en": "Exampleshire"}},
        "country": {"iso_code": "DE", "is_in_european_union": True},
    })
    writer.to_db_file(str(path))


def _measure(directory: Path, queryfile: Path, label: str, index: int,
             args: argparse.Namespace) -> tuple[float, int, float]:
    corefile = ". {\n" + ROWS[label].replace("{directory}", str(directory)) + "    whoami\n}\n"
    return measure_corefile(directory, corefile, queryfile, args, label=label, name=f"row{index}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    add_dnsperf_options(parser, seconds=5)
    parser.add_argument("-r", "--rounds", type=int, default=3, help="rounds; each row shows its median")
    parser.add_argument("--only", default=",".join(ROWS), help="comma-separated rows (default all)")
    args = parser.parse_args(argv)
    if dnsperf_missing():
        return 2
    labels = [name for name in args.only.split(",") if name in ROWS]
    if "whoami" not in labels:
        labels.insert(0, "whoami")  # every ratio is to whoami measured in the same run
    runs: dict[str, list[tuple[float, int, float]]] = {label: [] for label in labels}
    with tempfile.TemporaryDirectory(prefix="bench-policy-") as tmp:
        directory = Path(tmp)
        queryfile = directory / "queries"
        queryfile.write_text("".join(f"host{i}.example.org A\n" for i in range(1000)))
        if "geoip" in labels:
            _city_database(directory / "city.mmdb")
        for round_ in range(args.rounds):
            # Each round starts at another row, so that no row is always the one measured first.
            shift = round_ % len(labels)
            for label in labels[shift:] + labels[:shift]:
                index = labels.index(label)
                qps, lost, cpu_us = _measure(directory, queryfile, label, index, args)
                runs[label].append((qps, lost, cpu_us))
                print(f"round {round_ + 1} {label}: {qps:,.0f} qps, {cpu_us:.1f} CPU µs/query",
                      file=sys.stderr, flush=True)
    medians = {label: (statistics.median(r[0] for r in rows), max(r[1] for r in rows),
                       statistics.median(r[2] for r in rows)) for label, rows in runs.items()}
    base, _lost, base_cpu = medians["whoami"]
    print(f"\ndnsperf -l {args.seconds} -c {args.clients} -q {args.outstanding}, "
          f"median of {args.rounds} round(s)")
    print(f"{'row':<28}  {'queries/s':>10}  {'lost':>5}  {'of whoami':>9}  {'CPU µs/q':>8}  "
          f"{'CPU cost':>8}  {'target':>6}")
    for label, (qps, lost, cpu_us) in medians.items():
        ratio = qps / base if base else 0.0
        cpu_cost = cpu_us / base_cpu - 1 if base_cpu else 0.0
        name = label if label == "whoami" else f"{label} + whoami"
        verdict = "" if label == "whoami" else ("met" if ratio >= 0.85 else "missed")
        print(f"{name:<28}  {qps:>10,.0f}  {lost:>5}  {ratio:>9.2f}  {cpu_us:>8.1f}  "
              f"{cpu_cost:>8.0%}  {verdict:>6}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
