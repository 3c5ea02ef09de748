"""whoami against a real server: the client's address, port and transport come back."""

from __future__ import annotations

import errno
import socket
import struct
from typing import Any

import dns.flags
import dns.message
import dns.query
import dns.rdataclass
import dns.rdatatype
from twisted.internet.defer import inlineCallbacks
from twisted.internet.threads import deferToThread
from twisted.trial import unittest

from twisted_coredns.testing import InProcessServer, free_port, make_query
from twisted_coredns.testing.setup import check_setup_rows, load_setup_rows, setup_error

from .small_plugin_support import DATA, readme_corefiles


def _ask(host: str, port: int, query: dns.message.Message, tcp: bool, source_port: int) -> Any:
    """A query from a known source port, so the SRV record can be checked against it."""
    if tcp:
        return deferToThread(dns.query.tcp, query, host, port=port, timeout=3, source_port=source_port)
    return deferToThread(dns.query.udp, query, host, port=port, timeout=3, source_port=source_port)


@inlineCallbacks
def _ask_from_free_port(host: str, port: int, query: dns.message.Message, tcp: bool) -> Any:
    """``_ask`` from a port free a moment ago; others test on this machine too, so a port taken
    in between is tried again with another."""
    for attempt in range(5):
        source_port = free_port(host)
        try:
            reply = yield _ask(host, port, query, tcp, source_port)
        except OSError as exc:
            if exc.errno != errno.EADDRINUSE or attempt == 4:
                raise
            continue
        return reply, source_port
    raise AssertionError("unreachable")


class WhoAmIServerTests(unittest.TestCase):
    host = "127.0.0.1"
    address_type = dns.rdatatype.A

    @inlineCallbacks
    def setUp(self) -> Any:
        self.server = InProcessServer(". {\n whoami\n}\n", host=self.host)
        yield self.server.start()
        self.addCleanup(self.server.stop)

    @inlineCallbacks
    def check(self, qname: str, tcp: bool) -> Any:
        r, source_port = yield _ask_from_free_port(self.host, self.server.port, make_query(qname, "A"), tcp)
        where = f"{qname} over {'tcp' if tcp else 'udp'} from {self.host}"
        self.assertEqual(r.rcode(), 0, where)
        self.assertTrue(r.flags & dns.flags.AA, f"{where}: AA")
        self.assertEqual(r.answer, [], f"{where}: the answer section is empty")
        self.assertEqual(len(r.additional), 2, where)
        addr, srv = r.additional
        self.assertEqual(addr.name.to_text(), qname, where)
        self.assertEqual((addr.rdtype, addr.rdclass, addr.ttl), (self.address_type, dns.rdataclass.IN, 0),
                         where)
        self.assertEqual(addr[0].address, self.host, where)
        proto = "_tcp" if tcp else "_udp"
        self.assertEqual(srv.name.to_text(), f"{proto}.{qname}" if qname != "." else f"{proto}.", where)
        self.assertEqual((srv.rdtype, srv.ttl), (dns.rdatatype.SRV, 0), where)
        self.assertEqual((srv[0].priority, srv[0].weight, srv[0].port), (0, 0, source_port), where)
        self.assertEqual(srv[0].target.to_text(), ".", where)

    @inlineCallbacks
    def test_udp_and_tcp(self) -> Any:
        for tcp in (False, True):
            yield self.check("example.org.", tcp)

    @inlineCallbacks
    def test_case_preserved_and_root_name(self) -> Any:
        for qname in ("Example.ORG.", "."):
            for tcp in (False, True):
                yield self.check(qname, tcp)

    @inlineCallbacks
    def test_edns_mirrored(self) -> Any:
        r = yield self.server.query("example.org.", "AAAA", host=self.host, edns=0, payload=1400,
                                    want_dnssec=True)
        self.assertEqual((r.edns, r.payload), (0, 1400))
        self.assertTrue(r.ednsflags & dns.flags.DO)
        r = yield _ask(self.host, self.server.port, dns.message.make_query("example.org.", "TXT"), False, 0)
        self.assertEqual(r.edns, -1, "no OPT when the query had none")
        self.assertEqual(len(r.additional), 2, "every type is answered")


class WhoAmIIPv6Tests(WhoAmIServerTests):
    host = "::1"
    address_type = dns.rdatatype.AAAA


class WhoAmIClassTests(unittest.TestCase):
    @inlineCallbacks
    def test_records_take_the_query_class(self) -> Any:
        # chaos lets CH queries in; a name chaos does not know goes on to whoami, which gives its
        # records the query's class as CoreDNS does. dnspython reads a CH A record as Chaosnet
        # data and cannot parse it, so the reply is read as bytes.
        server = InProcessServer(". {\n chaos\n whoami\n}\n")
        yield server.start()
        self.addCleanup(server.stop)
        query = dns.message.make_query("example.org.", "A", "CH")
        wire = yield deferToThread(_raw_udp, query.to_wire(), server.port)
        question_end = 12 + len(b"\x07example\x03org\x00") + 4
        self.assertEqual(struct.unpack_from("!HHHH", wire, 4), (1, 0, 0, 2))
        addr_type, addr_class = struct.unpack_from("!HH", wire, question_end + 2)
        self.assertEqual((addr_type, addr_class), (dns.rdatatype.A, dns.rdataclass.CH))
        srv_start = question_end + 2 + 10 + 4
        self.assertEqual(wire[srv_start : srv_start + 7], b"\x04_udp\xc0\x0c")
        srv_type_class = struct.unpack_from("!HH", wire, srv_start + 7)
        self.assertEqual(srv_type_class, (dns.rdatatype.SRV, dns.rdataclass.CH))


def _raw_udp(wire: bytes, port: int) -> bytes:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(3)
        sock.sendto(wire, ("127.0.0.1", port))
        return sock.recv(4096)


class WhoAmISetupTests(unittest.SynchronousTestCase):
    def test_coredns_setup_rows(self) -> None:
        rows = load_setup_rows(DATA / "setup_cases.json", "whoami")
        check_setup_rows(self, rows, error_prefix="plugin/whoami: ")

    def test_error_messages(self) -> None:
        for body, message in [
            ("whoami example.org",
             "plugin/whoami: Corefile:2 - Error during parsing: Wrong argument count or unexpected line "
             "ending after 'example.org'"),
            ("whoami {\n}",
             "plugin/whoami: Corefile:2 - Error during parsing: Unexpected token '{', expecting argument"),
        ]:
            self.assertEqual(setup_error(body), message, body)


class WhoAmIReadmeTests(unittest.TestCase):
    @inlineCallbacks
    def test_readme_corefiles_start_and_answer(self) -> Any:
        for path in readme_corefiles("whoami"):
            server = InProcessServer(path.read_text(encoding="utf-8"))
            yield server.start()
            try:
                r = yield server.query("example.org.", "A")
                self.assertEqual(r.rcode(), 0, path.name)
                self.assertEqual(r.additional[0][0].address, "127.0.0.1", path.name)
            finally:
                yield server.stop()
