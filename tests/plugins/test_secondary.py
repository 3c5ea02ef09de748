"""secondary against knotd as its primary: the first transfer, NOTIFY after ``knotc
zone-reload``, TSIG, a NOTIFY from a stranger, an expired zone; against a primary written here
(Twisted, over TCP) that misbehaves on cue: a transfer cut off half-way, a lower serial, a NOTIFY
from an address that is no primary; a primary that is not there; and CoreDNS's setup rows."""

from __future__ import annotations

import socket
import struct
import unittest
from collections.abc import Callable
from pathlib import Path
from typing import Any

import dns.exception
import dns.flags
import dns.message
import dns.opcode
import dns.query
import dns.rcode
import dns.rdatatype
import dns.rrset
import dns.zone
import pytest
from twisted.internet import reactor as _reactor
from twisted.internet.defer import inlineCallbacks
from twisted.internet.protocol import Factory, Protocol
from twisted.internet.threads import deferToThread
from twisted.logger import formatEvent, globalLogPublisher
from twisted.trial import unittest as trial

from twisted_coredns.testing import InProcessServer, SubprocessServer, free_port, until, wait_for
from twisted_coredns.testing.knot import KnotServer, KnotZone
from twisted_coredns.testing.setup import check_setup_rows, load_setup_rows

from .xfr_support import KEY_NAME, KEY_SECRET, XFR, needs_knot, zone_with


def _www(server: SubprocessServer) -> str:
    reply = server.query("www.example.org.", "A")
    return reply.answer[0].to_text() if reply.answer else dns.rcode.to_text(reply.rcode())


@needs_knot
@pytest.mark.parametrize("signed", [False, True], ids=["plain", "tsig"])
def test_transfers_from_knotd_and_follows_its_notify(signed: bool) -> None:
    port = free_port()
    key = (KEY_NAME, KEY_SECRET) if signed else None
    knot = KnotServer([KnotZone("example.org.", text=zone_with(1), notify=[f"127.0.0.1@{port}"])], key=key)
    knot.start()
    tsig = f"    tsig {{\n        secret {KEY_NAME} {KEY_SECRET}\n    }}\n" if signed else ""
    primary = f"127.0.0.1:{knot.port}"
    corefile = f"example.org {{\n{tsig}    secondary {{\n        transfer from {primary}\n    }}\n}}\n"
    server = SubprocessServer(corefile, port=port).start()
    try:
        wait_for(lambda: "192.0.2.1" in _www(server), 15, "the first transfer")
        knot.write_zone("example.org.", zone_with(2, www="192.0.2.2"))
        knot.knotc("zone-reload", "example.org.")
        wait_for(lambda: "192.0.2.2" in _www(server), 15, "the transfer after knotd's NOTIFY")
        log = server.log()
        assert f"plugin/secondary: Transferred: example.org. from 127.0.0.1:{knot.port}" in log
        assert "plugin/secondary: Notify from 127.0.0.1 for example.org.: checking transfer" in log
    finally:
        server.stop()
        knot.stop()


@needs_knot
def test_expires_when_the_primary_is_gone_and_drops_stranger_notify() -> None:
    zone = zone_with(1).replace(" 1 7200 3600 1209600 3600", " 1 1 1 3 3600")  # refresh 1, retry 1, expire 3
    knot = KnotServer([KnotZone("example.org.", text=zone)])
    knot.start()
    primaries = f"127.0.0.2:{knot.port} 127.0.0.1:{knot.port}"
    corefile = f"example.org {{\n    secondary {{\n        transfer from {primaries}\n    }}\n}}\n"
    server = SubprocessServer(corefile).start()
    try:
        wait_for(lambda: "192.0.2.1" in _www(server), 15, "the first transfer")
        # a NOTIFY from 127.0.0.3, no primary: dropped, no answer at all
        notify = dns.message.make_query("example.org.", "SOA")
        notify.set_opcode(dns.opcode.NOTIFY)
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.bind(("127.0.0.3", 0))
            s.settimeout(1)
            s.sendto(notify.to_wire(), ("127.0.0.1", server.port))
            with pytest.raises(TimeoutError):
                s.recvfrom(512)
        server.wait_for_log("Dropping notify from 127.0.0.3 for example.org.")
        knot.stop()
        wait_for(lambda: _www(server) == "SERVFAIL", 20, "the zone to expire")
        assert "Failed refresh check" in server.log() or "Failed retry check" in server.log()
    finally:
        server.stop()
        knot.stop()


def test_an_unreachable_primary_gives_servfail_and_retries_the_first_transfer() -> None:
    silent = free_port()
    block = f"    secondary {{\n        transfer from 127.0.0.1:{silent}\n    }}\n"
    server = SubprocessServer(f"example.org {{\n{block}}}\n")
    server.start()
    try:
        assert _www(server) == "SERVFAIL"
        server.wait_for_log("All 'example.org.' masters failed to transfer, retrying in 250ms")
    finally:
        server.stop()


