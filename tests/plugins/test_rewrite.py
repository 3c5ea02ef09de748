"""rewrite against a real server: every rule type and option, with a loopback upstream that shows
the query it got and answers with records owned by that name."""

from __future__ import annotations

from typing import Any

import dns.edns
import dns.message
import dns.rcode
import dns.rdatatype
import dns.rrset
from twisted.internet.defer import inlineCallbacks
from twisted.trial import unittest

from twisted_coredns.testing import InProcessServer
from twisted_coredns.testing.setup import check_setup_rows, load_setup_rows, setup_error

from .small_plugin_support import DATA, captured_log, readme_corefiles
from .test_minimal import ScriptedUpstream


def _answer(query: dns.message.Message) -> dns.message.Message:
    """An answer for the name asked; SRV/MX/PTR/CNAME values under service.consul; servfail.* fails;
    my-app.* is a CNAME chain to my-app.com.cdn.example.net."""
    reply = dns.message.make_response(query)
    q = query.question[0]
    name = q.name.to_text()
    if name.startswith("servfail."):
        reply.set_rcode(dns.rcode.SERVFAIL)
        return reply
    if name.endswith("other.cdn.com."):
        reply.answer.append(dns.rrset.from_text(name, 100, "IN", "A", "30.3.1.2"))
        return reply
    if name.startswith("my-app."):
        reply.answer.append(dns.rrset.from_text(name, 200, "IN", "CNAME", "my-app.com.cdn.example.net."))
        reply.answer.append(dns.rrset.from_text("my-app.com.cdn.example.net.", 300, "IN", "A", "20.2.0.1"))
        return reply
    text = {dns.rdatatype.A: "10.10.10.10", dns.rdatatype.AAAA: "2001:db8::1",
            dns.rdatatype.SRV: "0 0 80 ftp-us-west-1.service.consul.",
            dns.rdatatype.MX: "10 mail.service.consul.", dns.rdatatype.PTR: "ftp-us-west-1.service.consul.",
            dns.rdatatype.HINFO: '"cpu" "os"'}.get(q.rdtype)
    if text is not None:
        reply.answer.append(dns.rrset.from_text(q.name, 5, q.rdclass, q.rdtype, text))
    return reply


