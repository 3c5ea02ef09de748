"""The long fuzz run, by hand: a million structure-aware packets against a running server.

    .venv/bin/python bench/fuzz.py                          # 10^6 packets, a fresh seed
    .venv/bin/python bench/fuzz.py --packets 50000 --seed 7  # repeat a run
    .venv/bin/python bench/fuzz.py --findings bad.txt        # every bad reply, in full

The CI suite (``tests/fuzz/``) sends 20,000 derandomized packets; this sends as many as asked,
from fresh seeds, through the same pieces: ``tests/fuzz/packets.py`` makes the packets (valid
queries, then mutations), ``target.py`` runs unbound and ``twisted-coredns`` with ``multisocket 2``
and sends batches over UDP and TCP, ``checks.py`` judges every reply. After each batch the server
must answer a normal query, keep its worker processes and log no traceback.

Hypothesis draws the packets in rounds of ``--round`` batches, each round a fresh engine with its
own seed (one engine for a million packets would keep every choice it made); the round seeds come
from ``--seed``, so a run can be repeated. The table at the end says what was sent, what came back,
how fast, and what the server's memory did; the exit status is 1 if any reply was bad or the
server itself was not well. Ctrl-C ends the run early with the table (the terminal's SIGINT also
reaches the servers, so the batch in flight may count what their stopping did).
"""

from __future__ import annotations

import argparse
import random
import signal
import sys
import time
from pathlib import Path
from typing import TextIO

from hypothesis import HealthCheck, Phase, given, seed, settings
from hypothesis import strategies as st

from tests.fuzz.packets import batches
from tests.fuzz.target import Finding, FuzzTarget
from twisted_coredns.testing.unbound import unbound_missing

SHOWN = 20
"""Bad replies printed as they are found; ``--findings`` keeps them all."""


class Run:
    """What a run has seen so far."""

    def __init__(self, target: FuzzTarget, findings: TextIO | None, tcp_share: float) -> None:
        self.target = target
        self.tcp_share = tcp_share
        self.findings = findings
        self.problems = 0
        self.shown = 0
        self.stopping = False
        """Set by Ctrl-C: the batches left in the round are skipped, and the table printed."""
        self.started = time.monotonic()
        self.rss_before = target.rss_kb()

    def fuzz(self, round_seed: int, examples: int, size: int) -> None:
        """One round: ``examples`` batches of ``size`` packets from a hypothesis engine of its own."""
        # Which batches go over TCP: the seed's choice, not hypothesis's (whose numbers lean to the
        # ends of their range).
        transport = random.Random(round_seed)

        @seed(round_seed)
        @settings(max_examples=examples, database=None, deadline=None, phases=[Phase.generate],
                  suppress_health_check=list(HealthCheck))
        @given(packets=batches(size), tail=st.binary(max_size=13))
        def fuzz(packets: list[bytes], tail: bytes) -> None:
            if not self.stopping:
                self.batch(packets, transport.random() < self.tcp_share, tail)

        fuzz()

    def batch(self, packets: list[bytes], tcp: bool, tail: bytes) -> None:
        found: list[Finding | str] = [*(self.target.tcp(packets, tail) if tcp else self.target.udp(packets))]
        problems = self.target.health()
        self.problems += len(problems)
        found += problems
        for item in found:
            if self.shown < SHOWN:
                print(f"BAD {item}", file=sys.stderr, flush=True)
                self.shown += 1
            if self.findings is not None:
                self.findings.write(f"{item}\n")

    @property
    def sent(self) -> int:
        return sum(self.target.stats.sent.values())

    def table(self, seed_value: int, batch: int, tcp_share: float) -> str:
        stats = self.target.stats
        seconds = time.monotonic() - self.started
        rows = [
            ("packets sent", f"{self.sent:,} (UDP {stats.sent['udp']:,}, TCP {stats.sent['tcp']:,})"),
            ("replies", f"{stats.replies:,}"),
            ("no reply (expected: short, or QR set)", f"{stats.silent:,}"),
            ("bad replies (must be 0)", f"{stats.bad:,}"),
            ("server problems (must be 0)", f"{self.problems:,}"),
            ("worker restarts", f"{stats.restarts:,}"),
            ("time", f"{seconds:,.0f} s"),
            ("packets/s", f"{self.sent / max(seconds, 1e-9):,.0f}"),
            ("server RSS before / after",
             f"{self.rss_before / 1024:,.1f} MiB / {self.target.rss_kb() / 1024:,.1f} MiB"),
        ]
        width = max(len(name) for name, _ in rows)
        values = max(len(value) for _, value in rows)
        head = (f"bench/fuzz.py --packets {self.sent:,} --seed {seed_value}: batches of {batch}, "
                f"{tcp_share:.0%} of them over TCP; twisted-coredns with multisocket 2, forward to unbound")
        rule = f"|{'-' * (width + 2)}|{'-' * (values + 2)}|"
        lines = [head, "", f"| {'':<{width}} | {'':<{values}} |", rule]
        lines += [f"| {name:<{width}} | {value:<{values}} |" for name, value in rows]
        return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--packets", type=int, default=1_000_000, help="how many to send (default 10^6)")
    parser.add_argument("--seed", type=int, default=None, help="repeat a run (default: a fresh seed)")
    parser.add_argument("--batch", type=int, default=50, help="packets sent before each check (default 50)")
    parser.add_argument("--tcp", type=float, default=0.3, help="share of batches sent over TCP (default 0.3)")
    parser.add_argument("--round", type=int, default=100, help="batches per hypothesis engine (default 100)")
    parser.add_argument("--findings", type=Path, default=None, help="write every bad reply here")
    args = parser.parse_args(argv)
    reason = unbound_missing()
    if reason is not None:
        print(reason, file=sys.stderr)
        return 2
    seed_value = args.seed if args.seed is not None else random.SystemRandom().getrandbits(32)
    seeds = random.Random(seed_value)
    findings = args.findings.open("w", encoding="utf-8") if args.findings else None
    target = FuzzTarget().start()
    run = Run(target, findings, args.tcp)
    report_every = max(args.packets // 20, args.batch)
    next_report = report_every
    # A KeyboardInterrupt may land in hypothesis's own callbacks, which swallow it: stop cleanly.
    signal.signal(signal.SIGINT, lambda _signum, _frame: setattr(run, "stopping", True))
    try:
        while run.sent < args.packets and not run.stopping:
            batches_left = -(-(args.packets - run.sent) // args.batch)
            run.fuzz(seeds.getrandbits(64), min(args.round, batches_left), args.batch)
            if run.sent >= next_report:
                rate = run.sent / (time.monotonic() - run.started)
                print(f"{run.sent:,} packets, {target.stats.bad} bad, {rate:,.0f}/s", file=sys.stderr,
                      flush=True)
                next_report += report_every
    finally:
        print(run.table(seed_value, args.batch, args.tcp))
        target.stop()
        if findings is not None:
            findings.close()
    return 1 if target.stats.bad or run.problems else 0


if __name__ == "__main__":
    sys.exit(main())
