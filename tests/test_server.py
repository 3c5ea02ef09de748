"""The DNS server over real sockets: UDP, TCP (pipelined), EDNS, truncation, malformed input,
zone routing, failing handlers."""

from __future__ import annotations

import socket
import struct
from pathlib import Path
from typing import Any

import dns.flags
import dns.message
import dns.query
import dns.rcode
from twisted.internet import threads
from twisted.internet.defer import gatherResults, inlineCallbacks
from twisted.logger import globalLogPublisher
from twisted.trial.unittest import TestCase

from twisted_coredns.testing import InProcessServer, make_query

from .helpers import test_registry

DATA = Path(__file__).parent / "data"


def _raw_udp(port: int, payload: bytes, timeout: float = 0.5) -> bytes | None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(timeout)
        s.sendto(payload, ("127.0.0.1", port))
        try:
            return s.recv(65535)
        except TimeoutError:
            return None


def _tcp_pipelined(port: int, queries: list[dns.message.Message]) -> list[dns.message.Message]:
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        s.sendall(b"".join(struct.pack("!H", len(w)) + w for w in (q.to_wire() for q in queries)))
        replies = []
        buf = b""
        while len(replies) < len(queries):
            chunk = s.recv(65535)
            if not chunk:
                break
            buf += chunk
            while len(buf) >= 2 and len(buf) >= 2 + struct.unpack("!H", buf[:2])[0]:
                size = struct.unpack("!H", buf[:2])[0]
                replies.append(dns.message.from_wire(buf[2 : 2 + size]))
                buf = buf[2 + size :]
        return replies


class ServerTestCase(TestCase):
    corefile = ". {\n whoami\n}\n"

    @inlineCallbacks
    def setUp(self) -> Any:
        self.server = InProcessServer(self.corefile, registry=test_registry())
        yield self.server.start()
        self.addCleanup(self.server.stop)
        self.errors: list[dict[str, Any]] = []
        globalLogPublisher.addObserver(self.errors.append)
        self.addCleanup(globalLogPublisher.removeObserver, self.errors.append)

    def query(self, *a: Any, **kw: Any) -> Any:
        return self.server.query(*a, **kw)

    def in_thread(self, fn: Any, *a: Any) -> Any:
        return threads.deferToThread(fn, *a)


class TransportTests(ServerTestCase):
    @inlineCallbacks
    def test_udp_whoami(self) -> Any:
        r = yield self.query("example.org.", "A")
        self.assertEqual(r.rcode(), dns.rcode.NOERROR)
        self.assertTrue(r.flags & dns.flags.QR and r.flags & dns.flags.AA and r.flags & dns.flags.RD)
        names = sorted(str(rr.name) for rr in r.additional)
        self.assertEqual(names, ["_udp.example.org.", "example.org."])

    @inlineCallbacks
    def test_tcp_whoami(self) -> Any:
        r = yield self.query("example.org.", "A", tcp=True)
        self.assertIn("_tcp.example.org.", [str(rr.name) for rr in r.additional])

    @inlineCallbacks
    def test_tcp_pipelined_answers_in_any_order(self) -> Any:
        # The slow query is sent first; the fast ones must not wait for it.
        queries = [make_query("d300.slow.example.")] + [make_query(f"d0{i}.slow.example.") for i in range(5)]
        replies = yield self.in_thread(_tcp_pipelined, self.server.port, queries)
        self.assertEqual(sorted(r.id for r in replies), sorted(q.id for q in queries))
        self.assertEqual(replies[-1].id, queries[0].id, "the 300 ms answer should come last")

    @inlineCallbacks
    def test_tcp_burst_of_pipelined_queries_in_one_write(self) -> Any:
        queries = [make_query(f"n{i}.example.org.") for i in range(1500)]
        replies = yield self.in_thread(_tcp_pipelined, self.server.port, queries)
        self.assertEqual(sorted(r.id for r in replies), sorted(q.id for q in queries))

    @inlineCallbacks
    def test_many_udp_queries_concurrently(self) -> Any:
        replies = yield gatherResults([self.query(f"n{i}.example.org.") for i in range(50)])
        self.assertEqual({r.rcode() for r in replies}, {0})

    @inlineCallbacks
    def test_async_def_handler(self) -> Any:
        r = yield self.query("x.async.example.")
        self.assertEqual(r.rcode(), 0)
        self.assertTrue(r.flags & dns.flags.AA)

    corefile = ". {\n whoami\n}\nslow.example {\n slow\n}\nbig.example {\n big\n}\n" \
        "crash.example {\n crash\n whoami\n}\nasync.example {\n asyncanswer\n}\n" \
        "silent.example {\n silent\n}\nempty.example {\n}\n"