class RewriteTests(unittest.TestCase):
    @inlineCallbacks
    def serve(self, rules: str, extra: str = "") -> Any:
        self.upstream = ScriptedUpstream(_answer)
        self.addCleanup(self.upstream.stop)
        server = InProcessServer(f". {{\n{rules}\n{extra} forward . {self.upstream.address}\n}}\n")
        yield server.start()
        self.addCleanup(server.stop)
        return server

    def asked(self) -> tuple[str, int, int]:
        q = self.upstream.queries[-1].question[0]
        return q.name.to_text(), q.rdtype, q.rdclass

    @inlineCallbacks
    def test_exact_name_answers_back(self) -> Any:
        server = yield self.serve(" rewrite name exact RED.example. blue.example.")
        r = yield server.query("Red.Example.", "A")
        self.assertEqual(self.asked()[0], "blue.example.")
        self.assertEqual(r.question[0].name.to_text(), "Red.Example.")
        self.assertEqual(r.answer[0].name.to_text().lower(), "red.example.")
        r = yield server.query("other.example.", "A")
        self.assertEqual((self.asked()[0], r.answer[0].name.to_text()), ("other.example.", "other.example."))

    @inlineCallbacks
    def test_two_word_form_is_exact(self) -> Any:
        server = yield self.serve(" rewrite name a.example b.example")
        yield server.query("a.example.", "A")
        self.assertEqual(self.asked()[0], "b.example.")
        yield server.query("x.a.example.", "A")
        self.assertEqual(self.asked()[0], "x.a.example.")

    @inlineCallbacks
    def test_prefix_suffix_substring(self) -> Any:
        server = yield self.serve(
            # Prefixes are made fully qualified as CoreDNS makes them: "foo" is "foo.".
            " rewrite continue name prefix foo bar\n"
            " rewrite continue name suffix .schmoogle.com. .google.com. answer auto\n"
            " rewrite name substring service.us-west-1.example.org service.us-west-1.consul answer auto")
        r = yield server.query("foo.a.schmoogle.com.", "A")
        self.assertEqual(self.asked()[0], "bar.a.google.com.")
        self.assertEqual(r.answer[0].name.to_text(), "bar.a.schmoogle.com.")  # suffix auto only
        r = yield server.query("ftp.service.us-west-1.example.org.", "A")
        self.assertEqual(self.asked()[0], "ftp.service.us-west-1.consul.")
        self.assertEqual(r.answer[0].name.to_text(), "ftp.service.us-west-1.example.org.")

    @inlineCallbacks
    def test_regex_with_answer_name_and_value(self) -> Any:
        server = yield self.serve(
            " rewrite stop {\n  name regex (.*)-(us-west-1)\\.coredns\\.rocks {1}.service.{2}.consul\n"
            "  answer name (.*)\\.service\\.(us-west-1)\\.consul {1}-{2}.coredns.rocks\n"
            "  answer value (.*)\\.service\\.consul\\. {1}.coredns.rocks.\n }")
        r = yield server.query("ftp-us-west-1.coredns.rocks.", "SRV")
        self.assertEqual(self.asked()[0], "ftp.service.us-west-1.consul.")
        self.assertEqual(r.answer[0].name.to_text(), "ftp-us-west-1.coredns.rocks.")
        self.assertEqual(r.answer[0][0].target.to_text(), "ftp-us-west-1.coredns.rocks.")

    @inlineCallbacks
    def test_ptr_value_with_answer_auto(self) -> Any:
        server = yield self.serve(
            " rewrite stop {\n  name suffix .arpa .arpa\n  answer auto\n"
            "  answer value (.*)\\.service\\.consul\\. {1}.coredns.rocks.\n }")
        r = yield server.query("30.30.30.10.in-addr.arpa.", "PTR")
        self.assertEqual(r.answer[0][0].target.to_text(), "ftp-us-west-1.coredns.rocks.")

    @inlineCallbacks
    def test_stop_and_continue(self) -> Any:
        server = yield self.serve(" rewrite name a.test. b.test.\n rewrite name b.test. c.test.")
        yield server.query("a.test.", "A")
        self.assertEqual(self.asked()[0], "b.test.", "stop: the second rule is not tried")
        server = yield self.serve(" rewrite continue name a.test. b.test.\n rewrite name b.test. c.test.")
        r = yield server.query("a.test.", "A")
        self.assertEqual(self.asked()[0], "c.test.")
        self.assertEqual(r.answer[0].name.to_text(), "a.test.", "answers go back in reverse order")

    @inlineCallbacks
    def test_type_and_class(self) -> Any:
        server = yield self.serve(" rewrite type ANY HINFO\n rewrite class CH IN", "")
        r = yield server.query("example.org.", "ANY")
        self.assertEqual(self.asked()[1], dns.rdatatype.HINFO)
        self.assertEqual(r.question[0].rdtype, dns.rdatatype.ANY, "the client's question comes back")
        server = yield self.serve(" rewrite class CH IN", " chaos\n")
        r = yield server.query("example.org.", "A", rdclass="CH")
        self.assertEqual(self.asked()[2], 1)

    @inlineCallbacks
    def test_ttl(self) -> Any:
        server = yield self.serve(
            " rewrite continue ttl regex (.*)\\.coredns\\.rocks 15\n rewrite ttl exact low.test. 30-300\n")
        r = yield server.query("www.coredns.rocks.", "A")
        self.assertEqual(r.answer[0].ttl, 15)
        r = yield server.query("low.test.", "A")
        self.assertEqual(r.answer[0].ttl, 30)
        r = yield server.query("other.test.", "A")
        self.assertEqual(r.answer[0].ttl, 5)

    @inlineCallbacks
    def test_rcode(self) -> Any:
        server = yield self.serve(" rewrite rcode suffix .coredns.rocks. SERVFAIL NOERROR\n"
                                  " rewrite rcode servfail.other. 2 3\n")
        r = yield server.query("servfail.coredns.rocks.", "A")
        self.assertEqual(r.rcode(), dns.rcode.NOERROR)
        r = yield server.query("servfail.other.", "A")
        self.assertEqual(r.rcode(), dns.rcode.NXDOMAIN)

    @inlineCallbacks
    def test_edns0_local_nsid_subnet(self) -> Any:
        server = yield self.serve(
            " rewrite continue edns0 local set 0xffee 0x61626364\n"
            " rewrite continue edns0 local append 0xffed {client_ip}\n"
            " rewrite continue edns0 nsid set\n"
            " rewrite edns0 subnet set 24 56\n")
        yield server.query("example.org.", "A")
        options = {o.otype: o for o in self.upstream.queries[-1].options}
        self.assertEqual(options[0xFFEE].data, b"abcd")
        self.assertEqual(options[0xFFED].data, bytes([127, 0, 0, 1]))
        self.assertIn(3, options)
        self.assertEqual((options[8].address, options[8].srclen), ("127.0.0.0", 24))

    @inlineCallbacks
    def test_edns0_replace_unset_and_revert(self) -> Any:
        server = yield self.serve(" rewrite continue edns0 local replace 0xffee bcde revert\n"
                                  " rewrite edns0 local unset 0xfff0\n")
        query = dns.message.make_query("example.org.", "A", use_edns=0, options=[
            dns.edns.GenericOption(0xFFEE, b"orig"), dns.edns.GenericOption(0xFFF0, b"gone")])
        yield server.query("example.org.", message=query)
        options = {o.otype: o.data for o in self.upstream.queries[-1].options}
        self.assertEqual(options, {0xFFEE: b"bcde"})

    @inlineCallbacks
    def test_cname_target(self) -> Any:
        server = yield self.serve(" rewrite cname regex (.*).cdn.example.net. {1}.other.cdn.com.")
        r = yield server.query("my-app.com.", "A")
        self.assertEqual([rr.rdtype for rr in r.answer], [dns.rdatatype.CNAME, dns.rdatatype.A])
        self.assertEqual(r.answer[0][0].target.to_text(), "my-app.com.other.cdn.com.")
        self.assertEqual((r.answer[1].name.to_text(), r.answer[1][0].address),
                         ("my-app.com.other.cdn.com.", "30.3.1.2"))

    @inlineCallbacks
    def test_answer_rule_that_makes_no_name_is_servfail(self) -> Any:
        # "{1}..bad" makes an empty label: the reply cannot be written, so SERVFAIL and a log line.
        server = yield self.serve(
            " rewrite name regex (.*)\\.example\\.org {1}.example.net"
            " answer name (.*)\\.example\\.net {1}..bad")
        with captured_log() as out:
            r = yield server.query("www.example.org.", "A")
        self.assertEqual(self.asked()[0], "www.example.net.")
        self.assertEqual(r.rcode(), dns.rcode.SERVFAIL)
        self.assertEqual(r.question[0].name.to_text(), "www.example.org.")
        self.assertIn("[ERROR] plugin/rewrite: invalid name after rewrite of the reply", out.getvalue())

    @inlineCallbacks
    def test_invalid_name_after_rewrite_is_servfail(self) -> Any:
        server = yield self.serve(" rewrite name regex (.*) {1}{1}{1}{1}{1}")
        r = yield server.query("a" * 60 + ".b" * 90 + ".", "A")
        self.assertEqual(r.rcode(), dns.rcode.SERVFAIL)
        self.assertEqual(self.upstream.queries, [])