# -- a primary that misbehaves on cue ---------------------------------------------------------------


class _Primary:
    """What the fake primary serves: the test zone at ``serial`` with ``www``'s address and 200
    more records; ``soa_serial`` (when set) is what it claims in SOA answers instead; with
    ``cut``, a transfer gets the first half of the zone and the connection is closed; with
    ``refuse_ixfr``, an IXFR gets NOTIMP. An IXFR is otherwise answered with the whole zone (an
    AXFR-style IXFR, as RFC 1995 allows)."""

    def __init__(self) -> None:
        self.serial = 1
        self.www = "192.0.2.1"
        self.soa_serial: int | None = None
        self.cut = False
        self.refuse_ixfr = False
        self.soa_checks = 0
        self.transfers = 0

    def rrsets(self, serial: int | None = None) -> list[dns.rrset.RRset]:
        text = zone_with(self.serial if serial is None else serial, www=self.www, extra=200)
        zone = dns.zone.from_text(text, origin="example.org.", relativize=False)
        out: list[dns.rrset.RRset] = []
        for name, rdataset in zone.iterate_rdatasets():
            rrset = dns.rrset.RRset(name, rdataset.rdclass, rdataset.rdtype)
            rrset.update(rdataset)
            out.append(rrset)
        soa = [r for r in out if r.rdtype == dns.rdatatype.SOA]
        return soa + [r for r in out if r.rdtype != dns.rdatatype.SOA]


