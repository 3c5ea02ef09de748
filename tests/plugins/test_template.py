"""template over real sockets: regex groups, index, parseInt, var/expr, rcode, ederror,
fallthrough, upstream CNAME resolution through the server, broken templates (SERVFAIL);
CoreDNS's setup table; every README Corefile starts and answers as its README says."""

from __future__ import annotations

from typing import Any

import dns.edns
import dns.rcode
from twisted.internet.defer import inlineCallbacks
from twisted.trial import unittest

from twisted_coredns.metrics import REGISTRY
from twisted_coredns.plugins.template.gotemplate import GoStruct, Template, TemplateError
from twisted_coredns.testing.setup import check_setup_rows, load_setup_rows, setup_error

from .policy_support import DATA, ServerCase, corefiles, doc_corefiles

CORE = """. {
  template IN A example {
    match ^ip-10-(?P<b>[0-9]*)-(?P<c>[0-9]*)-(?P<d>[0-9]*)[.]example[.]$
    match "^ip0a(?P<b>[a-f0-9]{2})(?P<c>[a-f0-9]{2})(?P<d>[a-f0-9]{2})[.]example[.]$"
    answer "{{ .Name }} 60 IN A 10.{{ parseInt .Group.b 16 8 }}.{{ parseInt .Group.c 16 8 }}.{{ \
parseInt .Group.d 16 8 }}"
    fallthrough
  }
  template IN A vars.test {
    match ^(?P<ip>[0-9]{1,3}(-[0-9]{1,3}){3})[.]vars[.]test[.]$
    var ip replace(group('ip'), '-', '.')
    expr "any(['10.0.0.0/8', '192.168.0.0/16'], incidr(ip, #))"
    answer "{{ .Name }} 60 IN A {{ .Var.ip }}"
    fallthrough
  }
  template ANY ANY invalid {
    rcode NXDOMAIN
    authority "invalid. 60 {{ .Class }} SOA ns.invalid. hostmaster.invalid. (1 60 60 60 60)"
    ederror 21 "Blocked according to RFC2606"
  }
  template IN ANY dc.test {
    match "(dc1[.]dc[.]test[.])$"
    rcode NXDOMAIN
    authority "{{ index .Match 1 }} 60 IN SOA ns.{{ index .Match 1 }} hostmaster.{{ index .Match 1 }} \
(1 60 60 60 60)"
  }
  template IN A cname.test {
    answer "{{ .Name }} 60 IN CNAME ip-10-1-2-3.example"
    upstream
  }
  template IN A broken.test {
    answer "{{ .Name }} 60 IN A not-an-address"
  }
  template IN A nofield.test {
    answer "{{ .Name }} 60 IN A {{ .Grup.a }}"
  }
  template IN A strict.test {
    match ^ok[.]
  }
  template IN TXT cache.test {
    match "^(?P<label>[^.]*)[.]cache[.]test[.]$"
    answer "{{ .Name }} 60 IN TXT \\"{{ .Group.label }} {{ .Question }}\\""
  }
  template IN TXT meta.test {
    answer "{{ .Name }} 60 IN TXT \\"{{ .Remote }} {{ .Zone }} {{ .Type }} {{ .Meta \\"view/name\\" }}\\""
  }
  whoami
}
"""


