"""The log plugin: its Corefile syntax (CoreDNS's setup rows), the replacer's placeholders, and the
lines real servers print for real queries."""

from __future__ import annotations

import socket
from collections.abc import Mapping
from typing import Any

import dns.flags
import dns.message
import dns.opcode
import dns.rcode
import dns.rrset
from twisted.internet.defer import inlineCallbacks
from twisted.trial.unittest import SkipTest, SynchronousTestCase, TestCase

from twisted_coredns.corefile import CorefileError
from twisted_coredns.dns.classify import typify_wire
from twisted_coredns.instance import build
from twisted_coredns.plugins.log.handler import Logger
from twisted_coredns.plugins.log.replacer import (
    COMBINED_LOG_FORMAT,
    COMMON_LOG_FORMAT,
    LABELS,
    Recorded,
    Replacer,
    go_seconds,
    parse_format,
    rcode_text,
    rflags_text,
)
from twisted_coredns.request import Request
from twisted_coredns.response import Response
from twisted_coredns.testing import InProcessServer, SubprocessServer, make_query, make_request
from twisted_coredns.testing.setup import SetupResult, check_setup_rows, load_setup_rows

from .logerr_support import DATA, LogCapture, answers_registry

FORMATS = {"{common}": COMMON_LOG_FORMAT, "{combined}": COMBINED_LOG_FORMAT}
DURATION = r"(0|[1-9][0-9]*)(\.[0-9]*[1-9])?s"  # Go's 'f', -1 form: never an exponent, no trailing 0


def _expand(fmt: str) -> str:
    for short, full in FORMATS.items():
        fmt = fmt.replace(short, full)
    return fmt


def _logger(instance: Any) -> Logger:
    for handler in instance.blocks[0].handlers:
        if isinstance(handler, Logger):
            return handler
    raise AssertionError("no log handler in the chain")


# -- setup ---------------------------------------------------------------------------------------


class SetupTests(SynchronousTestCase):
    def test_coredns_rows(self) -> None:
        """CoreDNS's TestLogParse: every row errs or not as in CoreDNS, with the same rules."""
        rows = load_setup_rows(DATA / "log_setup_cases.json", source_contains="coredns/coredns @4b26cce")
        self.assertEqual(len(rows), 21)

        def same_rules(row: Mapping[str, Any], result: SetupResult) -> None:
            got = [(r.scope, r.format, sorted(r.classes)) for r in _logger(result.instance).rules]
            want = [(scope, _expand(fmt), classes) for scope, fmt, classes in row["rules"]]
            self.assertEqual(got, want, row["input"])

        check_setup_rows(
            self, rows, registry=answers_registry(), check=same_rules, error_prefix="plugin/log: "
        )

    def _error(self, body: str) -> str:
        with self.assertRaises(CorefileError, msg=body) as caught:
            build(". {\n" + body + "\n}\n")
        return str(caught.exception)

    def test_error_texts(self) -> None:
        self.assertEqual(
            self._error("log {\n unknown\n}"),
            "plugin/log: Corefile:3 - Error during parsing: unknown property 'unknown'",
        )
        self.assertEqual(
            self._error("log {\n class abracadabra\n}"), "plugin/log: invalid Class: abracadabra"
        )
        self.assertEqual(
            self._error("log {\n class\n}"),
            "plugin/log: Corefile:3 - Error during parsing: "
            "Wrong argument count or unexpected line ending after 'class'",
        )
        self.assertEqual(
            self._error("log . {\n class denial\n}\nlog {\n format x\n}"),
            "plugin/log: Corefile:6 - Error during parsing: unknown property 'format'",
        )

    def test_one_argument_is_a_name(self) -> None:
        # CoreDNS: with one argument it is a name, even when it looks like a format.
        rules = _logger(build(". {\n log {combined}\n}\n")).rules
        self.assertEqual([(r.scope, r.format) for r in rules], [("{combined}.", COMMON_LOG_FORMAT)])
        # With two, the last one is the format when it has a brace, else a name.
        rules = _logger(build(". {\n log example.org {combined}\n}\n")).rules
        self.assertEqual([(r.scope, r.format) for r in rules], [("example.org.", COMBINED_LOG_FORMAT)])
        rules = _logger(build(". {\n log example.org example.net\n}\n")).rules
        self.assertEqual([r.scope for r in rules], ["example.org.", "example.net."])

    def test_names_are_fully_qualified(self) -> None:
        rules = _logger(build(". {\n log Example.ORG a\\. b\\\\. {name}\n}\n")).rules
        self.assertEqual([r.scope for r in rules], ["Example.ORG.", "a\\..", "b\\\\."])
        self.assertTrue(rules[0].matches("www.example.org."))

    def test_readme_corefiles_start(self) -> None:
        """Every Corefile of CoreDNS's log README sets up (and the ones with whoami answer)."""
        files = sorted((DATA / "readme_corefiles").glob("log_*.corefile"))
        self.assertEqual(len(files), 7)
        for path in files:
            try:
                build(path.read_text(encoding="utf-8"), path.name, dns_port=0)
            except CorefileError as exc:
                self.fail(f"{path.name}: {exc}")