class EDNSTests(ServerTestCase):
    corefile = TransportTests.corefile

    @inlineCallbacks
    def test_opt_mirrored(self) -> Any:
        r = yield self.query("example.org.", edns=0, payload=1400, want_dnssec=True)
        self.assertEqual((r.edns, r.payload), (0, 1400))
        self.assertTrue(r.ednsflags & dns.flags.DO)

    @inlineCallbacks
    def test_no_opt_without_edns(self) -> Any:
        r = yield self.query("example.org.")
        self.assertEqual(r.edns, -1)

    @inlineCallbacks
    def test_badvers(self) -> Any:
        r = yield self.query("example.org.", edns=1)
        self.assertEqual(r.rcode(), dns.rcode.BADVERS)
        self.assertEqual(r.edns, 0)

    @inlineCallbacks
    def test_truncated_to_512_without_edns(self) -> Any:
        r = yield self.query("n20.big.example.", "TXT")
        self.assertTrue(r.flags & dns.flags.TC)
        self.assertLessEqual(len(r.to_wire()), 512)

    @inlineCallbacks
    def test_truncated_to_edns_size(self) -> Any:
        r = yield self.query("n20.big.example.", "TXT", edns=0, payload=1232)
        self.assertTrue(r.flags & dns.flags.TC)
        self.assertGreater(len(r.to_wire()), 512)
        self.assertLessEqual(len(r.to_wire()), 1232)

    @inlineCallbacks
    def test_not_truncated_when_it_fits_or_over_tcp(self) -> Any:
        r = yield self.query("n20.big.example.", "TXT", edns=0, payload=4096)
        self.assertFalse(r.flags & dns.flags.TC)
        self.assertEqual(len(r.answer[0]), 20)
        r = yield self.query("n20.big.example.", "TXT", tcp=True)
        self.assertFalse(r.flags & dns.flags.TC)
        self.assertEqual(len(r.answer[0]), 20)


class RoutingTests(ServerTestCase):
    corefile = "example.org {\n whoami\n}\nsub.example.org {\n slow\n}\nempty.example {\n}\n" \
        "crash.example {\n crash\n whoami\n}\nsilent.example {\n silent\n}\n"

    @inlineCallbacks
    def test_ds_goes_to_the_parent_zone(self) -> Any:
        # sub.example.org is served by `slow` (a TXT answer), its parent example.org by whoami:
        # a DS query for the cut belongs to the parent side, as CoreDNS routes it.
        r = yield self.query("d0.sub.example.org.", "A")
        self.assertEqual(len(r.answer), 1)
        r = yield self.query("sub.example.org.", "DS")
        self.assertEqual(r.answer, [])
        self.assertEqual(len(r.additional), 2)  # whoami's

    @inlineCallbacks
    def test_no_zone_is_refused(self) -> Any:
        r = yield self.query("example.net.")
        self.assertEqual(r.rcode(), dns.rcode.REFUSED)

    @inlineCallbacks
    def test_longest_suffix_wins(self) -> Any:
        r = yield self.query("d0.sub.example.org.", "TXT")
        self.assertEqual(r.answer[0].name.to_text(), "d0.sub.example.org.")
        r = yield self.query("www.example.org.")
        self.assertEqual(len(r.additional), 2)  # whoami

    @inlineCallbacks
    def test_case_insensitive_and_case_preserved(self) -> Any:
        r = yield self.query("WWW.Example.ORG.")
        self.assertEqual(r.rcode(), 0)
        self.assertEqual(r.question[0].name.to_text(), "WWW.Example.ORG.")

    @inlineCallbacks
    def test_zone_without_plugins_is_refused(self) -> Any:
        r = yield self.query("a.empty.example.")
        self.assertEqual(r.rcode(), dns.rcode.REFUSED)

    @inlineCallbacks
    def test_non_in_class_refused_without_chaos(self) -> Any:
        r = yield self.query("example.org.", "TXT", rdclass="CH")
        self.assertEqual(r.rcode(), dns.rcode.REFUSED)

    @inlineCallbacks
    def test_raising_handler_gives_servfail_and_server_keeps_serving(self) -> Any:
        r = yield self.query("crash.example.")
        self.assertEqual(r.rcode(), dns.rcode.SERVFAIL)
        logged = [e for e in self.errors if "handler exploded" in str(e.get("log_failure", ""))]
        self.assertTrue(logged, "the failure is logged")
        self.flushLoggedErrors(RuntimeError)
        r = yield self.query("x.crash.example.")
        self.assertEqual(r.rcode(), 0)

    @inlineCallbacks
    def test_not_written_rcode_is_written_by_the_server(self) -> Any:
        r = yield self.query("silent.example.")
        self.assertEqual(r.rcode(), dns.rcode.SERVFAIL)
        self.assertEqual(r.question[0].name.to_text(), "silent.example.")


