"""nsid against a real server: an NSID option in the query gets the configured data back (the
host name by default); queries that do not ask get none."""

from __future__ import annotations

import socket
from typing import Any

import dns.edns
import dns.message
from twisted.internet.defer import inlineCallbacks
from twisted.trial import unittest

from twisted_coredns.testing import serve
from twisted_coredns.testing.setup import check_setup_rows, load_setup_rows

from .small_plugin_support import DATA, readme_corefiles


def nsid_query(name: str = "example.org.") -> dns.message.Message:
    return dns.message.make_query(name, "A", use_edns=0, options=[dns.edns.GenericOption(3, b"")])


def nsid_of(reply: dns.message.Message) -> bytes | None:
    for option in reply.options:
        if option.otype == 3:
            return option.to_wire() if not hasattr(option, "data") else option.data  # type: ignore[no-any-return]
    return None


class NsidTests(unittest.TestCase):
    @inlineCallbacks
    def test_default_is_the_hostname(self) -> Any:
        server = yield serve(self, ". {\n nsid\n whoami\n}\n")
        for tcp in (False, True):
            r = yield server.query("example.org.", message=nsid_query(), tcp=tcp)
            self.assertEqual(nsid_of(r), socket.gethostname().encode())
            self.assertEqual(len(r.additional), 2)

    @inlineCallbacks
    def test_only_when_asked(self) -> Any:
        server = yield serve(self, '. {\n nsid "tf 2"\n whoami\n}\n')
        r = yield server.query("example.org.", "A", edns=0)
        self.assertEqual((r.edns, nsid_of(r)), (0, None))
        r = yield server.query("example.org.", "A")
        self.assertEqual(r.edns, -1)
        r = yield server.query("example.org.", message=nsid_query())
        self.assertEqual(nsid_of(r), b"tf 2")

    @inlineCallbacks
    def test_error_replies_written_by_a_plugin(self) -> Any:
        # local writes an NXDOMAIN itself: the NSID goes into it as into any written reply.
        server = yield serve(self, ". {\n nsid ps0\n local\n}\n")
        r = yield server.query("x.127.in-addr.arpa.", message=nsid_query("9.0.0.127.in-addr.arpa."))
        self.assertEqual((r.rcode(), nsid_of(r)), (3, b"ps0"))

    @inlineCallbacks
    def test_readme_corefile(self) -> Any:
        [path] = readme_corefiles("nsid")
        server = yield serve(self, path.read_text())
        r = yield server.query("example.org.", message=nsid_query())
        self.assertEqual(nsid_of(r), b"Use The Force")

    def test_setup_rows(self) -> None:
        rows = load_setup_rows(DATA / "nsid" / "setup_cases.json", "nsid", source_contains="coredns")
        check_setup_rows(self, rows)