# -- the replacer --------------------------------------------------------------------------------


def _request(**kw: Any) -> Request:
    """CoreDNS's replacer test request: example.org. HINFO, id 1053, AD and CD set, from
    10.240.0.1:40212 to 127.0.0.1."""
    q = make_query("example.org.", "HINFO", **kw)
    q.id = 1053
    q.flags |= dns.flags.AD | dns.flags.CD
    return Request(q.to_wire(), ("10.240.0.1", 40212), "udp", ("127.0.0.1", 53))


class ParseFormatTests(SynchronousTestCase):
    L, B, M = "literal", "label", "metadata"

    def test_coredns_table(self) -> None:
        """CoreDNS's TestParseFormat, node for node."""
        L, B, M = self.L, self.B, self.M
        table = [
            ("", []),
            ("A", [(L, "A")]),
            ("A {A}", [(L, "A {A}")]),
            ("{{remote}}", [(L, "{"), (B, "{remote}"), (L, "}")]),
            ("{ A {remote} A }", [(L, "{ A "), (B, "{remote}"), (L, " A }")]),
            ("{remote}}", [(B, "{remote}"), (L, "}")]),
            ("{{remote}", [(L, "{"), (B, "{remote}")]),
            ("Foo } {remote}", [(L, "Foo }"), (L, " "), (B, "{remote}")]),
            ("{ Foo", [(L, "{ Foo")]),
            ("} Foo", [(L, "}"), (L, " Foo")]),
            (
                "A { {remote} {type} {/meta1} } B",
                [
                    (L, "A { "),
                    (B, "{remote}"),
                    (L, " "),
                    (B, "{type}"),
                    (L, " "),
                    (M, "meta1"),
                    (L, " }"),
                    (L, " B"),
                ],
            ),
        ]
        for fmt, want in table:
            self.assertEqual(parse_format(fmt), want, fmt)

    def test_long_format(self) -> None:
        L, B, M = self.L, self.B, self.M
        fmt = (
            'LOG {remote}:{port} - {>id} "{type} {class} {name} {proto} {size} {>do} {>bufsize}" '
            "{rcode} {>rflags} {rsize} {/meta1}-{/meta2} {duration} END OF LINE"
        )
        want = [
            (L, "LOG "),
            (B, "{remote}"),
            (L, ":"),
            (B, "{port}"),
            (L, " - "),
            (B, "{>id}"),
            (L, ' "'),
            (B, "{type}"),
            (L, " "),
            (B, "{class}"),
            (L, " "),
            (B, "{name}"),
            (L, " "),
            (B, "{proto}"),
            (L, " "),
            (B, "{size}"),
            (L, " "),
            (B, "{>do}"),
            (L, " "),
            (B, "{>bufsize}"),
            (L, '" '),
            (B, "{rcode}"),
            (L, " "),
            (B, "{>rflags}"),
            (L, " "),
            (B, "{rsize}"),
            (L, " "),
            (M, "meta1"),
            (L, "-"),
            (M, "meta2"),
            (L, " "),
            (B, "{duration}"),
            (L, " END OF LINE"),
        ]
        self.assertEqual(parse_format(fmt), want)

    def test_nodes_join_back(self) -> None:
        """CoreDNS's TestParseFormatNodes: the nodes give back the format."""
        for fmt in [
            "",
            "msg",
            "{remote}",
            "{{remote}",
            "{{remote}}",
            "{{remote}} A",
            COMMON_LOG_FORMAT,
            COMMON_LOG_FORMAT + " FOO} {BAR}",
            "A " + COMMON_LOG_FORMAT + " FOO} {BAR}",
            "A " + COMMON_LOG_FORMAT + " {/meta}",
        ]:
            joined = "".join("{/" + v + "}" if k == self.M else v for k, v in parse_format(fmt))
            self.assertEqual(joined, fmt)