class MalformedTests(ServerTestCase):
    @inlineCallbacks
    def test_responses_are_never_answered(self) -> Any:
        resp = dns.message.make_response(make_query("example.org."))
        got = yield self.in_thread(_raw_udp, self.server.port, resp.to_wire())
        self.assertIsNone(got)

    @inlineCallbacks
    def test_short_packet_is_ignored(self) -> Any:
        got = yield self.in_thread(_raw_udp, self.server.port, b"\x12\x34\x01\x00")
        self.assertIsNone(got)

    @inlineCallbacks
    def test_two_questions_formerr(self) -> Any:
        wire = bytearray(make_query("example.org.").to_wire())
        struct.pack_into("!H", wire, 4, 2)
        got = yield self.in_thread(_raw_udp, self.server.port, bytes(wire))
        self.assertIsNotNone(got)
        reply = dns.message.from_wire(got)
        self.assertEqual(reply.rcode(), dns.rcode.FORMERR)
        self.assertEqual(reply.id, struct.unpack("!H", wire[:2])[0])

    @inlineCallbacks
    def test_garbage_question_formerr(self) -> Any:
        wire = struct.pack("!HHHHHH", 0xBEEF, 0x0100, 1, 0, 0, 0) + b"\x3fabc"
        got = yield self.in_thread(_raw_udp, self.server.port, wire)
        self.assertIsNotNone(got)
        self.assertEqual(got[:2], b"\xbe\xef")
        self.assertEqual(got[3] & 0x0F, 1)
        self.assertTrue(got[2] & 0x80)

    @inlineCallbacks
    def test_unknown_opcode_notimp(self) -> Any:
        wire = bytearray(make_query("example.org.").to_wire())
        wire[2] = (wire[2] & 0x87) | (5 << 3)
        got = yield self.in_thread(_raw_udp, self.server.port, bytes(wire))
        self.assertEqual(got[3] & 0x0F, 4)

    @inlineCallbacks
    def test_malformed_corpus(self) -> Any:
        """c-ares' fuzz corpus: never an answer to a packet with QR=1, never a dead server."""
        corpus = sorted(p for p in (DATA / "malformed").iterdir() if p.suffix != ".txt")
        self.assertGreater(len(corpus), 50)
        answered_responses = []
        for path in corpus:
            data = path.read_bytes()
            if len(data) > 65507:
                continue  # larger than a UDP datagram can be
            got = yield self.in_thread(_raw_udp, self.server.port, data, 0.05)
            if got is not None and len(data) >= 3 and data[2] & 0x80:
                answered_responses.append(path.name)
        self.assertEqual(answered_responses, [])
        r = yield self.query("still.alive.example.org.")
        self.assertEqual(r.rcode(), 0)

    @inlineCallbacks
    def test_tcp_garbage_does_not_kill_the_connection_or_server(self) -> Any:
        def exchange() -> dns.message.Message:
            with socket.create_connection(("127.0.0.1", self.server.port), timeout=3) as s:
                junk = b"\x00\x05hello"
                q = make_query("example.org.").to_wire()
                s.sendall(junk + struct.pack("!H", len(q)) + q)
                size = struct.unpack("!H", s.recv(2))[0]
                data = b""
                while len(data) < size:
                    data += s.recv(size - len(data))
                return dns.message.from_wire(data)

        r = yield self.in_thread(exchange)
        self.assertEqual(r.rcode(), 0)
