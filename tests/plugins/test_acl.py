"""acl over real sockets: block (REFUSED + EDE Blocked), filter (NOERROR + EDE Filtered), drop
(no reply), allow, types, IPv4 and IPv6 sources, zones; CoreDNS's setup table; the README files."""

from __future__ import annotations

from typing import Any

import dns.edns
import dns.exception
import dns.rcode
from twisted.internet.defer import inlineCallbacks
from twisted.trial import unittest

from twisted_coredns.metrics import REGISTRY
from twisted_coredns.testing.setup import check_setup_rows, load_setup_rows, setup_error

from .policy_support import DATA, ServerCase, corefiles, doc_corefiles

CORE = """. {
  acl blocked.test {
    block type A net 127.0.0.0/8
  }
  acl filtered.test {
    filter net 127.0.0.1
  }
  acl dropped.test {
    drop type TXT net *
  }
  acl allowed.test {
    allow net 127.0.0.0/24
    block
  }
  acl other.test {
    block net 192.168.0.0/16 ::1/128
  }
  acl six.test {
    block net ::/0
  }
  whoami
}
"""


def _ede(reply: Any) -> list[int]:
    return [o.code for o in reply.options if isinstance(o, dns.edns.EDEOption)]


class ACLv4Tests(ServerCase):
    corefile = CORE

    @inlineCallbacks
    def test_block_is_refused_with_blocked_ede(self) -> Any:
        reply = yield self.ask("www.blocked.test.")
        self.assertEqual(reply.rcode(), dns.rcode.REFUSED)
        self.assertEqual(_ede(reply), [15])
        other_type = yield self.ask("www.blocked.test.", "AAAA")
        self.assertEqual(other_type.rcode(), dns.rcode.NOERROR)  # type A only: whoami answered
        self.assertEqual(len(other_type.additional), 2)

    @inlineCallbacks
    def test_filter_is_empty_noerror_with_filtered_ede(self) -> Any:
        reply = yield self.ask("www.filtered.test.", "MX")
        self.assertEqual(reply.rcode(), dns.rcode.NOERROR)
        self.assertEqual((reply.answer, reply.additional), ([], []))
        self.assertEqual(_ede(reply), [17])

    @inlineCallbacks
    def test_drop_sends_nothing(self) -> Any:
        with self.assertRaises(dns.exception.Timeout):
            yield self.ask("x.dropped.test.", "TXT", timeout=0.5)
        reply = yield self.ask("x.dropped.test.", "A")
        self.assertEqual(reply.rcode(), dns.rcode.NOERROR)

    @inlineCallbacks
    def test_allow_stops_the_rules(self) -> Any:
        reply = yield self.ask("x.allowed.test.")
        self.assertEqual(reply.rcode(), dns.rcode.NOERROR)

    @inlineCallbacks
    def test_sources_not_listed_pass(self) -> Any:
        reply = yield self.ask("x.other.test.")
        self.assertEqual(reply.rcode(), dns.rcode.NOERROR)
        v6_only = yield self.ask("x.six.test.")
        self.assertEqual(v6_only.rcode(), dns.rcode.NOERROR)

    @inlineCallbacks
    def test_tcp_too(self) -> Any:
        reply = yield self.ask("www.blocked.test.", tcp=True)
        self.assertEqual(reply.rcode(), dns.rcode.REFUSED)

    @inlineCallbacks
    def test_metrics(self) -> Any:
        yield self.ask("www.blocked.test.")
        value = REGISTRY.get_sample_value(
            "coredns_acl_blocked_requests_total",
            {"server": f"dns://127.0.0.1:{self.server.port}", "zone": "blocked.test.", "view": ""},
        )
        if value is None:  # the server label is the Corefile's listen address
            names = {s.labels.get("zone") for m in REGISTRY.collect()
                     if m.name == "coredns_acl_blocked_requests"
                     for s in m.samples}
            self.assertIn("blocked.test.", names)
        else:
            self.assertGreaterEqual(value, 1)