class ReplacerTests(SynchronousTestCase):
    def test_labels(self) -> None:
        """CoreDNS's TestLabels: every placeholder's value for a written reply."""
        req = _request()
        # The recorder saw the query itself written back (CoreDNS's test does that): NOERROR, 29 bytes.
        rec = Recorded(0, req.flags, len(req.wire), req.start)
        expect = {
            "{type}": "HINFO",
            "{name}": "example.org.",
            "{class}": "IN",
            "{proto}": "udp",
            "{size}": "29",
            "{remote}": "10.240.0.1",
            "{port}": "40212",
            "{local}": "127.0.0.1",
            "{>id}": "1053",
            "{>opcode}": "0",
            "{>do}": "false",
            "{>bufsize}": "512",
            "{rcode}": "NOERROR",
            "{rsize}": "29",
            "{>rflags}": "rd,ad,cd",
        }
        self.assertEqual(set(expect) | {"{duration}"}, set(LABELS))
        for label, want in expect.items():
            self.assertEqual(Replacer(label).replace(req, rec), want, label)
        self.assertRegex(Replacer("{duration}").replace(req, rec), "^" + DURATION + "$")

    def test_no_reply_written(self) -> None:
        """CoreDNS's TestNoResponseWasWritten: no message, so rcode and flags are '-'."""
        req = _request()
        rec = Recorded(None, None, 0, req.start)
        self.assertEqual(Replacer("{rcode} {rsize} {>rflags}").replace(req, rec), "- 0 -")
        self.assertEqual(Replacer("{type} {>id}").replace(req, rec), "HINFO 1053")

    def test_no_recorder(self) -> None:
        req = _request()
        self.assertEqual(Replacer("{rcode}|{rsize}|{duration}|{>rflags}").replace(req, None), "-|-|-|-")

    def test_edns_and_tcp(self) -> None:
        q = make_query("Example.ORG.", "AAAA", edns=True, payload=4096, want_dnssec=True)
        req = Request(q.to_wire(), ("::1", 5300), "tcp", ("::1", 53))
        out = Replacer("{remote}:{port} {local} {name} {>do} {>bufsize} {proto} {type}").replace(req)
        self.assertEqual(out, "[::1]:5300 [::1] example.org. true 65535 tcp AAAA")
        udp = Request(q.to_wire(), ("192.0.2.9", 1), "udp")
        self.assertEqual(Replacer("{>bufsize} {size}").replace(udp), f"4096 {len(q.to_wire())}")
        self.assertEqual(Replacer("{local}").replace(udp), "-")

    def test_opcode_and_unknown_types(self) -> None:
        q = make_query("example.org.", 65280)
        q.set_opcode(dns.opcode.NOTIFY)
        req = Request(q.to_wire())
        self.assertEqual(Replacer("{>opcode} {type} {class}").replace(req), "4 TYPE65280 IN")
        ch = Request(make_query("version.bind.", "TXT", "CH").to_wire())
        self.assertEqual(Replacer("{class}").replace(ch), "CH")

    def test_metadata(self) -> None:
        """CoreDNS's TestMetadataReplacement and TestMetadataMalformed."""
        req = _request()
        req.set_metadata("test/meta2", lambda: "two")
        req.set_metadata("test/meta3", "three")
        table = [
            ("{/test/meta2}", "two"),
            ("{/test/meta2} {/test/key4}", "two -"),
            ("{/test/meta2} {/test/meta3}", "two three"),
            ("{/test/meta2", "{/test/meta2"),
            ("{test/meta2} {/test/meta4}", "{test/meta2} -"),
            ("{test}", "{test}"),
            ("{/}", "-"),
        ]
        for fmt, want in table:
            self.assertEqual(Replacer(fmt).replace(req, None), want, fmt)

    def test_literal_braces_and_quotes(self) -> None:
        req = _request()
        fmt = 'x{ "\\n" {{type}} } {a}b \\ {name}'
        self.assertEqual(Replacer(fmt).replace(req), 'x{ "\\n" {HINFO} } {a}b \\ example.org.')

    def test_rcode_names(self) -> None:
        table = {
            0: "NOERROR",
            2: "SERVFAIL",
            3: "NXDOMAIN",
            5: "REFUSED",
            9: "NOTAUTH",
            16: "BADSIG",
            23: "BADCOOKIE",
            11: "11",
            24: "24",
        }
        for rcode, want in table.items():
            self.assertEqual(rcode_text(rcode), want)

    def test_flags(self) -> None:
        self.assertEqual(rflags_text(0xFFFF), "qr,aa,tc,rd,ra,z,ad,cd")
        self.assertEqual(rflags_text(0x8180), "qr,rd,ra")
        self.assertEqual(rflags_text(0), "")

    def test_go_seconds(self) -> None:
        """{duration} is Go's strconv.FormatFloat(secs, 'f', -1, 64) + "s"."""
        table = [
            (0.0, "0s"),
            (0.00003799, "0.00003799s"),
            (0.000037990, "0.00003799s"),
            (1e-9, "0.000000001s"),
            (0.25, "0.25s"),
            (1.0, "1s"),
            (2.5, "2.5s"),
            (12.000000001, "12.000000001s"),
            (1e7, "10000000s"),
        ]
        for secs, want in table:
            self.assertEqual(go_seconds(secs), want, secs)