class TemplateTests(ServerCase):
    corefile = CORE

    @inlineCallbacks
    def test_named_groups_and_parse_int(self) -> Any:
        reply = yield self.ask("ip-10-1-2-3.example.")
        self.assertEqual(reply.answer[0].to_text(), "ip-10-1-2-3.example. 60 IN A 10.1.2.3")
        hexed = yield self.ask("ip0a0b0c0d.example.")
        self.assertEqual(hexed.answer[0].to_text(), "ip0a0b0c0d.example. 60 IN A 10.11.12.13")
        self.assertTrue(reply.flags & dns.flags.AA)

    @inlineCallbacks
    def test_fallthrough_to_the_next_plugin(self) -> Any:
        for _ in range(2):  # the second time, the rule remembers that it passes this question
            reply = yield self.ask("nomatch.example.")
            self.assertEqual(reply.rcode(), dns.rcode.NOERROR)
            self.assertEqual(len(reply.additional), 2)  # whoami's
        hexed = yield self.ask("ip0a0b0c0d.example.")
        self.assertEqual(hexed.answer[0].to_text(), "ip0a0b0c0d.example. 60 IN A 10.11.12.13")

    @inlineCallbacks
    def test_var_and_expr(self) -> Any:
        reply = yield self.ask("10-1-2-3.vars.test.")
        self.assertEqual(reply.answer[0].to_text(), "10-1-2-3.vars.test. 60 IN A 10.1.2.3")
        public = yield self.ask("8-8-8-8.vars.test.")
        self.assertEqual(public.answer, [])  # the expr is false: fell through to whoami

    @inlineCallbacks
    def test_rcode_authority_and_ederror(self) -> Any:
        reply = yield self.ask("foo.invalid.", "MX")
        self.assertEqual(reply.rcode(), dns.rcode.NXDOMAIN)
        self.assertIn("invalid. 60 IN SOA ns.invalid. hostmaster.invalid. 1 60 60 60 60",
                      reply.authority[0].to_text())
        ede = [o for o in reply.options if isinstance(o, dns.edns.EDEOption)]
        self.assertEqual((ede[0].code, ede[0].text), (21, "Blocked according to RFC2606"))

    @inlineCallbacks
    def test_index_of_match(self) -> Any:
        reply = yield self.ask("example.dc1.dc.test.", "A")
        self.assertEqual(reply.rcode(), dns.rcode.NXDOMAIN)
        self.assertTrue(reply.authority[0].to_text().startswith("dc1.dc.test. 60 IN SOA ns.dc1.dc.test."))

    @inlineCallbacks
    def test_cname_resolved_through_the_server(self) -> Any:
        reply = yield self.ask("www.cname.test.")
        texts = [r.to_text() for r in reply.answer]
        self.assertEqual(texts, ["www.cname.test. 60 IN CNAME ip-10-1-2-3.example.",
                                 "ip-10-1-2-3.example. 60 IN A 10.1.2.3"])

    @inlineCallbacks
    def test_bad_record_and_bad_field_are_servfail(self) -> Any:
        for name in ("x.broken.test.", "x.nofield.test."):
            reply = yield self.ask(name)
            self.assertEqual(reply.rcode(), dns.rcode.SERVFAIL, name)

    @inlineCallbacks
    def test_no_match_without_fallthrough_is_servfail(self) -> Any:
        reply = yield self.ask("no.strict.test.")
        self.assertEqual(reply.rcode(), dns.rcode.SERVFAIL)

    @inlineCallbacks
    def test_rendered_records_are_remembered_per_question(self) -> Any:
        # The cache.test template reads only what the question decides, so its records are
        # rendered once per question as asked; the match is still counted each time.
        handler = next(h for h in self.server.instance.blocks[0].handlers if h.name == "template")
        rule = next(r for r in handler.rules if "cache.test." in r.zones.zones)
        self.assertIsNotNone(rule.rendered)
        def matched() -> float:
            return sum(sample.value for metric in REGISTRY.collect()
                       if metric.name == "coredns_template_matches" for sample in metric.samples
                       if sample.name.endswith("_total") and sample.labels["zone"] == "cache.test.")

        before = matched()
        texts = []
        for name in ("a.cache.test.", "a.cache.test.", "A.Cache.test.", "b.cache.test."):
            reply = yield self.ask(name, "TXT")
            texts.append((reply.answer[0].name.to_text(), reply.answer[0][0].strings))
        self.assertEqual(texts, [
            ("a.cache.test.", (b"a {a.cache.test. IN TXT}",)),
            ("a.cache.test.", (b"a {a.cache.test. IN TXT}",)),
            ("a.cache.test.", (b"a {A.Cache.test. IN TXT}",)),
            ("b.cache.test.", (b"b {b.cache.test. IN TXT}",)),
        ])
        self.assertEqual(len(rule.rendered), 3)
        self.assertEqual(matched(), before + 4)

    @inlineCallbacks
    def test_remote_zone_type(self) -> Any:
        reply = yield self.ask("x.meta.test.", "TXT")
        self.assertEqual(reply.answer[0][0].strings, (b"127.0.0.1 meta.test. TXT ",))


