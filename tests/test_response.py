"""Replies: flags copied, OPT mirrored, truncation that keeps valid wire, error replies."""

from __future__ import annotations

import dns.edns
import dns.flags
import dns.message
import dns.rcode
import dns.rrset
from twisted.trial.unittest import SynchronousTestCase

from twisted_coredns.request import Request
from twisted_coredns.response import Response, error_reply, finish, reply, truncate
from twisted_coredns.testing import make_query


def _request(**kw: object) -> Request:
    return Request(make_query("example.org.", "A", **kw).to_wire())  # type: ignore[arg-type]


class ReplyTests(SynchronousTestCase):
    def test_reply_copies_id_rd_cd_and_question(self) -> None:
        q = make_query("Example.org.", "A", flags=dns.flags.RD | dns.flags.CD)
        m = dns.message.from_wire(reply(Request(q.to_wire()), aa=True).wire or b"")
        self.assertEqual(m.id, q.id)
        for flag in (dns.flags.QR, dns.flags.AA, dns.flags.RD, dns.flags.CD):
            self.assertTrue(m.flags & flag, flag)
        self.assertEqual(str(m.question[0].name), "Example.org.")
        self.assertEqual(m.edns, -1)

    def test_opt_mirrored_with_do_bit(self) -> None:
        m = dns.message.from_wire(reply(_request(edns=0, payload=1400, want_dnssec=True)).wire or b"")
        self.assertEqual((m.edns, m.payload), (0, 1400))
        self.assertTrue(m.ednsflags & dns.flags.DO)

    def test_dnspython_rrsets_are_compressed_against_the_question(self) -> None:
        rrset = dns.rrset.from_text("example.org.", 300, "IN", "A", "192.0.2.1", "192.0.2.2")
        resp = reply(_request(), answer=[rrset])
        self.assertEqual(dns.message.from_wire(resp.wire or b"").answer, [rrset])
        self.assertEqual(len(resp.wire or b""), 12 + 17 + 2 * 16)

    def test_supported_client_options_are_echoed_others_dropped(self) -> None:
        q = make_query("example.org.", "A", edns=0)
        cookie = dns.edns.CookieOption(b"\x01" * 8, b"")
        unknown = dns.edns.GenericOption(65001, b"private")
        q.use_edns(0, 0, 1232, options=[unknown, cookie])
        m = dns.message.from_wire(reply(Request(q.to_wire())).wire or b"")
        self.assertEqual([o.otype for o in m.options], [dns.edns.OptionType.COOKIE])
        self.assertEqual(m.options[0].client, b"\x01" * 8)

    def test_badvers_goes_into_the_opt_record(self) -> None:
        m = dns.message.from_wire(error_reply(_request(edns=0), 16).wire or b"")
        self.assertEqual(m.rcode(), dns.rcode.BADVERS)

    def test_finish_adds_missing_opt_and_restores_id(self) -> None:
        req = _request(edns=0)
        plain = dns.message.make_response(dns.message.make_query("example.org.", "A"))
        plain.id = (req.id + 1) % 65536
        out = dns.message.from_wire(finish(req, Response(plain.to_wire())))
        self.assertEqual(out.id, req.id)
        self.assertEqual(out.edns, 0)

    def test_not_written_becomes_error_reply(self) -> None:
        out = dns.message.from_wire(finish(_request(), Response.not_written(2, "boom")))
        self.assertEqual(out.rcode(), dns.rcode.SERVFAIL)
        self.assertEqual(out.question[0].name.to_text(), "example.org.")


class TruncationTests(SynchronousTestCase):
    def test_keeps_a_valid_prefix_and_sets_tc(self) -> None:
        req = _request(edns=0, payload=512)
        rrs = [dns.rrset.from_text("example.org.", 300, "IN", "TXT", f'"{"x" * 100} {i}"') for i in range(10)]
        big = reply(req, answer=rrs)
        self.assertGreater(len(big.wire or b""), 512)
        out_wire = finish(req, big)
        self.assertLessEqual(len(out_wire), 512)
        out = dns.message.from_wire(out_wire)
        self.assertTrue(out.flags & dns.flags.TC)
        self.assertTrue(0 < len(out.answer[0]) < 10)
        self.assertEqual(out.edns, 0)

    def test_without_edns_the_limit_is_512(self) -> None:
        req = _request()
        rrs = [dns.rrset.from_text(f"h{i}.example.org.", 300, "IN", "A", "192.0.2.1") for i in range(40)]
        out = finish(req, reply(req, answer=rrs))
        self.assertLessEqual(len(out), 512)
        self.assertTrue(dns.message.from_wire(out).flags & dns.flags.TC)

    def test_header_only_when_the_question_cannot_fit(self) -> None:
        wire = reply(_request()).wire or b""
        self.assertEqual(truncate(wire, 12)[:2], wire[:2])
        self.assertEqual(len(truncate(wire, 12)), 12)

    def test_fitting_reply_is_untouched(self) -> None:
        req = _request()
        wire = reply(req, answer=[dns.rrset.from_text("example.org.", 5, "IN", "A", "192.0.2.9")]).wire
        self.assertEqual(finish(req, Response(wire)), wire)