class ClassifyTests(SynchronousTestCase):
    """response.Typify on wire replies (the class filter's input)."""

    def _typify(
        self, name: str, rcode: int = 0, authority: str = "", answer: bool = False, opcode: int = 0
    ) -> str:
        q = make_query(name, "A")
        r = dns.message.make_response(q)
        r.set_rcode(dns.rcode.Rcode(rcode))
        r.set_opcode(dns.opcode.Opcode(opcode))
        if answer:
            r.answer.append(dns.rrset.from_text(name, 60, "IN", "A", "192.0.2.1"))
        if authority == "SOA":
            r.authority.append(dns.rrset.from_text("org.", 60, "IN", "SOA", "a. b. 1 2 3 4 5"))
        elif authority == "NS":
            r.authority.append(dns.rrset.from_text(name, 60, "IN", "NS", "ns.example."))
        return typify_wire(r.to_wire(), 1, rcode)

    def test_types(self) -> None:
        self.assertEqual(self._typify("a.org.", answer=True), "NOERROR")
        self.assertEqual(self._typify("a.org.", rcode=3, answer=True), "OTHERERROR")
        self.assertEqual(self._typify("a.org.", authority="SOA"), "NODATA")
        self.assertEqual(self._typify("a.org.", rcode=3), "NXDOMAIN")
        self.assertEqual(self._typify("a.org.", rcode=3, authority="SOA"), "NXDOMAIN")
        self.assertEqual(self._typify("a.org.", rcode=2), "SERVERERROR")
        self.assertEqual(self._typify("a.org.", rcode=4), "SERVERERROR")
        self.assertEqual(self._typify("a.org.", authority="NS"), "DELEGATION")
        self.assertEqual(self._typify("a.org."), "NOERROR")
        self.assertEqual(self._typify("a.org.", rcode=5), "OTHERERROR")
        self.assertEqual(self._typify("a.org.", opcode=5), "UPDATE")
        self.assertEqual(self._typify("a.org.", opcode=4), "META")
        self.assertEqual(typify_wire(b"\x00", 1), "OTHERERROR")

    def test_expired_signature_with_do(self) -> None:
        q = make_query("a.org.", "A", edns=True, want_dnssec=True)
        r = dns.message.make_response(q)
        r.use_edns(0, dns.flags.DO, 1232)
        r.answer.append(dns.rrset.from_text("a.org.", 60, "IN", "A", "192.0.2.1"))
        sig = "A 8 2 60 20000102000000 20000101000000 1 a.org. AAAA"
        r.answer.append(dns.rrset.from_text("a.org.", 60, "IN", "RRSIG", sig))
        self.assertEqual(typify_wire(r.to_wire(), 1, 0), "OTHERERROR")
        self.assertEqual(typify_wire(r.to_wire(), 1, 0, now=946_700_000), "NOERROR")
        # Without DO in the reply, signatures are not looked at.
        r.use_edns(0, 0, 1232)
        self.assertEqual(typify_wire(r.to_wire(), 1, 0), "NOERROR")


