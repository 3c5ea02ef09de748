"""The oracle says no to each way a reply can be wrong, and yes to right ones."""

from __future__ import annotations

import dns.flags
import dns.message
import dns.rcode
import dns.rrset
from twisted.trial.unittest import SynchronousTestCase

from twisted_coredns.testing import make_query

from .checks import check_reply, expects_reply, reply_limit

QUERY = make_query("a.example.", "TXT")
EDNS_QUERY = make_query("a.example.", "TXT", edns=0, payload=1400)


def _reply(query: dns.message.Message = QUERY, rcode: int = 0, texts: int = 0, **changes: object) -> bytes:
    reply = dns.message.make_response(query)
    reply.set_rcode(rcode)
    if texts:
        reply.answer.append(dns.rrset.from_text(query.question[0].name, 0, "IN", "TXT",
                                                *[f'"{"x" * 99}{i}"' for i in range(texts)]))
    for name, value in changes.items():
        setattr(reply, name, value)
    return reply.to_wire(max_size=65535)


class CheckReplyTests(SynchronousTestCase):
    def test_rows(self) -> None:
        wire = QUERY.to_wire()
        response = dns.message.make_response(QUERY).to_wire()
        rows = [
            # packet, reply, proto, the problem's first words (None: right)
            (wire, _reply(), "udp", None),
            (wire, _reply(rcode=dns.rcode.NXDOMAIN), "udp", None),
            (wire, _reply(rcode=dns.rcode.FORMERR), "tcp", None),
            (wire, None, "udp", "no reply"),
            (response, None, "udp", None),
            (response, _reply(), "udp", "a reply to a packet"),
            (wire[:11], None, "tcp", None),
            (wire[:11], b"\x00" * 12, "tcp", "a reply to a packet"),
            (wire, _reply(id=QUERY.id ^ 1), "udp", "reply ID"),
            (wire, _reply()[:-3], "udp", "reply does not parse"),
            (wire, _reply() + b"\x00", "udp", "reply does not parse"),
            (wire, _reply(flags=dns.flags.RD), "udp", "reply without QR"),
            (wire, _reply(rcode=dns.rcode.YXDOMAIN), "udp", "reply rcode"),
            (wire, _reply(texts=6), "udp", "reply of"),
            (wire, _reply(texts=6), "tcp", None),
            (EDNS_QUERY.to_wire(), _reply(EDNS_QUERY, texts=6), "udp", None),
            (EDNS_QUERY.to_wire(), _reply(EDNS_QUERY, texts=14), "udp", "reply of"),
            (wire, _reply(make_query("b.example.", "TXT"), id=QUERY.id), "udp", "reply question"),
        ]
        for packet, reply, proto, problem in rows:
            got = check_reply(packet, reply, proto)
            if problem is None:
                self.assertIsNone(got, (packet, reply))
            else:
                self.assertIsNotNone(got, (packet, reply, problem))
                assert got is not None
                self.assertTrue(got.startswith(problem), (got, problem))

    def test_whoami_ch_records_are_read_as_in(self) -> None:
        # whoami's A record in a reply to a CH query has an IN A record's layout (as CoreDNS's).
        query = make_query("a.example.", "A", "CH")
        reply = dns.message.make_response(query)
        wire = reply.to_wire()
        record = b"\xc0\x0c\x00\x01\x00\x03\x00\x00\x00\x00\x00\x04\x7f\x00\x00\x01"
        wire = wire[:10] + b"\x00\x01" + wire[12:] + record
        self.assertIsNone(check_reply(query.to_wire(), wire, "udp"))

    def test_expects_reply(self) -> None:
        self.assertTrue(expects_reply(QUERY.to_wire()))
        self.assertFalse(expects_reply(QUERY.to_wire()[:11]))
        self.assertFalse(expects_reply(dns.message.make_response(QUERY).to_wire()))

    def test_limit(self) -> None:
        self.assertEqual(reply_limit(QUERY.to_wire(), "udp"), 512)
        self.assertEqual(reply_limit(QUERY.to_wire(), "tcp"), 65535)
        self.assertEqual(reply_limit(EDNS_QUERY.to_wire(), "udp"), 1400)
        small = make_query("a.example.", edns=0, payload=100).to_wire()
        self.assertEqual(reply_limit(small, "udp"), 512)
