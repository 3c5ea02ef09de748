"""Time for a 10^5-record AXFR from our ``transfer`` (zone served by ``file``) to a knotd
secondary, and to dnspython's client; prints a table."""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

import dns.query

from twisted_coredns.testing import SubprocessServer, free_port
from twisted_coredns.testing.knot import KnotServer, KnotZone, knot_available

RECORDS = 100_000


def zone_text(serial: int) -> str:
    head = "$ORIGIN bench.example.\n$TTL 3600\n"
    head += f"@ IN SOA ns1 admin {serial} 7200 3600 1209600 3600\n@ IN NS ns1\n"
    return head + "ns1 IN A 127.0.0.1\n" + "".join(
        f"h{i} IN A 10.{i >> 16 & 255}.{i >> 8 & 255}.{i & 255}\n" for i in range(RECORDS - 3)
    )


def main() -> None:
    if not knot_available():
        sys.exit("knotd is not installed")
    with tempfile.TemporaryDirectory() as d:
        (Path(d) / "bench.zone").write_text(zone_text(1))
        port, knot_port = free_port(), free_port()
        corefile = f"bench.example {{\n file bench.zone\n transfer {{\n  to 127.0.0.1:{knot_port}\n }}\n}}\n"
        server = SubprocessServer(corefile, directory=d, port=port).start()
        rows = []
        try:
            start = time.perf_counter()
            messages = list(dns.query.xfr("127.0.0.1", "bench.example.", port=port, timeout=60, lifetime=120))
            rows.append(("dnspython client", time.perf_counter() - start, len(messages)))
            knot = KnotServer([KnotZone("bench.example.", primary=f"127.0.0.1@{port}")])
            knot.port = knot_port
            start = time.perf_counter()
            knot.start()
            while knot.serial("bench.example.") != 1:
                if time.perf_counter() - start > 120:
                    raise SystemExit("knotd did not finish the transfer")
                time.sleep(0.02)
            rows.append(("knotd secondary", time.perf_counter() - start, len(messages)))
            knot.stop()
        finally:
            server.stop()
    print(f"{'AXFR of ' + str(RECORDS) + ' records to':<28} {'seconds':>8} {'messages':>9}")
    for name, seconds, count in rows:
        print(f"{name:<28} {seconds:>8.2f} {count:>9}")


if __name__ == "__main__":
    main()