# -- real servers --------------------------------------------------------------------------------


class LogServerTests(TestCase):
    """Real queries to real servers; the log lines captured from twisted.logger."""

    @inlineCallbacks
    def serve(self, corefile: str, host: str = "127.0.0.1") -> Any:
        server = InProcessServer(corefile, registry=answers_registry(), host=host)
        yield server.start()
        self.addCleanup(server.stop)
        self.server = server
        self.log = LogCapture(self, "log")
        return server

    @inlineCallbacks
    def ask(self, name: str, rdtype: str = "A", **kw: Any) -> Any:
        q = make_query(
            name, rdtype, **{k: v for k, v in kw.items() if k in ("edns", "payload", "want_dnssec")}
        )
        reply = yield self.server.query(
            name, rdtype, message=q, tcp=kw.get("tcp", False), host=kw.get("host", "127.0.0.1")
        )
        return q, reply

    @inlineCallbacks
    def test_default_line(self) -> Any:
        """``log`` prints CoreDNS's Common Log Format line, field by field."""
        yield self.serve(". {\n log\n whoami\n}\n")
        q, reply = yield self.ask("example.org.")
        self.assertEqual(reply.rcode(), dns.rcode.NOERROR)
        [(level, line)] = self.log.lines()
        self.assertEqual(level, "INFO")
        size = len(q.to_wire())
        self.assertRegex(
            line,
            r"^127\.0\.0\.1:\d+ - " + str(q.id) + f' "A IN example.org. udp {size} false 512" '
            r"NOERROR qr,aa,rd 69 " + DURATION + "$",
        )

    @inlineCallbacks
    def test_default_line_edns_tcp_and_case(self) -> Any:
        yield self.serve(". {\n log\n answers\n}\n")
        q, _reply = yield self.ask(
            "WWW.Example.ORG.", "AAAA", edns=True, payload=4096, want_dnssec=True, tcp=True
        )
        [line] = self.log.texts()
        self.assertIn(
            f' - {q.id} "AAAA IN www.example.org. tcp {len(q.to_wire())} true 65535" NOERROR qr,aa,rd ', line
        )

    @inlineCallbacks
    def test_custom_format_and_shortcuts(self) -> Any:
        yield self.serve(
            ". {\n"
            ' log a.example "{proto} Request: {name} {type} {>id}"\n'
            " log b.example {combined}\n"
            ' log c.example "{common} extra"\n'
            " answers\n}\n"
        )
        qa, _ = yield self.ask("a.example.")
        qb, _ = yield self.ask("b.example.")
        qc, _ = yield self.ask("x.c.example.")
        a, b, c = self.log.texts()
        self.assertEqual(a, f"udp Request: a.example. A {qa.id}")
        self.assertRegex(
            b,
            f' - {qb.id} "A IN b.example. udp {len(qb.to_wire())} false 512" '
            r"NOERROR qr,aa,rd \d+ " + DURATION + ' "0"$',
        )
        self.assertRegex(c, f' - {qc.id} "A IN x.c.example. udp .* ' + DURATION + " extra$")

    @inlineCallbacks
    def test_names_first_matching_rule_decides(self) -> Any:
        yield self.serve(
            ". {\n"
            ' log example.org "first {name}" {\n class denial\n }\n'
            ' log example.org example.net "second {name}"\n'
            " answers\n}\n"
        )
        yield self.ask("www.example.org.")  # matches the first rule, which drops success
        yield self.ask("nxdomain.Example.Org.")
        yield self.ask("www.example.net.")
        yield self.ask("example.com.")  # no rule: not logged
        yield self.ask("notexample.org.")  # not below example.org
        self.assertEqual(self.log.texts(), ["first nxdomain.example.org.", "second www.example.net."])

    @inlineCallbacks
    def test_one_argument_name_that_looks_like_a_format(self) -> Any:
        yield self.serve(". {\n log {combined}\n answers\n}\n")
        yield self.ask("example.org.")
        self.assertEqual(self.log.texts(), [])

    @inlineCallbacks
    def test_class_filters(self) -> Any:
        """Each class keeps exactly its replies; ``all`` (or none) keeps every one; OR-ed lines."""
        names = ["ok.t.", "nxdomain.t.", "nodata.t.", "deleg.t.", "servfail.t.", "refused.t."]
        cases = {
            "class success": ["ok.t.", "deleg.t."],
            "class denial": ["nxdomain.t.", "nodata.t."],
            "class error": ["servfail.t.", "refused.t."],
            "class denial error": ["nxdomain.t.", "nodata.t.", "servfail.t.", "refused.t."],
            "class denial\n class success": ["ok.t.", "nxdomain.t.", "nodata.t.", "deleg.t."],
            "class all denial": names,
            "": names,
        }
        for block, want in cases.items():
            server = InProcessServer(
                f'. {{\n log . "{{name}}" {{\n {block}\n }}\n answers\n}}\n', registry=answers_registry()
            )
            yield server.start()
            self.server = server
            log = LogCapture(self, "log")
            try:
                for name in names:
                    yield self.ask(name)
            finally:
                yield server.stop()
            self.assertEqual(log.texts(), want, block)

    @inlineCallbacks
    def test_not_written_rcodes_show_the_servers_reply(self) -> Any:
        yield self.serve(". {\n log\n answers\n}\n")
        q, reply = yield self.ask("servfail.example.org.")
        self.assertEqual(reply.rcode(), dns.rcode.SERVFAIL)
        yield self.ask("refused.example.org.", edns=True)
        servfail, refused = self.log.texts()
        # CoreDNS logs the bare reply it writes for them: the question only, QR and RD.
        question = 12 + len("servfail.example.org.") + 1 + 4
        self.assertRegex(
            servfail, f' - {q.id} "A IN servfail.example.org. udp .*" SERVFAIL qr,rd {question} '
        )
        self.assertRegex(refused, r'" REFUSED qr,rd \d+ ')

    @inlineCallbacks
    def test_no_next_plugin(self) -> Any:
        yield self.serve(". {\n log\n}\n")
        _q, reply = yield self.ask("example.org.")
        self.assertEqual(reply.rcode(), dns.rcode.SERVFAIL)
        [line] = self.log.texts()
        self.assertIn('" SERVFAIL qr,rd ', line)

    @inlineCallbacks
    def test_crash_and_async_replies(self) -> Any:
        yield self.serve('. {\n log . "{name} {rcode}"\n answers\n}\n')
        _q, reply = yield self.ask("crash.example.")
        self.assertEqual(reply.rcode(), dns.rcode.SERVFAIL)
        _q, reply = yield self.ask("slow.example.")
        self.assertEqual(reply.rcode(), dns.rcode.NOERROR)
        _q, reply = yield self.ask("slowcrash.example.")
        self.assertEqual(reply.rcode(), dns.rcode.SERVFAIL)
        self.assertEqual(
            self.log.texts(),
            ["crash.example. SERVFAIL", "slow.example. NOERROR", "slowcrash.example. SERVFAIL"],
        )
        self.flushLoggedErrors(RuntimeError, ValueError)

    @inlineCallbacks
    def test_metadata(self) -> Any:
        yield self.serve(
            '. {\n log . "{/test/key} {/test/func} {/log/class} {/log/type} {/nothing}"\n answers\n}\n'
        )
        yield self.ask("meta.example.")
        yield self.ask("example.")  # no metadata at all: every label is "-"
        self.assertEqual(self.log.texts(), ["value computed success NOERROR -", "- - - - -"])

    @inlineCallbacks
    def test_ipv6_client_in_brackets(self) -> Any:
        try:
            with socket.socket(socket.AF_INET6, socket.SOCK_DGRAM) as s:
                s.bind(("::1", 0))
        except OSError:
            raise SkipTest("no IPv6 loopback here") from None
        yield self.serve('. {\n log . "{remote} {local} {port}"\n answers\n}\n', host="::1")
        yield self.ask("example.", host="::1")
        [line] = self.log.texts()
        self.assertRegex(line, r"^\[::1\] \[::1\] \d+$")

    @inlineCallbacks
    def test_several_blocks(self) -> Any:
        yield self.serve('a. {\n log . "A {name}"\n answers\n}\nb. {\n answers\n}\n')
        yield self.ask("x.a.")
        yield self.ask("x.b.")
        self.assertEqual(self.log.texts(), ["A x.a."])


