"""dnspython set up for strangers' packets (``twisted_coredns/dns/dnspython.py``).

Found by the UDP fuzz test in CI: after a worker read a record of class ANY and type AAAA,
dnspython read IN AAAA records of any length in that process, so a query with a 4-octet AAAA
record went on to forward, and unbound's FORMERR echo of it came back to the client unreadable.
Each check runs in a fresh interpreter, as the table it guards is per process and this one's is
already filled.
"""

from __future__ import annotations

import struct
import subprocess
import sys
import textwrap

import dns.rcode
from twisted.trial.unittest import SynchronousTestCase

from twisted_coredns.testing import SubprocessServer, exchange_wire


def _query(name: bytes, *records: bytes, qtype: int = 1) -> bytes:
    header = struct.pack("!HHHHHH", 0x4242, 0x0100, 1, 0, 0, len(records))
    return header + name + struct.pack("!HH", qtype, 1) + b"".join(records)


def _record(rtype: int, rclass: int, rdata: bytes) -> bytes:
    return b"\x00" + struct.pack("!HHIH", rtype, rclass, 300, len(rdata)) + rdata


OPT = _record(41, 1232, b"")
NAME = b"\x07example\x03org\x00"
ANY_AAAA = _query(NAME, OPT, _record(28, 255, b"\x7f\x00\x00\x01"))
"""A query carrying an AAAA record of class ANY: dnspython reads it with its generic reader."""
SHORT_IN_AAAA = _query(NAME, OPT, _record(28, 1, b"\x7f\x00\x00\x01"))
"""A query carrying an IN AAAA record of 4 octets: malformed, a FORMERR."""


def _run(script: str) -> str:
    done = subprocess.run(
        [sys.executable, "-"],
        input=textwrap.dedent(script),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    if done.returncode:
        raise AssertionError(done.stderr)
    return done.stdout.strip()


class RdataTableTests(SynchronousTestCase):
    def test_a_record_of_class_any_does_not_change_how_in_records_read(self) -> None:
        out = _run(f"""
            import dns.exception
            from twisted_coredns.dns import parse_message
            parse_message({ANY_AAAA!r})
            try:
                parse_message({SHORT_IN_AAAA!r})
            except dns.exception.FormError as error:
                print("FormError", error)
            else:
                print("parsed")
        """)
        self.assertEqual(out, "FormError IPv6 addresses are 16 bytes long")

    def test_guards_a_table_filled_before_it(self) -> None:
        # A plugin's own dnspython call may come first: the entry it left is dropped.
        out = _run(f"""
            import dns.exception, dns.message
            from twisted_coredns.dns import parse_message
            dns.message.from_wire({ANY_AAAA!r})
            try:
                parse_message({SHORT_IN_AAAA!r})
            except dns.exception.FormError:
                print("FormError")
        """)
        self.assertEqual(out, "FormError")

    def test_records_of_any_class_do_not_grow_the_table(self) -> None:
        # AAAA exists for IN only, and type 65280 not at all: each class is a new pair.
        queries = [
            _query(NAME, _record(28, rclass, bytes(16)), _record(65280, rclass, b"x"))
            for rclass in range(2, 2002)
        ]
        out = _run(f"""
            import dns.rdata
            from twisted_coredns.dns import load_rdata_types, parse_message
            load_rdata_types()
            before = len(dns.rdata._rdata_classes)
            for wire in {queries!r}:
                parse_message(wire)
            print(len(dns.rdata._rdata_classes) - before)
        """)
        self.assertEqual(out, "0")


def _rcode(wire: bytes) -> int:
    return wire[3] & 0x0F


class ServerTests(SynchronousTestCase):
    def test_a_short_aaaa_record_is_formerr_after_one_of_class_any(self) -> None:
        """The same two packets, in that order, to a fresh server over UDP."""
        with SubprocessServer(". {\n    whoami\n}\n") as server:
            first = exchange_wire(server.port, ANY_AAAA)
            second = exchange_wire(server.port, SHORT_IN_AAAA)
        self.assertEqual(_rcode(first), dns.rcode.NOERROR)
        self.assertEqual(_rcode(second), dns.rcode.FORMERR)
