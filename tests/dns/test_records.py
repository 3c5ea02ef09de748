"""Each record builder's bytes, read back by dnspython inside a reply built by ``reply()``."""

from __future__ import annotations

import dns.message
import dns.rdataclass
import dns.rdatatype
from twisted.trial.unittest import SynchronousTestCase

from twisted_coredns import reply, reply_records
from twisted_coredns.dns import AA, CD, CLASS_CH, OPCODE_NOTIFY, QNAME, QR, RA, RD, TC, records, reply_flags
from twisted_coredns.testing import make_request


def _answers(*recs: bytes, qname: str = "q.example.org.") -> list[str]:
    response = reply(make_request(qname, "A"), answer=list(recs))
    assert response.wire is not None
    message = dns.message.from_wire(response.wire)
    return [rrset.to_text() for rrset in message.answer]


class BuilderTests(SynchronousTestCase):
    def test_each_type(self) -> None:
        for record, want in [
            (records.a(QNAME, 60, "192.0.2.1"), "q.example.org. 60 IN A 192.0.2.1"),
            (records.aaaa("v6.example.org.", 60, "2001:db8::1"), "v6.example.org. 60 IN AAAA 2001:db8::1"),
            (records.aaaa(QNAME, 1, "fe80::1%eth0"), "q.example.org. 1 IN AAAA fe80::1"),
            (records.txt(QNAME, 5, "hello", b"world"), 'q.example.org. 5 IN TXT "hello" "world"'),
            (records.txt(QNAME, 5), 'q.example.org. 5 IN TXT ""'),
            (
                records.srv(QNAME, 0, 10, 20, 53, "ns.example.org."),
                "q.example.org. 0 IN SRV 10 20 53 ns.example.org.",
            ),
            (records.srv(records.below("_udp"), 0, 0, 0, 53, "."), "_udp.q.example.org. 0 IN SRV 0 0 53 ."),
            (records.ptr(QNAME, 9, "host.example.org."), "q.example.org. 9 IN PTR host.example.org."),
            (records.cname(QNAME, 9, "target.example.org"), "q.example.org. 9 IN CNAME target.example.org."),
            (records.dname(QNAME, 9, "example.net."), "q.example.org. 9 IN DNAME example.net."),
            (records.ns("example.org.", 9, "ns1.example.org."), "example.org. 9 IN NS ns1.example.org."),
            (records.mx(QNAME, 9, 10, "mail.example.org."), "q.example.org. 9 IN MX 10 mail.example.org."),
            (records.hinfo(QNAME, 8482, "ANY obsoleted", "See RFC 8482"),
             'q.example.org. 8482 IN HINFO "ANY obsoleted" "See RFC 8482"'),
            (
                records.soa("example.org.", 300, "ns.example.org.", "hostmaster.example.org.", 1, 7200, 3600,
                            1209600, 60),
                "example.org. 300 IN SOA ns.example.org. hostmaster.example.org. 1 7200 3600 1209600 60",
            ),
            (records.txt(QNAME, 0, "v", rclass=CLASS_CH), 'q.example.org. 0 CH TXT "v"'),
        ]:
            self.assertEqual(_answers(record), [want])

    def test_long_txt_is_split_at_255(self) -> None:
        text = "x" * 600
        response = reply(make_request("q.example.org.", "TXT"), answer=[records.txt(QNAME, 0, text)])
        assert response.wire is not None
        strings = dns.message.from_wire(response.wire).answer[0][0].strings
        self.assertEqual([len(s) for s in strings], [255, 255, 90])
        self.assertEqual(b"".join(strings), text.encode())

    def test_owner_pointer_is_two_bytes(self) -> None:
        self.assertEqual(len(records.a(QNAME, 0, "192.0.2.1")), 2 + 10 + 4)
        self.assertEqual(records.below("_tcp"), b"\x04_tcp\xc0\x0c")

    def test_bad_input(self) -> None:
        for call in (
            lambda: records.a(QNAME, 0, "2001:db8::1"),
            lambda: records.aaaa(QNAME, 0, "192.0.2.1"),
            lambda: records.a(QNAME, 0, "1"),
            lambda: records.ptr(QNAME, 0, "a..b"),
            lambda: records.below(""),
            lambda: records.below("x" * 64),
        ):
            with self.assertRaises(ValueError):
                call()

    def test_reply_records_counts(self) -> None:
        request = make_request("q.example.org.", "A")
        response = reply_records(request, records.a(QNAME, 0, "192.0.2.1") * 2, 2, aa=True)
        assert response.wire is not None
        message = dns.message.from_wire(response.wire)
        self.assertEqual(len(message.answer[0]), 1, "the same record twice is one rdata in dnspython")
        self.assertTrue(message.flags & AA)


class ReplyFlagsTests(SynchronousTestCase):
    """miekg's SetReply: QR, the opcode, and RD/CD only for a standard query."""

    def test_query(self) -> None:
        self.assertEqual(reply_flags(RD | CD), QR | RD | CD)
        self.assertEqual(reply_flags(RD, 3, aa=True, ra=True, tc=True), QR | RD | AA | RA | TC | 3)

    def test_other_opcodes_do_not_echo_rd_cd(self) -> None:
        notify = (OPCODE_NOTIFY << 11) | RD | CD
        self.assertEqual(reply_flags(notify, 4), QR | (OPCODE_NOTIFY << 11) | 4)