class HotPathTests(SynchronousTestCase):
    """The synchronous path makes no Deferred, and a line is formatted only when it is logged."""

    def test_sync_answer_is_a_response(self) -> None:
        instance = build(". {\n log\n answers\n}\n", registry=answers_registry())
        log = LogCapture(self, "log")
        first: Any = instance.blocks[0].handlers[0]
        result = first.serve(make_request("example.org."))
        self.assertIs(type(result), Response)
        self.assertEqual(len(log.texts()), 1)

    def test_unlogged_queries_are_not_formatted(self) -> None:
        instance = build(
            ". {\n log example.org {\n class denial\n }\n answers\n}\n", registry=answers_registry()
        )
        logger = _logger(instance)
        calls: list[Any] = []
        rule = logger.rules[0]
        real = rule.replacer.replace

        def counting(req: Request, rec: Recorded | None = None) -> str:
            calls.append(req)
            return real(req, rec)

        rule.replacer.replace = counting
        LogCapture(self, "log")
        logger.serve(make_request("www.example.org."))  # success: filtered out
        logger.serve(make_request("www.example.net."))  # no rule
        self.assertEqual(calls, [])
        logger.serve(make_request("nxdomain.example.org."))
        self.assertEqual(len(calls), 1)


class SubprocessLogTests(SynchronousTestCase):
    """The line a ``twisted-coredns`` process prints on standard output."""

    def test_stdout_line(self) -> None:
        server = SubprocessServer(". {\n whoami\n log\n}\n")
        self.addCleanup(server.__exit__)
        try:
            server.start()
        except RuntimeError as exc:
            self.fail(str(exc))
        q = make_query("example.org.", "A", edns=True, payload=4096)
        server.query("example.org.", message=q)
        output = server.wait_for_log('"A IN example.org. udp')
        lines = [line for line in output.splitlines() if '"A IN example.org.' in line]
        self.assertEqual(len(lines), 1, output)
        self.assertRegex(
            lines[0],
            r"^\[INFO\] 127\.0\.0\.1:\d+ - "
            + str(q.id)
            + f' "A IN example.org. udp {len(q.to_wire())} false 4096" '
            r"NOERROR qr,aa,rd 80 " + DURATION + "$",
        )
