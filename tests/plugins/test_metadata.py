"""metadata over real sockets: with it, providers publish (view/name) and log prints {/LABEL};
without it, {/LABEL} prints "-"; view's metadata() reads collected values; the labels other
plugins set (forward/upstream, zone/wildcard, log/type, log/class, geoip/...), each read through
log's {/LABEL}; geoip's values choose a view (CoreDNS's GSLB example); setup errors."""

from __future__ import annotations

import os
from typing import Any

import dns.edns
import dns.message
import dns.query
from twisted.internet.defer import inlineCallbacks
from twisted.internet.threads import deferToThread
from twisted.logger import formatEvent, globalLogPublisher
from twisted.trial import unittest

from twisted_coredns.plugins.metadata import is_label
from twisted_coredns.testing import InProcessServer
from twisted_coredns.testing.setup import setup_error

from .policy_support import ServerCase, doc_corefiles


@inlineCallbacks
def _logged(ask: Any) -> Any:
    """The formatted log lines holding "META" while ``ask()`` (a Deferred) runs."""
    seen: list[str] = []

    def observe(event: dict[str, Any]) -> None:
        text = formatEvent(event)
        if "META" in text:
            seen.append(text)

    globalLogPublisher.addObserver(observe)
    try:
        yield ask()
    finally:
        globalLogPublisher.removeObserver(observe)
    return seen

CORE = """. {
  metadata
  view main {
    expr metadata('view/name') == 'main'
  }
  log . "META {name} {/view/name} {/log/type}"
  whoami
}
other.test {
  log . "META {name} {/view/name}"
  whoami
}
"""


class MetadataTests(ServerCase):
    corefile = CORE

    def lines(self, name: str) -> Any:
        return _logged(lambda: self.ask(name))

    @inlineCallbacks
    def test_provider_values_reach_log_and_view(self) -> Any:
        seen = yield self.lines("a.example.")
        self.assertTrue(any("META a.example. main NOERROR" in s for s in seen), seen)

    @inlineCallbacks
    def test_without_metadata_labels_are_dashes(self) -> Any:
        seen = yield self.lines("a.other.test.")
        self.assertTrue(any("META a.other.test. -" in s for s in seen), seen)


ZONE = """$ORIGIN example.org.
@       3600 IN SOA ns.example.org. admin.example.org. 1 7200 3600 1209600 3600
@       3600 IN NS  ns.example.org.
ns      3600 IN A   127.0.0.1
www     3600 IN A   127.0.0.2
*       3600 IN A   127.0.0.3
*.apps  3600 IN TXT "wild"
"""


class PluginLabelTests(unittest.TestCase):
    """The labels plugins here set, as CoreDNS's set them, read through log's {/LABEL}."""

    @inlineCallbacks
    def setUp(self) -> Any:
        directory = os.path.abspath(self.mktemp())
        os.makedirs(directory)
        zonefile = os.path.join(directory, "db.example.org")
        with open(zonefile, "w") as f:
            f.write(ZONE)
        self.upstream = InProcessServer(". {\n  whoami\n}\n")
        yield self.upstream.start()
        self.addCleanup(self.upstream.stop)
        self.server = InProcessServer(
            "example.org {\n"
            "  metadata\n"
            '  log . "META {name} {/zone/wildcard} {/log/type} {/log/class}"\n'
            f"  file {zonefile}\n"
            "}\n"
            "forwarded.test {\n"
            "  metadata\n"
            '  log . "META {name} {/forward/upstream}"\n'
            f"  forward . 127.0.0.1:{self.upstream.port}\n"
            "}\n"
            "plain.test {\n"
            '  log . "META {name} {/forward/upstream}"\n'
            f"  forward . 127.0.0.1:{self.upstream.port}\n"
            "}\n"
        )
        yield self.server.start()
        self.addCleanup(self.server.stop)

    def lines(self, name: str, rdtype: str = "A") -> Any:
        return _logged(lambda: self.server.query(name, rdtype))

    @inlineCallbacks
    def test_forward_upstream(self) -> Any:
        seen = yield self.lines("a.forwarded.test.")
        self.assertEqual([s.split("META ", 1)[1] for s in seen],
                         [f"a.forwarded.test. 127.0.0.1:{self.upstream.port}"])

    @inlineCallbacks
    def test_no_label_without_metadata(self) -> Any:
        seen = yield self.lines("a.plain.test.")
        self.assertEqual([s.split("META ", 1)[1] for s in seen], ["a.plain.test. -"])

    @inlineCallbacks
    def test_zone_wildcard_and_log_type(self) -> Any:
        got = []
        # Twice each: the second answer comes from file's cache of encoded replies.
        for name, rdtype in [("x.example.org.", "A"), ("x.example.org.", "A"), ("www.example.org.", "A"),
                             ("y.apps.example.org.", "A"), ("y.apps.example.org.", "A"),
                             ("nope.www.example.org.", "A")]:
            seen = yield self.lines(name, rdtype)
            got.extend(s.split("META ", 1)[1] for s in seen)
        self.assertEqual(got, [
            "x.example.org. *.example.org. NOERROR success",
            "x.example.org. *.example.org. NOERROR success",
            "www.example.org. - NOERROR success",
            "y.apps.example.org. *.apps.example.org. NODATA denial",
            "y.apps.example.org. *.apps.example.org. NODATA denial",
            "nope.www.example.org. - NXDOMAIN denial",
        ])