class TemplateReadmeTests(ServerCase):
    corefile = ". {\n whoami\n}\n"

    @inlineCallbacks
    def test_readme_corefiles_start(self) -> Any:
        files = corefiles("template")
        self.assertEqual(len(files), 11)
        for path in files:
            yield self.starts(path)

    @inlineCallbacks
    def test_readme_5_answers_both_ways(self) -> Any:
        from twisted_coredns.testing import InProcessServer

        server = InProcessServer((DATA / "template" / "template_5.corefile").read_text())
        yield server.start()
        try:
            a = yield server.query("ip-10-0-0-1.example.", "A")
            ptr = yield server.query("1.0.0.10.in-addr.arpa.", "PTR")
        finally:
            yield server.stop()
        self.assertEqual(a.answer[0].to_text(), "ip-10-0-0-1.example. 60 IN A 10.0.0.1")
        self.assertEqual(ptr.answer[0].to_text(), "1.0.0.10.in-addr.arpa. 60 IN PTR ip-10-0-0-1.example.")


class TemplateDocTests(ServerCase):
    """The examples of docs/plugins/template.md start and answer as the page says."""

    corefile = ". {\n whoami\n}\n"

    @inlineCallbacks
    def serve(self, index: int) -> Any:
        from twisted_coredns.testing import InProcessServer

        server = InProcessServer(doc_corefiles("template")[index])
        yield server.start()
        self.addCleanup(server.stop)
        return server

    @inlineCallbacks
    def test_examples_start(self) -> Any:
        examples = doc_corefiles("template")
        self.assertEqual(len(examples), 6)
        for text in examples:
            yield self.starts(text)

    @inlineCallbacks
    def test_nxdomain_examples(self) -> Any:
        everything = yield self.serve(0)
        reply = yield everything.query("www.example.org.", "MX")
        self.assertEqual(reply.rcode(), dns.rcode.NXDOMAIN)
        invalid = yield self.serve(1)
        reply = yield invalid.query("foo.invalid.", "A")
        self.assertEqual(reply.rcode(), dns.rcode.NXDOMAIN)
        ede = [o for o in reply.options if isinstance(o, dns.edns.EDEOption)]
        self.assertEqual((ede[0].code, ede[0].text), (21, "Blocked according to RFC2606"))

    @inlineCallbacks
    def test_addresses_in_names(self) -> Any:
        server = yield self.serve(2)
        a = yield server.query("ip-10-1-2-3.example.", "A")
        ptr = yield server.query("3.2.1.10.in-addr.arpa.", "PTR")
        other = yield server.query("www.example.", "A")
        self.assertEqual(a.answer[0].to_text(), "ip-10-1-2-3.example. 60 IN A 10.1.2.3")
        self.assertEqual(ptr.answer[0].to_text(), "3.2.1.10.in-addr.arpa. 60 IN PTR ip-10-1-2-3.example.")
        self.assertEqual((other.answer, len(other.additional)), ([], 2))  # whoami's
        hexed_server = yield self.serve(3)
        hexed = yield hexed_server.query("ip0a010203.example.", "A")
        self.assertEqual(hexed.answer[0].to_text(), "ip0a010203.example. 60 IN A 10.1.2.3")

    @inlineCallbacks
    def test_private_addresses_only(self) -> Any:
        server = yield self.serve(4)
        private = yield server.query("10-1-2-3.device.example.com.", "A")
        public = yield server.query("8-8-8-8.device.example.com.", "A")
        self.assertEqual(private.answer[0].to_text(), "10-1-2-3.device.example.com. 60 IN A 10.1.2.3")
        self.assertEqual((public.answer, len(public.additional)), ([], 2))  # fell through to whoami

    @inlineCallbacks
    def test_cname_filled_in(self) -> Any:
        server = yield self.serve(5)
        reply = yield server.query("www.example.test.", "A")
        self.assertEqual([r.to_text() for r in reply.answer],
                         ["www.example.test. 60 IN CNAME web.example.test.",
                          "web.example.test. 3600 IN A 192.0.2.80"])


