"""What the fuzzer found, one focused test each, without a server.

- whoami put ``_udp.`` in front of a question name of 251 to 255 octets: a name over 255 octets
  that no client can read.
- A reply that had to be truncated kept the client's own EDNS options (a 1,500-octet PADDING), so
  it was still larger than the client's buffer.
- The server accepted queries that dnspython (and miekg/dns) cannot read: EDNS options that do not
  parse, records beyond the question with bad names or data, an extended rcode, trailing octets.
  forward sent them on as they came, and unbound echoes a query it finds malformed (TC set, an
  answer record) whole, as a FORMERR: the client got back a reply it could not read, or rcode 4081.
"""

from __future__ import annotations

import struct

import dns.message
import dns.rcode
import dns.tsigkeyring
from hypothesis import HealthCheck, given, settings
from twisted.trial.unittest import SynchronousTestCase

from twisted_coredns.plugins.whoami import WhoAmI
from twisted_coredns.request import MalformedQuery, Request
from twisted_coredns.response import Response, finish, reply_records, truncate
from twisted_coredns.testing import make_query

from .packets import NAME_255, name_wire, packets


def _query(name: bytes, qtype: int = 1, *, flags: int = 0x0100, additional: bytes = b"", ar: int = 0,
           an: int = 0) -> bytes:
    header = struct.pack("!HHHHHH", 0x4242, flags, 1, an, 0, ar)
    return header + name + struct.pack("!HH", qtype, 1) + additional


def _opt(rdata: bytes = b"", size: int = 1232, ext: int = 0) -> bytes:
    return b"\x00\x00\x29" + struct.pack("!HBBHH", size, ext, 0, 0, len(rdata)) + rdata


def _option(code: int, data: bytes) -> bytes:
    return struct.pack("!HH", code, len(data)) + data


NAME = name_wire([b"a", b"example"])


class WhoAmILongNameTests(SynchronousTestCase):
    def answer(self, name: bytes, proto: str) -> dns.message.Message:
        request = Request(_query(name), ("127.0.0.1", 40212), proto)
        response = WhoAmI().serve(request)
        return dns.message.from_wire(finish(request, response))

    def test_no_srv_record_when_its_name_would_be_too_long(self) -> None:
        for proto in ("udp", "tcp"):
            reply = self.answer(name_wire(NAME_255), proto)
            self.assertEqual([rrset.rdtype for rrset in reply.additional], [1], proto)

    def test_the_longest_name_with_room_for_the_srv_record(self) -> None:
        labels = [b"a" * 63, b"b" * 63, b"c" * 63, b"d" * 56]
        self.assertEqual(len(name_wire(labels)), 250)
        reply = self.answer(name_wire(labels), "udp")
        srv = reply.additional[1]
        self.assertEqual((srv.rdtype, len(srv.name.to_wire())), (33, 255))


class TruncateTests(SynchronousTestCase):
    def test_options_that_leave_no_room_go(self) -> None:
        padding = _option(12, bytes(1500))
        request = Request(_query(NAME, additional=_opt(padding, size=1232), ar=1))
        self.assertEqual(len(request.edns_options), 1504)
        records = b"\xc0\x0c" + struct.pack("!HHIH", 1, 1, 0, 4) + b"\x7f\x00\x00\x01"
        wire = finish(request, reply_records(request, records, 1))
        self.assertLessEqual(len(wire), 1232)
        reply = dns.message.from_wire(wire)
        self.assertTrue(reply.flags & dns.flags.TC)
        self.assertEqual((reply.edns, reply.payload, reply.options), (0, 1232, ()))
        self.assertEqual(reply.question, dns.message.from_wire(request.wire).question)

    def test_never_over_the_size(self) -> None:
        for options in (1, 400, 489, 490, 600, 4000):
            wire = _query(NAME, 16) + _opt(_option(12, bytes(options)))
            wire = wire[:4] + struct.pack("!HHHH", 1, 0, 0, 1) + wire[12:]
            out = truncate(wire, 512)
            self.assertLessEqual(len(out), 512, options)
            dns.message.from_wire(out)

    def test_a_reply_that_fits_is_not_touched(self) -> None:
        request = Request(_query(NAME, additional=_opt(_option(12, bytes(100))), ar=1))
        wire = finish(request, Response.not_written(dns.rcode.SERVFAIL))
        self.assertEqual(len(dns.message.from_wire(wire).options[0].to_wire()), 100)


