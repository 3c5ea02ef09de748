"""20,000 fuzzed packets against a running server, over UDP and TCP, in well under a minute.

Each hypothesis example is a batch of ``BATCH`` packets (``packets.batches``): sent at once,
followed by a normal query; every reply is checked against its packet (``checks.check_reply``),
and then the server itself: both workers still the same processes, no traceback, no crashed
chain, no dead worker in its log. The examples are derandomized, so a run in CI never meets a
packet no earlier run met; ``bench/fuzz.py`` is the long run with fresh seeds.
"""

from __future__ import annotations

import os
import signal
import struct
import time

from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from twisted.trial.unittest import SkipTest, SynchronousTestCase

from twisted_coredns.testing.unbound import unbound_missing

from .packets import NAME_255, NAME_256, batches, name_wire
from .target import Finding, FuzzTarget

BATCH = 50
UDP_PACKETS = 12_000
TCP_PACKETS = 8_000

FUZZ = settings(
    derandomize=True,
    database=None,
    deadline=None,
    # No shrinking: the server keeps state between batches (cache entries, upstream connections),
    # so replaying hundreds of smaller batches reports a flake, not the batch that failed.
    phases=[Phase.explicit, Phase.generate],
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.large_base_example],
)


def _query(name: bytes, qtype: int = 1, flags: int = 0x0100, tail: bytes = b"") -> bytes:
    header = struct.pack("!HHHHHH", 0, flags, 1, 0, 0, 1 if tail else 0)
    return header + name + struct.pack("!HH", qtype, 1) + tail


def _opt(rdata: bytes = b"", size: int = 1232, ext: int = 0) -> bytes:
    return b"\x00\x00\x29" + struct.pack("!HBBHH", size, ext, 0, 0, len(rdata)) + rdata


FWD = name_wire([b"a", b"fwd", b"test"])
WHOAMI = name_wire([b"whoami", b"example"])


def _with_aaaa(rclass: int) -> bytes:
    """A query for a.fwd.test with an OPT record and a 4-octet AAAA record of class ``rclass``."""
    header = struct.pack("!HHHHHH", 0, 0x0100, 1, 0, 0, 2)
    aaaa = WHOAMI + struct.pack("!HHIH", 28, rclass, 300, 4) + b"\x7f\x00\x00\x01"
    return header + FWD + b"\x00\x01\x00\x01" + _opt() + aaaa


FOUND = [
    # One AAAA record of class ANY, read by dnspython's generic reader, made dnspython read every
    # later IN AAAA record in that worker as generic too: a 4-octet one passed, went to unbound,
    # and its FORMERR echo reached the client unreadable (twisted_coredns/dns/dnspython.py).
    _with_aaaa(255),
    _with_aaaa(1),
    # whoami's _udp.<name> SRV owner, for a 255-octet name, was a 260-octet name.
    _query(name_wire(NAME_255)),
    _query(name_wire(NAME_255), tail=_opt()),
    _query(name_wire(NAME_256)),
    # A 600-octet COOKIE echoed in the OPT record made a 621-octet reply to a 511-octet client.
    _query(WHOAMI, 16, tail=_opt(b"\x00\x0a\x02\x52" + bytes(594), size=511)),
    _query(WHOAMI, 16, tail=_opt(b"\x00\x0c\x05\xdc" + bytes(1500))),  # 1,500 octets of PADDING
    # Queries with TC set are echoed whole by unbound as FORMERR: what our server forwarded came
    # back to the client. A malformed OPT option, a record whose name does not parse, an extended
    # rcode, trailing octets: each made a reply dnspython could not read, or an rcode of 4081.
    _query(FWD, flags=0x0300, tail=_opt(b"\xff\xff")),
    _query(FWD, flags=0x0300, tail=_opt(b"\x00\x0a\x00\x05abcde")),
    _query(FWD, flags=0x0300, tail=_opt(b"\x00\x08\x00\x04\x00\x09\x00\x00")),
    _query(FWD, flags=0x0300, tail=_opt(ext=255)),
    _query(FWD, flags=0x0300) + b"junk",
    _query(FWD, flags=0x0300, tail=_opt()) + b"\x00",
    # ... and an additional record owned by a pointer at a label of an unknown type.
    struct.pack("!HHHHHH", 0, 0x0300, 1, 0, 0, 1) + FWD + b"\x00\x01\x00\x01"
    + b"\xc0\x28" + struct.pack("!HHIH", 65280, 1, 0, 1) + b"\x5c",
]
"""Packets the fuzzer found, sent first in both tests."""


def _report(findings: list[Finding], problems: list[str]) -> str:
    return "\n".join([*map(str, findings[:10]), *problems[:10]])


class _TargetTestCase(SynchronousTestCase):
    """A test with its own ``FuzzTarget``."""

    def setUp(self) -> None:
        reason = unbound_missing()
        if reason is not None:
            raise SkipTest(reason)
        self.target = FuzzTarget().start()
        self.addCleanup(self.target.stop)


class ServerFuzzTests(_TargetTestCase):
    def check(self, findings: list[Finding]) -> None:
        problems = self.target.health()
        if findings or problems:
            self.fail(_report(findings, problems))

    def test_udp(self) -> None:
        target = self.target
        self.check(target.udp(FOUND))

        @settings(FUZZ, max_examples=UDP_PACKETS // BATCH)
        @given(batch=batches(BATCH))
        def fuzz(batch: list[bytes]) -> None:
            self.check(target.udp(batch))

        fuzz()
        self.assertGreaterEqual(target.stats.sent["udp"], UDP_PACKETS)

    def test_tcp(self) -> None:
        target = self.target
        self.check(target.tcp(FOUND))

        @settings(FUZZ, max_examples=TCP_PACKETS // BATCH)
        @given(batch=batches(BATCH), tail=st.binary(max_size=13))
        def fuzz(batch: list[bytes], tail: bytes) -> None:
            # The tail: garbage after the last query (a length with too few octets after it);
            # at most 13 octets, too few for a query, so it never gets a reply.
            self.check(target.tcp(batch, tail))

        fuzz()
        self.assertGreaterEqual(target.stats.sent["tcp"], TCP_PACKETS)


class HarnessTests(_TargetTestCase):
    """The health check bites (``test_checks.py`` shows the reply checks do)."""

    def test_a_killed_worker_is_noticed(self) -> None:
        self.assertEqual(self.target.health(), [])
        victim = max(self.target.processes())
        os.kill(victim, signal.SIGKILL)
        deadline = time.monotonic() + 10
        problems: list[str] = []
        while time.monotonic() < deadline and not any("log:" in p for p in problems):
            problems += self.target.health()
            time.sleep(0.05)
        self.assertTrue(any("worker processes changed" in p for p in problems), problems)
        self.assertTrue(any("was killed" in p for p in problems), problems)
