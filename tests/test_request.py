"""The hand-written query parser agrees with dnspython and rejects what miekg/dns rejects."""

from __future__ import annotations

import struct

import dns.message
import dns.name
from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.trial.unittest import SynchronousTestCase

from twisted_coredns.request import MalformedQuery, Request
from twisted_coredns.testing import make_query


class RequestParsingTests(SynchronousTestCase):
    def test_header_and_question(self) -> None:
        q = make_query("WWW.Example.ORG.", "AAAA")
        r = Request(q.to_wire(), ("192.0.2.1", 5353), "udp")
        self.assertEqual(r.id, q.id)
        self.assertEqual(r.qname, "WWW.Example.ORG.")
        self.assertEqual(r.name, "www.example.org.")
        self.assertEqual((r.qtype, r.type_name), (28, "AAAA"))
        self.assertEqual((r.qclass, r.class_name), (1, "IN"))
        self.assertTrue(r.rd)
        self.assertFalse(r.edns)
        self.assertEqual(r.size, 512)
        self.assertEqual(r.family, 1)

    def test_edns_fields(self) -> None:
        q = make_query("example.org.", "A", edns=0, payload=4096, want_dnssec=True)
        r = Request(q.to_wire(), ("::1", 1), "udp")
        self.assertTrue(r.edns)
        self.assertEqual(r.edns_version, 0)
        self.assertEqual((r.udp_size, r.size), (4096, 4096))
        self.assertTrue(r.do)
        self.assertEqual(r.family, 2)

    def test_tcp_size_is_unlimited(self) -> None:
        r = Request(make_query("example.org.").to_wire(), ("127.0.0.1", 1), "tcp")
        self.assertEqual(r.size, 65535)

    def test_small_edns_size_is_raised_to_512(self) -> None:
        r = Request(make_query("example.org.", edns=0, payload=100).to_wire())
        self.assertEqual(r.size, 512)

    def test_root_name(self) -> None:
        r = Request(make_query(".", "NS").to_wire())
        self.assertEqual((r.qname, r.name), (".", "."))

    def test_escaped_labels_match_dnspython(self) -> None:
        name = dns.name.Name([b"a.b", b"c d", b"\x00\xff", b""])
        r = Request(dns.message.make_query(name, "A").to_wire())
        self.assertEqual(r.qname, name.to_text())

    def test_section_counts_rejected_with_formerr(self) -> None:
        for counts in [(0, 0, 0, 0), (2, 0, 0, 0), (1, 2, 0, 0), (1, 0, 2, 0), (1, 0, 0, 3)]:
            wire = bytearray(make_query("example.org.").to_wire())
            struct.pack_into("!HHHH", wire, 4, *counts)
            with self.assertRaises(MalformedQuery, msg=str(counts)) as exc:
                Request(bytes(wire))
            self.assertEqual(exc.exception.rcode, 1, counts)

    def test_unknown_opcode_is_notimp(self) -> None:
        wire = bytearray(make_query("example.org.").to_wire())
        wire[2] |= 2 << 3  # opcode STATUS
        with self.assertRaises(MalformedQuery) as exc:
            Request(bytes(wire))
        self.assertEqual(exc.exception.rcode, 4)

    def test_truncated_question(self) -> None:
        with self.assertRaises(MalformedQuery):
            Request(make_query("example.org.").to_wire()[:-3])

    def test_short_packet(self) -> None:
        with self.assertRaises(MalformedQuery):
            Request(b"\x00" * 11)

    def test_message_is_lazy_and_full(self) -> None:
        q = make_query("example.org.", "MX", edns=0)
        r = Request(q.to_wire())
        self.assertIsNone(r._message)
        self.assertEqual(r.message.question, q.question)
        self.assertIs(r.message, r.message)

    @settings(max_examples=400, deadline=None)
    @given(st.binary(min_size=12, max_size=300))
    def test_any_bytes_parse_or_raise_malformed(self, data: bytes) -> None:
        try:
            Request(data)
        except MalformedQuery:
            pass
