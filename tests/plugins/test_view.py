"""view over real sockets: blocks serving one zone chosen by expression, in Corefile order;
metadata (view/name in log's {/view/name}); bad expressions are Corefile errors with the line;
the README Corefiles start and the split-DNS one answers as its README says."""

from __future__ import annotations

from typing import Any

from twisted.internet.defer import inlineCallbacks
from twisted.trial import unittest

from twisted_coredns.plugins.view.expression import (
    ExprError,
    Scope,
    compile_expression,
    default_environment,
)
from twisted_coredns.plugins.view.handler import View
from twisted_coredns.testing import make_request
from twisted_coredns.testing.setup import setup_error

from .policy_support import DATA, ServerCase, corefiles, doc_corefiles

CORE = """. {
  view lo {
    expr incidr(client_ip(), '127.0.0.0/24') && type() in ['A', 'AAAA'] && proto() == 'udp'
  }
  hosts {
    1.1.1.1 test
  }
}
. {
  view named {
    expr name() matches '^abc\\\\..*\\\\.example\\\\.com\\\\.$'
  }
  hosts {
    4.4.4.4 abc.x.example.com
  }
}
. {
  hosts {
    3.3.3.3 test
  }
}
"""


class ViewTests(ServerCase):
    corefile = CORE

    @inlineCallbacks
    def test_first_passing_block_serves(self) -> Any:
        reply = yield self.ask("test.")
        self.assertEqual(reply.answer[0][0].address, "1.1.1.1")

    @inlineCallbacks
    def test_failing_views_fall_to_the_catch_all(self) -> Any:
        reply = yield self.ask("test.", tcp=True)  # proto() is tcp: the first view fails
        self.assertEqual(reply.answer[0][0].address, "3.3.3.3")

    @inlineCallbacks
    def test_decisions_are_per_client_and_transport(self) -> Any:
        # A view remembers its decision by what the expression reads (client address, type,
        # transport): the same server, asked again and again, decides for each query.
        got = []
        for tcp in (False, True, False, True):
            reply = yield self.ask("test.", tcp=tcp)
            got.append(reply.answer[0][0].address)
        self.assertEqual(got, ["1.1.1.1", "3.3.3.3", "1.1.1.1", "3.3.3.3"])

    @inlineCallbacks
    def test_matches(self) -> Any:
        reply = yield self.ask("abc.x.example.com.", tcp=True)
        self.assertEqual(reply.answer[0][0].address, "4.4.4.4")


class ViewReadmeTests(ServerCase):
    corefile = (DATA / "view" / "view_1.corefile").read_text()

    @inlineCallbacks
    def test_split_dns_from_loopback(self) -> Any:
        reply = yield self.ask("test.")
        self.assertEqual(reply.answer[0][0].address, "1.1.1.1")

    @inlineCallbacks
    def test_readme_corefiles_start(self) -> Any:
        files = corefiles("view")
        self.assertEqual(len(files), 3)
        for path in files:
            yield self.starts(path)


class ViewV6Tests(ServerCase):
    corefile = (DATA / "view" / "view_1.corefile").read_text()
    host = "::1"

    @inlineCallbacks
    def test_other_clients_get_the_catch_all(self) -> Any:
        reply = yield self.ask("test.")
        self.assertEqual(reply.answer[0][0].address, "3.3.3.3")


class ViewSetupTests(unittest.TestCase):
    def test_errors(self) -> None:
        self.assertEqual(setup_error("view"), "plugin/view: Corefile:2 - Error during parsing: "
                         "Wrong argument count or unexpected line ending after 'view'")
        self.assertEqual(setup_error("view a {\n bogus 1\n}"),
                         "plugin/view: Corefile:3 - Error during parsing: unknown property 'bogus'")
        self.assertEqual(setup_error("view a {\n expr name( ==\n}"),
                         "plugin/view: Corefile:3 - Error during parsing: "
                         "unexpected token Operator(\"==\") (1:7)")
        self.assertEqual(setup_error("view a {\n expr nope()\n}"),
                         "plugin/view: Corefile:3 - Error during parsing: unknown func nope (1:1)")
        self.assertIn("can only be used once", setup_error("view a\nview b") or "")

    def test_zone_defined_twice_without_view_is_still_an_error(self) -> None:
        from twisted_coredns.corefile.errors import CorefileError
        from twisted_coredns.instance import build

        with self.assertRaises(CorefileError) as caught:
            build(". {\n whoami\n}\n. {\n whoami\n}\n")
        self.assertIn("already defined", str(caught.exception))
        build(". {\n view a {\n expr true\n }\n whoami\n}\n. {\n whoami\n}\n")


class ViewDecisionTests(unittest.TestCase):
    def view(self, text: str) -> View:
        return View("v", [compile_expression(text, default_environment())])

    def test_remembered_by_client(self) -> None:
        view = self.view("incidr(client_ip(), '127.0.0.0/8')")
        for ip, want in [("127.0.0.1", True), ("::1", False), ("127.0.0.1", True), ("10.0.0.1", False)]:
            self.assertEqual(view.accepts(make_request("a.", remote=(ip, 53))), want, ip)
        self.assertEqual(len(view._decided), 3)

    def test_not_remembered_when_it_reads_the_port_or_metadata(self) -> None:
        for text in ("port() == '1000'", "metadata('a/b') == 'x'", "id() > 0"):
            view = self.view(text)
            self.assertIsNone(view._key, text)
        view = self.view("port() == '1000'")
        self.assertTrue(view.accepts(make_request("a.", remote=("127.0.0.1", 1000))))
        self.assertFalse(view.accepts(make_request("a.", remote=("127.0.0.1", 1001))))

    def test_reads(self) -> None:
        program = compile_expression("incidr(client_ip(), '10.0.0.0/8') && type() in ['A']",
                                     default_environment())
        self.assertEqual(program.reads, {"incidr", "client_ip", "type"})


class ExpressionTests(unittest.TestCase):
    def test_values(self) -> None:
        env = default_environment()
        request = make_request("www.example.com.", "AAAA")
        cases = {
            "type() == 'AAAA' and not (name() == 'x.')": True,
            "type() in ['A', 'MX']": False, "type() not in ['A']": True,
            "1 + 2 * 3 == 7": True, "'a' + 'b'": "ab", "len('abc')": 3,
            "any([1, 2], # > 1)": True, "all([1, 2], # > 1)": False,
            "incidr('::1', '::/0') || false": True, "name() startsWith 'www'": True,
            "true ? 'y' : 'n'": "y", "bufsize()": 512, "metadata('a/b')": "",
        }
        for text, want in cases.items():
            self.assertEqual(compile_expression(text, env).run(Scope(request)), want, text)

    def test_compile_errors(self) -> None:
        env = default_environment()
        for text in ("'x' + 1", "", "name() ==", "undefined", "a b", "# > 1", "name() matches '('"):
            self.assertRaises(ExprError, compile_expression, text, env)


class ViewDocTests(ServerCase):
    """The examples of docs/plugins/view.md start, and the split-DNS one answers a loopback
    client from its first block."""

    corefile = doc_corefiles("view")[0]

    @inlineCallbacks
    def test_examples_start(self) -> Any:
        examples = doc_corefiles("view")
        self.assertEqual(len(examples), 3)
        for text in examples:
            yield self.starts(text)

    @inlineCallbacks
    def test_split_dns(self) -> Any:
        reply = yield self.ask("test.")
        self.assertEqual(reply.answer[0][0].address, "1.1.1.1")