class _PrimaryProtocol(Protocol):
    """DNS over TCP (two-octet length, then the message): SOA queries and AXFR/IXFR."""

    def __init__(self, primary: _Primary) -> None:
        self.primary = primary
        self.buffer = b""

    def dataReceived(self, data: bytes) -> None:
        self.buffer += data
        while len(self.buffer) >= 2:
            (length,) = struct.unpack("!H", self.buffer[:2])
            if len(self.buffer) < 2 + length:
                return
            wire, self.buffer = self.buffer[2 : 2 + length], self.buffer[2 + length :]
            self.answer(dns.message.from_wire(wire))

    def send(self, message: dns.message.Message) -> None:
        wire = message.to_wire(max_size=65535)
        self.transport.write(struct.pack("!H", len(wire)) + wire)

    def answer(self, query: dns.message.Message) -> None:
        primary = self.primary
        response = dns.message.make_response(query)
        response.flags |= dns.flags.AA
        rdtype = query.question[0].rdtype
        if rdtype == dns.rdatatype.SOA:
            primary.soa_checks += 1
            claimed = primary.soa_serial if primary.soa_serial is not None else primary.serial
            response.answer.append(primary.rrsets(claimed)[0])
            self.send(response)
            return
        primary.transfers += 1
        if rdtype == dns.rdatatype.IXFR and primary.refuse_ixfr:
            response.set_rcode(dns.rcode.NOTIMP)
            self.send(response)
            return
        rrsets = primary.rrsets()
        if primary.cut:
            # Half the zone and no closing SOA, then the primary hangs up.
            response.answer.extend(rrsets[: len(rrsets) // 2])
            self.send(response)
            self.transport.loseConnection()
            return
        response.answer.extend([*rrsets, rrsets[0]])
        self.send(response)


class MisbehavingPrimaryTests(trial.TestCase):
    """A secondary (in this process) following the primary above on 127.0.0.1."""

    @inlineCallbacks
    def setUp(self) -> Any:
        self.primary = _Primary()
        factory = Factory.forProtocol(lambda: _PrimaryProtocol(self.primary))
        listening = _reactor.listenTCP(0, factory, interface="127.0.0.1")
        self.addCleanup(listening.stopListening)
        self.primary_at = f"127.0.0.1:{listening.getHost().port}"
        self.lines: list[str] = []

        def observe(event: dict[str, Any]) -> None:
            text = formatEvent(event)
            if "plugin/secondary" in text or "secondary" in str(event.get("log_namespace", "")):
                self.lines.append(text)

        globalLogPublisher.addObserver(observe)
        self.addCleanup(globalLogPublisher.removeObserver, observe)
        self.server = InProcessServer(
            f"example.org {{\n    secondary {{\n        transfer from {self.primary_at}\n    }}\n}}\n")
        yield self.server.start()
        self.addCleanup(self.server.stop)
        yield until(self.www_is("192.0.2.1"), what="the first transfer")

    def www_is(self, address: str) -> Callable[[], Any]:
        def check() -> Any:
            return self.server.query("www.example.org.", "A").addCallback(
                lambda reply: bool(reply.answer) and reply.answer[0][0].address == address)
        return check

    @inlineCallbacks
    def serial(self) -> Any:
        reply = yield self.server.query("example.org.", "SOA")
        return reply.answer[0][0].serial

    def logged(self, text: str) -> Callable[[], bool]:
        return lambda: any(text in line for line in self.lines)

    def notify(self, source: str = "127.0.0.1", timeout: float = 3.0) -> Any:
        message = dns.message.make_query("example.org.", "SOA")
        message.set_opcode(dns.opcode.NOTIFY)
        message.flags |= dns.flags.AA
        return deferToThread(dns.query.udp, message, "127.0.0.1", port=self.server.port, timeout=timeout,
                             source=source)

    @inlineCallbacks
    def test_a_transfer_cut_off_half_way_keeps_the_old_zone(self) -> Any:
        self.primary.serial, self.primary.www, self.primary.cut = 2, "192.0.2.2", True
        answered = yield self.notify()
        self.assertEqual((answered.rcode(), bool(answered.flags & dns.flags.AA)), (dns.rcode.NOERROR, True))
        yield until(self.logged("Notify from 127.0.0.1 for example.org.: transfer failed"),
                     what="the failed transfer")
        self.assertTrue(self.logged(f"Failed to transfer `example.org.' from \"{self.primary_at}\"")())
        self.assertEqual(self.primary.transfers, 2)  # the first, good one, and the cut one
        still = yield self.www_is("192.0.2.1")()
        serial = yield self.serial()
        self.assertEqual((still, serial), (True, 1))
        # The primary mends: the next NOTIFY brings serial 2 in whole.
        self.primary.cut = False
        yield self.notify()
        yield until(self.www_is("192.0.2.2"), what="the transfer after the cut")
        serial = yield self.serial()
        self.assertEqual(serial, 2)
        host200 = yield self.server.query("host199.example.org.", "A")
        self.assertEqual(host200.answer[0][0].address, "10.0.0.199")  # the whole zone, not half

    @inlineCallbacks
    def test_a_lower_serial_is_ignored(self) -> Any:
        self.primary.serial, self.primary.www = 0, "192.0.2.3"  # 0 is before 1 (RFC 1982)
        yield self.notify()
        yield until(self.logged("Notify from 127.0.0.1 for example.org.: no SOA serial increase seen"),
                     what="the check")
        self.assertTrue(self.logged("Primary serial 0 for example.org. is lower than ours (1): ignored")())
        self.assertEqual(self.primary.transfers, 1)  # no transfer was asked for
        still = yield self.www_is("192.0.2.1")()
        self.assertTrue(still)

    @inlineCallbacks
    def test_a_transferred_zone_with_a_lower_serial_is_not_taken(self) -> Any:
        # The primary claims serial 5 in its SOA answer, but the zone it sends has serial 0.
        self.primary.serial, self.primary.soa_serial, self.primary.www = 0, 5, "192.0.2.3"
        # Asked for an IXFR from serial 1, it is dnspython that sees the serial go back.
        yield self.notify()
        yield until(self.logged("Notify from 127.0.0.1 for example.org.: transfer failed: "
                                 "The current serial number is less than the serial we know."),
                     what="the refused IXFR")
        # A primary that cannot do IXFR sends the whole zone (AXFR), which the secondary refuses.
        self.primary.refuse_ixfr = True
        yield self.notify()
        yield until(self.logged(f"Transferred example.org. from {self.primary_at} has serial 0, lower than "
                                 "the 1 served: ignored"), what="the AXFR with a lower serial")
        self.assertEqual(self.primary.transfers, 4)  # the first; one IXFR; one IXFR refused, one AXFR
        still = yield self.www_is("192.0.2.1")()
        serial = yield self.serial()
        self.assertEqual((still, serial), (True, 1))

    @inlineCallbacks
    def test_a_notify_from_elsewhere_is_dropped_and_starts_nothing(self) -> Any:
        self.primary.serial, self.primary.www = 2, "192.0.2.2"
        checks = self.primary.soa_checks
        # As CoreDNS: no reply at all to a NOTIFY from an address that is not a primary.
        with self.assertRaises(dns.exception.Timeout):
            yield self.notify(source="127.0.0.3", timeout=0.5)
        self.assertTrue(self.logged("Dropping notify from 127.0.0.3 for example.org.")())
        self.assertEqual(self.primary.soa_checks, checks)
        still = yield self.www_is("192.0.2.1")()
        self.assertTrue(still)
        # The same NOTIFY from the primary's address starts one check, and the transfer.
        yield self.notify()
        yield until(self.www_is("192.0.2.2"), what="the transfer after the primary's NOTIFY")
        self.assertEqual((self.primary.soa_checks, self.primary.transfers), (checks + 1, 2))


class SecondarySetupTests(unittest.TestCase):
    def test_coredns_setup_rows(self) -> None:
        rows = load_setup_rows(XFR / "setup_cases.json", "secondary", source_contains="coredns/coredns")
        assert check_setup_rows(self, rows) == len(rows)

    def test_readme_corefiles_start(self) -> None:
        for path in sorted(XFR.glob("secondary_*.corefile")):
            with self.subTest(corefile=path.name):
                SubprocessServer(path.read_text(encoding="utf-8")).start().stop()


def test_data_dir_exists() -> None:
    assert Path(XFR).is_dir()
