"""hosts: its Corefile syntax and errors, and answers from real in-process servers queried with
dnspython (A, AAAA, PTR, NODATA, SERVFAIL for unknown names, fallthrough, zones, reload)."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Mapping
from typing import Any

import dns.flags
import dns.rcode
import dns.rdatatype
from twisted.internet import reactor
from twisted.internet.defer import inlineCallbacks
from twisted.internet.task import deferLater
from twisted.trial.unittest import SynchronousTestCase, TestCase

from twisted_coredns import metrics
from twisted_coredns.corefile import CorefileError
from twisted_coredns.instance import build
from twisted_coredns.plugins.hosts.handler import Hosts
from twisted_coredns.plugins.hosts.hostsfile import parse, wildcard_pattern
from twisted_coredns.testing import InProcessServer, handler_of, serve
from twisted_coredns.testing.setup import SetupResult, check_setup_rows, load_setup_rows

from ..helpers import write_file
from .logerr_support import DATA, LogCapture

HOSTS = """\
# a comment line
127.0.0.1 localhost localhost.domain
::1 localhost localhost.domain
10.0.0.1 example.org   # trailing comment
::FFFF:10.0.0.2 Example.COM
10.0.0.3 v4only.example.org
2001:db8::3 v6only.example.org
fe80::1%eth0 zoned.example.org
not-an-address bogus.example.org
10.0.0.4
1.2.3.4 aa.example.com
5.6.7.8 *.apps.example.com
"""


def _addresses(reply: Any, rdtype: int) -> list[str]:
    return [rd.to_text() for rrset in reply.answer if rrset.rdtype == rdtype for rd in rrset]


class HostsFileParseTests(SynchronousTestCase):
    """The hosts(5) reader on its own."""

    def test_lines(self) -> None:
        hmap = parse(HOSTS, ["."])
        self.assertEqual(sorted(hmap.name4), ["aa.example.com.", "example.com.", "example.org.", "localhost.",
                                              "localhost.domain.", "v4only.example.org."])
        self.assertEqual(sorted(hmap.name6), ["localhost.", "localhost.domain.", "v6only.example.org.",
                                              "zoned.example.org."])
        # ::ffff:10.0.0.2 is IPv4, names lower-cased, the zone of fe80::1%eth0 dropped
        self.assertEqual(hmap.name4["example.com."], [bytes([10, 0, 0, 2])])
        self.assertEqual(list(hmap.wild4), ["*.apps.example.com."])
        self.assertNotIn("bogus.example.org.", hmap.name4)
        # 11 name->address entries (the wildcard's included) + 10 address->name entries
        self.assertEqual(len(hmap), 11 + 10)

    def test_origins_filter_and_no_reverse(self) -> None:
        hmap = parse(HOSTS, ["example.org."], auto_reverse=False)
        self.assertEqual(sorted(hmap.name4), ["example.org.", "v4only.example.org."])
        self.assertEqual(hmap.addr, {})

    def test_wildcard_pattern(self) -> None:
        self.assertEqual(wildcard_pattern("a.example.com."), "*.example.com.")
        self.assertEqual(wildcard_pattern("a\\.b.example.com."), "*.example.com.")
        self.assertEqual(wildcard_pattern("com."), "")
        self.assertEqual(wildcard_pattern("."), "")


class HostsSetupTests(SynchronousTestCase):
    """Setup, row by row from CoreDNS's setup_test.go, and CoreDNS's exact error texts."""

    def build_one(self, body: str) -> Hosts:
        return handler_of(build(". {\n" + body + "\n}\n", dns_port=0), Hosts)

    def assert_error(self, body: str, want: str) -> None:
        with self.assertRaises(CorefileError) as caught:
            build(". {\n" + body + "\n}\n", dns_port=0)
        self.assertEqual(str(caught.exception), want, body)

    def test_coredns_rows(self) -> None:
        rows = load_setup_rows(DATA / "hosts_setup_cases.json", source_contains="coredns/coredns @4b26cce")
        self.assertEqual(len(rows), 14)
        LogCapture(self, "hosts")  # keeps the missing-file warnings out of the test output

        def parsed(row: Mapping[str, Any], result: SetupResult) -> None:
            text, handler = row["input"], handler_of(result.instance, Hosts)
            words = text.split()
            want_path = words[1] if len(words) > 1 and words[1] != "{" else "/etc/hosts"
            self.assertEqual(handler.path, want_path, text)
            if "10.0.0.9/8" in text:
                self.assertEqual(list(handler.origins), ["miek.nl.", "10.in-addr.arpa."], text)
                self.assertEqual(list(handler.fall), ["."], text)
            if "10.0.0.1 example.org" in text:
                self.assertEqual(list(handler.inline.addr.values()), [["example.org."]], text)
                self.assertEqual(list(handler.fall), ["."] if "fallthrough" in text else [], text)

        check_setup_rows(self, rows, check=parsed, error_prefix="plugin/hosts: ")

    def test_defaults(self) -> None:
        handler = self.build_one("hosts")
        self.assertEqual(
            (handler.path, handler.ttl, handler.reload, handler.auto_reverse), ("/etc/hosts", 3600, 5.0, True)
        )
        self.assertEqual(
            (list(handler.origins), list(handler.fall), handler.fall_unsupported), (["."], [], False)
        )

    def test_options(self) -> None:
        handler = self.build_one(
            "hosts /etc/hosts example.org {\n ttl 60\n no_reverse\n reload 1m30s\n"
            " fallthrough example.org 10.0.0.0/8\n fallthrough_unsupported\n}"
        )
        self.assertEqual((handler.ttl, handler.reload, handler.auto_reverse), (60, 90.0, False))
        self.assertEqual(list(handler.fall), ["example.org.", "10.in-addr.arpa."])
        self.assertTrue(handler.fall_unsupported)
        self.assertEqual(self.build_one("hosts {\n reload 0s\n}").reload, 0)

    def test_errors(self) -> None:
        prefix = "plugin/hosts: Corefile:3 - Error during parsing: "
        for body, want in [
            ("hosts {\n ttl\n}", "ttl needs a time in second"),
            ("hosts {\n ttl 1h\n}", "ttl needs a number of second"),
            ("hosts {\n ttl 0\n}", "ttl provided is invalid"),
            ("hosts {\n ttl 65536\n}", "ttl provided is invalid"),
            ("hosts {\n reload\n}", "reload needs a duration (zero seconds to disable)"),
            ("hosts {\n reload 1s 2s\n}", "reload needs a duration (zero seconds to disable)"),
            ("hosts {\n reload 5\n}", "invalid duration for reload '5'"),
            ("hosts {\n reload -1s\n}", "invalid negative duration for reload '-1s'"),
            ("hosts {\n fallthrough\n fallthrough_unsupported x\n}",
             "Wrong argument count or unexpected line ending after 'x'"),
        ]:
            line = body.count("\n", 0, body.rindex("\n")) + 2
            self.assert_error(body, prefix.replace(":3 ", f":{line} ") + want)
        self.assert_error(
            "hosts {\n fallthrough\n 10.0.0.1 a.example\n}",
            "plugin/hosts: Corefile:4 - Error during parsing: unknown property '10.0.0.1'",
        )
        self.assert_error(
            "hosts {\n fallthrough_unsupported\n}",
            "plugin/hosts: Corefile:4 - Error during parsing: fallthrough_unsupported requires fallthrough",
        )
        self.assert_error("hosts\nhosts", "plugin/hosts: this plugin can only be used once per Server Block")

    def test_unreadable_path_is_an_error(self) -> None:
        with tempfile.NamedTemporaryFile() as f:
            path = f.name + "/hosts"
            self.assert_error(
                f"hosts {path}",
                f"plugin/hosts: Corefile:2 - Error during parsing: unable to access hosts file '{path}': "
                f"stat {path}: not a directory",
            )

    def test_missing_file_and_directory_warn(self) -> None:
        capture = LogCapture(self, "hosts")
        with tempfile.TemporaryDirectory() as directory:
            missing = os.path.join(directory, "nothing")
            self.build_one(f"hosts {missing}")
            self.build_one(f"hosts {directory}")
        self.assertEqual(
            capture.lines(),
            [
                ("WARNING", f"plugin/hosts: File does not exist: {missing}"),
                ("WARNING", f'plugin/hosts: Hosts file "{directory}" is a directory'),
            ],
        )

    def test_root_prefixes_relative_path(self) -> None:
        with tempfile.TemporaryDirectory() as directory:
            write_file(directory, "my.hosts", "10.0.0.1 a.example\n")
            handler = self.build_one(f"root {directory}\nhosts my.hosts")
            self.assertEqual(handler.path, os.path.join(directory, "my.hosts"))
            self.assertEqual(self.build_one(f"root {directory}\nhosts /abs/x.hosts").path, "/abs/x.hosts")

    def test_words_after_no_reverse_start_an_inline_line(self) -> None:
        # Caddy reads a block word by word: no_reverse takes nothing, so the rest of its line is
        # read as the next entry, here an inline hosts line.
        handler = self.build_one("hosts {\n no_reverse 10.0.0.7 seven.example\n}")
        self.assertFalse(handler.auto_reverse)
        self.assertIn("seven.example.", handler.inline.name4)

    def test_readme_corefile(self) -> None:
        files = sorted((DATA / "readme_corefiles").glob("hosts_*.corefile"))
        self.assertEqual(len(files), 1)
        for path in files:
            instance = build(path.read_text(encoding="utf-8"), path.name, dns_port=0)
            self.assertEqual(handler_of(instance, Hosts).path, "/etc/hosts")


class _ServingCase(TestCase):
    timeout = 30

    def setUp(self) -> None:
        tmp = tempfile.TemporaryDirectory(prefix="hosts-test-")
        self.addCleanup(tmp.cleanup)
        self.dir = tmp.name
        self.hosts = write_file(self.dir, "hosts", HOSTS)

    def wait(self, seconds: float) -> Any:
        return deferLater(reactor, seconds, lambda: None)


class HostsAnswerTests(_ServingCase):
    @inlineCallbacks
    def test_a_aaaa_ptr_authoritative(self) -> Any:
        srv = yield serve(self, f". {{\n hosts {self.hosts}\n}}\n")
        r = yield srv.query("example.org.", "A", edns=0)
        self.assertEqual(r.rcode(), dns.rcode.NOERROR)
        self.assertTrue(r.flags & dns.flags.AA)
        self.assertEqual(_addresses(r, dns.rdatatype.A), ["10.0.0.1"])
        self.assertEqual(r.answer[0].ttl, 3600)
        self.assertEqual(r.edns, 0)
        # case-insensitive, and an IPv4-mapped address answers A
        r = yield srv.query("EXAMPLE.com.", "A")
        self.assertEqual(_addresses(r, dns.rdatatype.A), ["10.0.0.2"])
        r = yield srv.query("localhost.", "AAAA")
        self.assertEqual(_addresses(r, dns.rdatatype.AAAA), ["::1"])
        r = yield srv.query("zoned.example.org.", "AAAA", tcp=True)
        self.assertEqual(_addresses(r, dns.rdatatype.AAAA), ["fe80::1"])
        r = yield srv.query("1.0.0.127.in-addr.arpa.", "PTR")
        self.assertTrue(r.flags & dns.flags.AA)
        self.assertEqual(_addresses(r, dns.rdatatype.PTR), ["localhost.", "localhost.domain."])
        r = yield srv.query("3." + "0." * 23 + "8.b.d.0.1.0.0.2.ip6.arpa.", "PTR")
        self.assertEqual(_addresses(r, dns.rdatatype.PTR), ["v6only.example.org."])
        # the IPv4-mapped ip6.arpa name reads back as the IPv4 address, as in Go
        r = yield srv.query("2.0.0.0.0.0.a.0.f.f.f.f." + "0." * 20 + "ip6.arpa.", "PTR")
        self.assertEqual(_addresses(r, dns.rdatatype.PTR), ["example.com."])

    @inlineCallbacks
    def test_nodata_and_unknown(self) -> Any:
        srv = yield serve(self, f". {{\n hosts {self.hosts}\n}}\n")
        nodata = [("v4only.example.org.", "AAAA"), ("v6only.example.org.", "A"), ("example.org.", "MX")]
        for name, rdtype in nodata:
            r = yield srv.query(name, rdtype)
            self.assertEqual((r.rcode(), r.answer), (dns.rcode.NOERROR, []), f"{name} {rdtype}")
            self.assertTrue(r.flags & dns.flags.AA, f"{name} {rdtype}")
        # CoreDNS has no SOA for an NXDOMAIN here: an unknown name is SERVFAIL without fallthrough
        for name, rdtype in [("unknown.example.org.", "A"), ("unknown.example.org.", "MX")]:
            r = yield srv.query(name, rdtype)
            self.assertEqual(r.rcode(), dns.rcode.SERVFAIL, f"{name} {rdtype}")

    @inlineCallbacks
    def test_wildcards(self) -> Any:
        srv = yield serve(self, f". {{\n hosts {self.hosts}\n}}\n")
        r = yield srv.query("web.apps.example.com.", "A")
        self.assertEqual(_addresses(r, dns.rdatatype.A), ["5.6.7.8"])
        r = yield srv.query("web.apps.example.com.", "AAAA")
        self.assertEqual((r.rcode(), r.answer), (dns.rcode.NOERROR, []))
        for name in ("apps.example.com.", "deep.web.apps.example.com."):
            r = yield srv.query(name, "A")
            self.assertEqual(r.rcode(), dns.rcode.SERVFAIL, name)
        # wildcards make no PTR
        r = yield srv.query("8.7.6.5.in-addr.arpa.", "PTR")
        self.assertEqual(r.rcode(), dns.rcode.SERVFAIL)

    @inlineCallbacks
    def test_ttl(self) -> Any:
        srv = yield serve(self, f". {{\n hosts {self.hosts} {{\n  ttl 60\n }}\n}}\n")
        r = yield srv.query("example.org.", "A")
        self.assertEqual(r.answer[0].ttl, 60)
        r = yield srv.query("1.0.0.10.in-addr.arpa.", "PTR")
        self.assertEqual(r.answer[0].ttl, 60)

    @inlineCallbacks
    def test_no_reverse(self) -> Any:
        srv = yield serve(self, f". {{\n hosts {self.hosts} {{\n  no_reverse\n }}\n whoami\n}}\n")
        r = yield srv.query("1.0.0.10.in-addr.arpa.", "PTR")
        # no PTR from hosts: the query went on to whoami (an A record in the additional section)
        self.assertEqual(r.answer, [])
        self.assertEqual(r.additional[0].rdtype, dns.rdatatype.A)
        r = yield srv.query("example.org.", "A")
        self.assertEqual(_addresses(r, dns.rdatatype.A), ["10.0.0.1"])

    @inlineCallbacks
    def test_inline_merged_after_file(self) -> Any:
        srv = yield serve(
            self,
            f". {{\n hosts {self.hosts} {{\n  10.9.9.9 example.org\n  10.9.9.8 inline.example.org\n }}\n}}\n"
        )
        r = yield srv.query("example.org.", "A")
        self.assertEqual(_addresses(r, dns.rdatatype.A), ["10.0.0.1", "10.9.9.9"])
        r = yield srv.query("inline.example.org.", "A")
        self.assertEqual(_addresses(r, dns.rdatatype.A), ["10.9.9.8"])
        r = yield srv.query("8.9.9.10.in-addr.arpa.", "PTR")
        self.assertEqual(_addresses(r, dns.rdatatype.PTR), ["inline.example.org."])

    @inlineCallbacks
    def test_inline_only_when_file_missing(self) -> Any:
        missing = os.path.join(self.dir, "missing")
        LogCapture(self, "hosts")
        srv = yield serve(self, f"example.org {{\n hosts {missing} {{\n  10.0.0.1 example.org\n }}\n}}\n")
        r = yield srv.query("example.org.", "A")
        self.assertEqual(_addresses(r, dns.rdatatype.A), ["10.0.0.1"])

    @inlineCallbacks
    def test_fallthrough(self) -> Any:
        srv = yield serve(self, f". {{\n hosts {self.hosts} {{\n  fallthrough\n }}\n whoami\n}}\n")
        r = yield srv.query("unknown.example.org.", "A")
        self.assertEqual(r.rcode(), dns.rcode.NOERROR)
        self.assertEqual(r.answer, [])
        self.assertEqual(r.additional[0].rdtype, dns.rdatatype.A)  # whoami's
        # a known name with no record of the type is still hosts' NODATA, not passed on
        r = yield srv.query("example.org.", "TXT")
        self.assertEqual((r.answer, r.additional), ([], []))

    @inlineCallbacks
    def test_fallthrough_zones(self) -> Any:
        srv = yield serve(self, f". {{\n hosts {self.hosts} {{\n  fallthrough other.test\n }}\n whoami\n}}\n")
        r = yield srv.query("x.other.test.", "A")
        self.assertEqual(r.additional[0].rdtype, dns.rdatatype.A)
        r = yield srv.query("unknown.example.org.", "A")
        self.assertEqual(r.rcode(), dns.rcode.SERVFAIL)

    @inlineCallbacks
    def test_fallthrough_unsupported(self) -> Any:
        srv = yield serve(
            self,
            f". {{\n hosts {self.hosts} {{\n  fallthrough\n  fallthrough_unsupported\n }}\n whoami\n}}\n"
        )
        r = yield srv.query("example.org.", "TXT")
        self.assertEqual(r.additional[0].rdtype, dns.rdatatype.A)  # whoami answered
        r = yield srv.query("example.org.", "AAAA")
        self.assertEqual((r.answer, r.additional), ([], []))  # A/AAAA NODATA stays with hosts

    @inlineCallbacks
    def test_zones_restrict(self) -> Any:
        srv = yield serve(self, f". {{\n hosts {self.hosts} example.org\n whoami\n}}\n")
        r = yield srv.query("example.org.", "A")
        self.assertEqual(_addresses(r, dns.rdatatype.A), ["10.0.0.1"])
        # outside the zones: always the next plugin, fallthrough or not
        r = yield srv.query("example.com.", "A")
        self.assertEqual(r.answer, [])
        self.assertEqual(r.additional[0].rdtype, dns.rdatatype.A)
        # names outside the zones are not loaded, so give no PTR either; those inside do
        r = yield srv.query("2.0.0.10.in-addr.arpa.", "PTR")
        self.assertEqual(r.answer, [])
        r = yield srv.query("1.0.0.10.in-addr.arpa.", "PTR")
        self.assertEqual(_addresses(r, dns.rdatatype.PTR), ["example.org."])
        r = yield srv.query("unknown.example.org.", "A")
        self.assertEqual(r.rcode(), dns.rcode.SERVFAIL)

    @inlineCallbacks
    def test_server_block_zone(self) -> Any:
        srv = yield serve(self, f"example.org {{\n hosts {self.hosts}\n}}\n")
        r = yield srv.query("example.org.", "A")
        self.assertEqual(_addresses(r, dns.rdatatype.A), ["10.0.0.1"])
        r = yield srv.query("example.com.", "A")
        self.assertEqual(r.rcode(), dns.rcode.REFUSED)  # not this server's zone at all

    @inlineCallbacks
    def test_readme_corefile_serves(self) -> Any:
        text = (DATA / "readme_corefiles" / "hosts_1.corefile").read_text(encoding="utf-8")
        self.assertIn("    hosts\n", text)
        srv = yield serve(self, text.replace("    hosts\n", f"    hosts {self.hosts}\n"))
        r = yield srv.query("localhost.", "A")
        self.assertEqual(_addresses(r, dns.rdatatype.A), ["127.0.0.1"])


class HostsReloadTests(_ServingCase):
    @inlineCallbacks
    def test_reload_picks_up_changes(self) -> Any:
        srv = yield serve(self, f". {{\n hosts {self.hosts} {{\n  reload 100ms\n }}\n}}\n")
        labels = {"hostsfile": self.hosts}
        self.assertEqual(metrics.REGISTRY.get_sample_value("coredns_hosts_entries", labels), 21)
        r = yield srv.query("example.org.", "A")
        self.assertEqual(_addresses(r, dns.rdatatype.A), ["10.0.0.1"])
        write_file(self.dir, "hosts", "10.1.1.1 example.org\n10.1.1.2 new.example.org\n")
        os.utime(self.hosts, (1_700_000_000, 1_700_000_000))
        yield self.wait(0.5)
        r = yield srv.query("example.org.", "A")
        self.assertEqual(_addresses(r, dns.rdatatype.A), ["10.1.1.1"])
        r = yield srv.query("new.example.org.", "A")
        self.assertEqual(_addresses(r, dns.rdatatype.A), ["10.1.1.2"])
        self.assertEqual(metrics.REGISTRY.get_sample_value("coredns_hosts_entries", labels), 4)
        stamp = metrics.REGISTRY.get_sample_value("coredns_hosts_reload_timestamp_seconds")
        self.assertEqual(stamp, 1_700_000_000)
        # a deleted file keeps what was loaded (CoreDNS only re-reads a file it can open)
        os.remove(self.hosts)
        yield self.wait(0.3)
        r = yield srv.query("new.example.org.", "A")
        self.assertEqual(_addresses(r, dns.rdatatype.A), ["10.1.1.2"])

    @inlineCallbacks
    def test_reload_zero_disables(self) -> Any:
        srv = yield serve(self, f". {{\n hosts {self.hosts} {{\n  reload 0\n }}\n}}\n")
        write_file(self.dir, "hosts", "10.1.1.1 example.org\n")
        os.utime(self.hosts, (1_700_000_000, 1_700_000_000))
        yield self.wait(0.3)
        r = yield srv.query("example.org.", "A")
        self.assertEqual(_addresses(r, dns.rdatatype.A), ["10.0.0.1"])

    @inlineCallbacks
    def test_unchanged_file_not_parsed_again(self) -> Any:
        srv = yield serve(self, f". {{\n hosts {self.hosts} {{\n  reload 50ms\n }}\n}}\n")
        handler = handler_of(srv.instance, Hosts)
        index = handler.index
        yield self.wait(0.3)
        self.assertIs(handler.index, index)

    @inlineCallbacks
    def test_timer_stops_with_server(self) -> Any:
        server = InProcessServer(f". {{\n hosts {self.hosts} {{\n  reload 50ms\n }}\n}}\n")
        yield server.start()
        yield server.stop()
        handler = handler_of(server.instance, Hosts)
        index = handler.index
        write_file(self.dir, "hosts", "10.1.1.1 example.org\n")
        yield self.wait(0.2)
        self.assertIs(handler.index, index)