class TemplateSetupTests(unittest.TestCase):
    def test_coredns_setup_rows(self) -> None:
        rows = load_setup_rows(DATA / "template" / "setup_cases.json")
        self.assertEqual(check_setup_rows(self, rows, error_prefix="plugin/template: "), 53)

    def test_error_texts(self) -> None:
        cases = {
            "template X A": "Corefile:2 - Error during parsing: invalid query class X",
            "template IN X": "Corefile:2 - Error during parsing: invalid RR class X",
            "template IN A {\n rcode BOGUS\n}": "Corefile:3 - Error during parsing: unknown rcode BOGUS",
            "template IN A {\n answer \"{{ nope }}\"\n}":
                'Corefile:3 - Error during parsing: could not compile template: answer, '
                'template: answer:1: function "nope" not defined',
            "template IN A {\n match (\n}":
                "Corefile:3 - Error during parsing: could not parse regex: (, "
                "error parsing regexp: missing closing ): `(`",
        }
        for text, error in cases.items():
            self.assertEqual(setup_error(text), "plugin/template: " + error)


class GoTemplateTests(unittest.TestCase):
    def test_subset(self) -> None:
        data = GoStruct({"Name": "a.", "Group": {"x": "1"}, "Match": ["m0", "m1"]},
                        {"Meta": lambda k: k.upper()})
        cases = {
            "{{ .Name }}": "a.", "{{ .Group.x }}{{ .Group.y }}": "1<no value>", "{{ index .Match 1 }}": "m1",
            '{{ .Meta "v/n" }}': "V/N", '{{ if eq .Name "a." }}y{{ else }}n{{ end }}': "y",
            "{{ .Name | printf \"%s!\" }}": "a.!", "x {{- .Name -}} y": "xa.y",
            "{{ range .Match }}[{{ . }}]{{ end }}": "[m0][m1]",
        }
        for text, want in cases.items():
            self.assertEqual(Template("answer", text).execute(data), want, text)
        for bad in ("{{", "{{ nope }}", "{{ if .Name }}"):
            self.assertRaises(TemplateError, Template, "answer", bad)

    def test_root_fields(self) -> None:
        # What a template reads of its data decides whether its output can be remembered.
        cases = {
            "{{ .Name }} 60 IN A 10.0.0.1": {"Name"},
            '{{ .Name }} IN TXT "{{ $.Group.x }} {{ index .Match 1 | printf "%s" }}"':
                {"Name", "Group", "Match"},
            "{{ with .Remote }}{{ . }}{{ end }}": {"Remote"},
            '{{ if .Name }}{{ .Zone }}{{ else }}{{ .Meta "a/b" }}{{ end }}': {"Name", "Zone", "Meta"},
            "{{ range .Match }}{{ . }}{{ end }}": {"Match"},
            "{{ . }}": None, '{{ printf "%v" $ }}': None, "{{ if .Name }}{{ . }}{{ end }}": None,
        }
        for text, want in cases.items():
            self.assertEqual(Template("answer", text).root_fields(), want, text)

    def test_remote_and_var_rules_render_every_query(self) -> None:
        from twisted_coredns.testing import make_request, run_setup

        handler = run_setup('template IN TXT example.org {\n'
                            '  answer "{{ .Name }} 60 IN TXT {{ .Remote }}"\n}\n'
                            "template IN A example.org {\n  var v client_ip()\n"
                            '  answer "{{ .Name }} 60 IN A {{ .Var.v }}"\n}').handler
        assert handler is not None
        self.assertEqual([r.rendered for r in handler.rules], [None, None])
        for ip in ("127.0.0.1", "127.0.0.2"):
            for rdtype in ("TXT", "A"):
                response = handler.serve(make_request("www.example.org.", rdtype, remote=(ip, 53)))
                self.assertIn(ip, response.message().answer[0].to_text())