class GeoIPViewTests(unittest.TestCase):
    """geoip provides its labels when metadata collects them, before the block is chosen: a view
    can route on them (CoreDNS's GSLB example), and log prints them."""

    @inlineCallbacks
    def setUp(self) -> Any:
        from .test_geoip import build_database

        directory = os.path.abspath(self.mktemp())
        os.makedirs(directory)
        city = build_database(os.path.join(directory, "city.mmdb"), "GeoLite2-City", {
            "127.0.0.0/8": {"city": {"names": {"en": "Cambridge"}}},
            "198.51.100.0/24": {"city": {"names": {"en": "Exampleshire"}}},
        })
        self.server = InProcessServer(
            "example.com {\n"
            "  view exampleshire {\n"
            "    expr metadata('geoip/city/name') == 'Exampleshire'\n"
            "  }\n"
            f"  geoip {city} {{\n    edns-subnet\n  }}\n"
            "  metadata\n"
            '  log . "META {/geoip/city/name} {/view/name}"\n'
            "  template IN A example.com {\n    answer \"{{ .Name }} 60 IN A 192.0.2.1\"\n  }\n"
            "}\n"
            "example.com {\n"
            "  template IN A example.com {\n    answer \"{{ .Name }} 60 IN A 192.0.2.2\"\n  }\n"
            "}\n"
        )
        yield self.server.start()
        self.addCleanup(self.server.stop)

    @inlineCallbacks
    def test_geoip_chooses_the_view(self) -> Any:
        query = dns.message.make_query("www.example.com.", "A", use_edns=0,
                                       options=[dns.edns.ECSOption("198.51.100.9", 24)])
        replies: list[Any] = []

        @inlineCallbacks
        def ask() -> Any:
            replies.append((yield deferToThread(dns.query.udp, query, "127.0.0.1",
                                                port=self.server.port, timeout=3)))
            replies.append((yield self.server.query("www.example.com.", "A")))

        seen = yield _logged(ask)
        self.assertEqual([r.answer[0][0].address for r in replies], ["192.0.2.1", "192.0.2.2"])
        # The second query, from Cambridge, is served by the block without a view (and without
        # metadata or log): one line, for the first.
        self.assertEqual([s.split("META ", 1)[1] for s in seen], ["Exampleshire exampleshire"])


class MetadataDocTests(ServerCase):
    """The examples of docs/plugins/metadata.md start, and the first logs the view's name and the
    reply's type and class."""

    corefile = doc_corefiles("metadata")[0]

    @inlineCallbacks
    def test_examples_start(self) -> Any:
        examples = doc_corefiles("metadata")
        self.assertEqual(len(examples), 2)
        for text in examples:
            yield self.starts(text)

    @inlineCallbacks
    def test_view_name_logged(self) -> Any:
        seen: list[str] = []

        def observe(event: dict[str, Any]) -> None:
            text = formatEvent(event)
            if "view=" in text:
                seen.append(text)

        globalLogPublisher.addObserver(observe)
        try:
            yield self.ask("a.example.")
        finally:
            globalLogPublisher.removeObserver(observe)
        self.assertEqual(len(seen), 1, seen)
        self.assertIn("a.example. view=internal NOERROR success", seen[0])


class MetadataSetupTests(unittest.TestCase):
    def test_errors(self) -> None:
        self.assertIsNone(setup_error("metadata"))
        self.assertIsNone(setup_error("metadata example.org"))
        self.assertEqual(setup_error("metadata\nmetadata"), "plugin/metadata: Corefile:3 - Error during "
                         "parsing: Wrong argument count or unexpected line ending after 'metadata'")
        self.assertIn("Wrong argument count", setup_error("metadata {\n  x\n}") or "")

    def test_labels(self) -> None:
        self.assertTrue(is_label("view/name"))
        for bad in ("view", "/name", "view/"):
            self.assertFalse(is_label(bad))