class ACLv6Tests(ServerCase):
    corefile = CORE
    host = "::1"

    @inlineCallbacks
    def test_ipv6_sources(self) -> Any:
        reply = yield self.ask("x.other.test.")
        self.assertEqual(reply.rcode(), dns.rcode.REFUSED)
        six = yield self.ask("x.six.test.")
        self.assertEqual(six.rcode(), dns.rcode.REFUSED)
        v4_rule = yield self.ask("www.blocked.test.")
        self.assertEqual(v4_rule.rcode(), dns.rcode.NOERROR)


class ACLDecisionTests(unittest.TestCase):
    def test_decided_per_client_and_type(self) -> None:
        # Each rule remembers its action by (client address, type); the answers must not mix.
        from twisted_coredns.testing import make_request, run_setup

        acl = run_setup("acl {\n  allow net 127.0.0.1\n  block type A\n}\nwhoami").handler
        assert acl is not None
        cases = [("127.0.0.1", "A", 0), ("127.0.0.2", "A", 5), ("127.0.0.2", "MX", 0), ("127.0.0.1", "A", 0),
                 ("127.0.0.2", "A", 5), ("::1", "A", 5), ("::ffff:127.0.0.1", "A", 0)]
        for ip, rdtype, rcode in cases:
            response = acl.serve(make_request("a.example.", rdtype, remote=(ip, 53)))
            self.assertEqual(response.rcode, rcode, (ip, rdtype))
        self.assertEqual(len(acl._decided[0]), 5)


class ACLSetupTests(unittest.TestCase):
    def test_coredns_setup_rows(self) -> None:
        rows = load_setup_rows(DATA / "acl" / "setup_cases.json")
        self.assertEqual(check_setup_rows(self, rows, error_prefix="plugin/acl: "), 29)

    def test_error_texts(self) -> None:
        cases = {
            "acl {\n blck type A\n}":
                "unexpected token \"blck\"; expect 'allow', 'block', 'filter' or 'drop'",
            "acl {\n block A\n}": "unexpected token \"A\"; expect 'type | net'",
            "acl {\n block type\n}": "no token specified in \"type\" section",
            "acl {\n block type ABC\n}": "unexpected token \"ABC\"; expect legal QTYPE",
            "acl {\n block net 192.168.0.0/33\n}": "illegal CIDR notation \"192.168.0.0/33\"",
        }
        for text, error in cases.items():
            self.assertEqual(setup_error(text), f"plugin/acl: Corefile:3 - Error during parsing: {error}")


class ACLReadmeTests(ServerCase):
    corefile = ". {\n whoami\n}\n"

    @inlineCallbacks
    def test_readme_corefiles_start(self) -> Any:
        files = corefiles("acl")
        self.assertEqual(len(files), 6)
        for path in files:
            yield self.starts(path)


class ACLDocTests(ServerCase):
    """The examples of docs/plugins/acl.md start; the allow-list one refuses this client (not in
    its two networks) and the zone one drops nothing here (127.0.0.1 is in neither network)."""

    corefile = doc_corefiles("acl")[2]

    @inlineCallbacks
    def test_examples_start(self) -> Any:
        examples = doc_corefiles("acl")
        self.assertEqual(len(examples), 4)
        for text in examples:
            yield self.starts(text)

    @inlineCallbacks
    def test_allow_list_refuses_others(self) -> Any:
        reply = yield self.ask("www.example.org.")
        self.assertEqual(reply.rcode(), dns.rcode.REFUSED)
        self.assertEqual(_ede(reply), [15])

    @inlineCallbacks
    def test_zone_example_passes_other_clients(self) -> Any:
        from twisted_coredns.testing import InProcessServer

        server = InProcessServer(doc_corefiles("acl")[3])
        yield server.start()
        self.addCleanup(server.stop)
        reply = yield server.query("a.example.org.", "A")
        self.assertEqual((reply.rcode(), len(reply.additional)), (dns.rcode.NOERROR, 2))