class RequestAcceptsWhatDnspythonReadsTests(SynchronousTestCase):
    """FORMERR, with the question echoed, for what cannot be read; the rest is read as before."""

    def rejected(self, wire: bytes) -> MalformedQuery:
        with self.assertRaises(MalformedQuery) as caught:
            Request(wire)
        self.assertEqual(caught.exception.rcode, dns.rcode.FORMERR)
        self.assertEqual(caught.exception.question, NAME + b"\x00\x01\x00\x01")
        return caught.exception

    def test_options_that_do_not_parse(self) -> None:
        for rdata in (
            b"\xff\xff",  # an option header cut short
            _option(3, b"abc")[:-1],  # an option longer than the record
            _option(10, b"abcde"),  # a COOKIE of 5 octets (RFC 7873: FORMERR)
            _option(10, b"a" * 8 + b"b" * 33),  # a server cookie of 33
            _option(8, b"\x00\x09\x00\x00"),  # ECS of an unknown family (RFC 7871: FORMERR)
            _option(8, b"\x00\x01\x21\x00" + bytes(4)),  # ECS with a prefix of 33 bits
            _option(15, b"\x00\x01\xff"),  # EDE text that is not UTF-8
        ):
            self.assertIn("bad EDNS options", str(self.rejected(_query(NAME, additional=_opt(rdata), ar=1))))

    def test_options_that_parse_are_kept(self) -> None:
        for rdata in (_option(10, b"a" * 8), _option(10, b"a" * 24), _option(12, bytes(9)),
                      _option(65001, b"anything") + _option(3, b"")):
            request = Request(_query(NAME, additional=_opt(rdata), ar=1))
            self.assertEqual(request.edns_options, rdata)

    def test_an_extended_rcode(self) -> None:
        self.rejected(_query(NAME, additional=_opt(ext=255), ar=1))
        self.rejected(_query(NAME, additional=_opt(ext=1) + _opt(), ar=2))

    def test_records_that_do_not_parse(self) -> None:
        rr = struct.pack("!HHIH", 65280, 1, 0, 1) + b"\x5c"
        bad_a = b"\x00" + struct.pack("!HHIH", 1, 1, 0, 3) + b"\x7f\x00\x01"
        for additional, an, ar in (
            (b"\xc0\x27" + rr, 0, 1),  # owner: a pointer forward, at a label of an unknown type
            (b"\xc0\x1b" + rr, 0, 1),  # owner: a pointer at itself
            (b"\xc0\x1b" + rr, 1, 0),  # the same in the answer section, with nothing in additional
            (bad_a, 0, 1),  # an A record of 3 octets
            (bad_a + _opt(), 0, 2),
        ):
            self.assertIn("records do not parse", str(self.rejected(_query(NAME, additional=additional,
                                                                              ar=ar, an=an))))

    def test_a_signed_query_is_read(self) -> None:
        query = make_query("a.example.")
        query.use_tsig(dns.tsigkeyring.from_text({"k.": "MTIzNDU2Nzg5MDEyMzQ1Ng=="}), keyname="k.")
        request = Request(query.to_wire())
        self.assertTrue(request.message.had_tsig)

    def test_trailing_octets_are_dropped(self) -> None:
        for wire in (
            _query(NAME),
            _query(NAME, additional=_opt(), ar=1),
            _query(NAME, additional=_opt(_option(10, b"a" * 8)), ar=1),
            _query(NAME, additional=_opt() + b"\x00" + struct.pack("!HHIH", 16, 1, 0, 2) + b"\x01x", ar=2),
        ):
            request = Request(wire + b"\x00junk")
            self.assertEqual(request.wire, wire)
            self.assertEqual(Request(wire).wire, wire)

    @settings(max_examples=500, deadline=None, derandomize=True, database=None,
              suppress_health_check=[HealthCheck.too_slow])
    @given(packet=packets())
    def test_what_is_accepted_dnspython_reads(self, packet: bytes) -> None:
        # What a plugin reading ``message`` gets, and what forward sends upstream, always parses.
        try:
            request = Request(packet)
        except MalformedQuery:
            return
        dns.message.from_wire(request.wire, keyring=False)
        self.assertEqual(request.message.id, request.id)