class RewriteSetupTests(unittest.TestCase):
    def test_setup_rows(self) -> None:
        rows = load_setup_rows(DATA / "rewrite" / "setup_cases.json", "rewrite", source_contains="coredns")
        check_setup_rows(self, rows)

    def test_more_errors(self) -> None:
        cases = {
            "rewrite name regex a {1}": "the rewrite regex pattern ({1}) uses more subexpressions",
            "rewrite ttl example.org. 30-10": "invalid TTL '30-10' for a ttl rule",
            "rewrite rcode example.org. FOO 0": "invalid matching RCODE 'FOO' for a rcode rule",
            "rewrite type A B1": 'invalid type "B1"',
            "rewrite class CH": "class rules must have exactly two arguments",
            "rewrite edns0 local set 0xffee 0xzz": "encoding/hex: invalid byte: U+007A 'z'",
            "rewrite edns0 subnet set 33 56": "invalid IPv4 bit mask length 33",
            "rewrite edns0 local set 0xffee {nothing}": 'unsupported variable name "{nothing}"',
            "rewrite foo a b": 'invalid rule type "foo"',
            "rewrite cname fuzzy a b": "unknown cname rewrite type: fuzzy",
            "rewrite name regex foo bar answer name (x bar": "name answer rule for regex rule: invalid regex",
        }
        for text, error in cases.items():
            got = setup_error(text)
            self.assertIsNotNone(got, text)
            self.assertIn(error, got or "", text)
            self.assertTrue((got or "").startswith("plugin/rewrite: "), text)

    @inlineCallbacks
    def test_readme_corefiles(self) -> Any:
        for path in readme_corefiles("rewrite"):
            text = path.read_text()
            if "whoami" not in text:
                text = text.replace("\n}", "\n    whoami\n}", 1)  # an answering plugin, to see the reply
            server = InProcessServer(text)
            yield server.start()
            try:
                r = yield server.query("example.org.", "A", edns=0)
            finally:
                yield server.stop()
            options = {o.otype: o.data for o in r.options}
            expected = {"rewrite_3": {}, "rewrite_4": {0xFFEE: b"abcd"}}.get(path.stem, {0xFFEE: b"abcd"})
            self.assertEqual(options, expected, path.name)
