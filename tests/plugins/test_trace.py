# ruff: noqa: E501 - the rows hold CoreDNS's error texts whole, one per line
"""trace against a real server and a local Zipkin receiver (a twisted.web resource taking POST
/api/v2/spans): a ``servedns`` span per traced query with CoreDNS's tags, a child span per
plugin; ``every``, ``service``; setup errors; the README Corefile starts."""

from __future__ import annotations

import json
from typing import Any

from twisted.internet import reactor
from twisted.internet.defer import inlineCallbacks
from twisted.internet.task import deferLater
from twisted.trial import unittest
from twisted.web.resource import Resource
from twisted.web.server import Site

from twisted_coredns.testing import InProcessServer
from twisted_coredns.testing.setup import setup_error

from .small_plugin_support import readme_corefiles


class _Spans(Resource):
    isLeaf = True

    def __init__(self) -> None:
        super().__init__()
        self.spans: list[dict[str, Any]] = []

    def render_POST(self, request: Any) -> bytes:
        if request.path == b"/api/v2/spans":
            self.spans.extend(json.loads(request.content.read()))
        request.setResponseCode(202)
        return b""


class TraceTests(unittest.TestCase):
    def setUp(self) -> None:
        self.receiver = _Spans()
        self.port = reactor.listenTCP(0, Site(self.receiver), interface="127.0.0.1")
        self.addCleanup(self.port.stopListening)

    @inlineCallbacks
    def serve(self, block: str) -> Any:
        endpoint = f"127.0.0.1:{self.port.getHost().port}"
        server = InProcessServer(f". {{\n trace {endpoint} {{\n{block}\n  zipkin_max_batch_interval 50ms\n }}\n"
                                 " log\n whoami\n}")
        yield server.start()
        self.addCleanup(server.stop)
        return server

    @inlineCallbacks
    def wait_spans(self, count: int) -> Any:
        for _ in range(250):
            if len(self.receiver.spans) >= count:
                return self.receiver.spans
            yield deferLater(reactor, 0.02, lambda: None)
        self.fail(f"{count} spans expected, {len(self.receiver.spans)} arrived")

    @inlineCallbacks
    def test_a_span_per_query_and_per_plugin(self) -> Any:
        server = yield self.serve("  service dnsproxy")
        yield server.query("example.org.", "A")
        spans = yield self.wait_spans(3)
        by_name = {s["name"]: s for s in spans}
        self.assertEqual(set(by_name), {"servedns", "log", "whoami"})
        root = by_name["servedns"]
        self.assertEqual(root["kind"], "SERVER")
        self.assertEqual(root["localEndpoint"]["serviceName"], "dnsproxy")
        tags = root["tags"]
        self.assertEqual((tags["coredns.io/name"], tags["coredns.io/type"], tags["coredns.io/rcode"],
                          tags["coredns.io/proto"], tags["coredns.io/remote"]),
                         ("example.org.", "A", "NOERROR", "udp", "127.0.0.1"))
        self.assertEqual(by_name["log"]["parentId"], root["id"])
        self.assertEqual(by_name["whoami"]["parentId"], by_name["log"]["id"])
        self.assertEqual({s["traceId"] for s in spans}, {root["traceId"]})

    @inlineCallbacks
    def test_every_traces_one_query_in_n(self) -> Any:
        server = yield self.serve("  every 3")
        for i in range(6):
            yield server.query(f"q{i}.example.org.", "A")
        spans = yield self.wait_spans(6)
        yield deferLater(reactor, 0.2, lambda: None)
        roots = [s["tags"]["coredns.io/name"] for s in self.receiver.spans if s["name"] == "servedns"]
        self.assertEqual(sorted(roots), ["q2.example.org.", "q5.example.org."])
        del spans


class SetupTests(unittest.TestCase):
    def test_settings(self) -> None:
        from twisted_coredns.plugins.trace.setup import normalize_endpoint

        self.assertEqual(normalize_endpoint("zipkin", ""), "http://localhost:9411/api/v2/spans")
        self.assertEqual(normalize_endpoint("zipkin", "tracinghost:9253"), "http://tracinghost:9253/api/v2/spans")
        self.assertEqual(normalize_endpoint("zipkin", "http://h:9411/zipkin/api/v2/spans"),
                         "http://h:9411/zipkin/api/v2/spans")
        self.assertEqual(normalize_endpoint("datadog", ""), "localhost:8126")

    def test_errors(self) -> None:
        rows = {
            "trace a b c": "plugin/trace: Corefile:2 - Error during parsing: Wrong argument count or unexpected line ending after 'c'",
            "trace foo localhost:1": "plugin/trace: tracing endpoint type 'foo' is not supported",
            "trace {\n every x\n}": 'plugin/trace: strconv.ParseUint: parsing "x": invalid syntax',
            "trace {\n every\n}": "plugin/trace: Corefile:3 - Error during parsing: Wrong argument count or unexpected line ending after 'every'",
            "trace {\n service\n}": "plugin/trace: Corefile:3 - Error during parsing: Wrong argument count or unexpected line ending after 'service'",
            "trace {\n client_server x\n}": 'plugin/trace: strconv.ParseBool: parsing "x": invalid syntax',
            "trace datadog {\n datadog_analytics_rate 2\n}":
                "plugin/trace: datadog analytics rate must be between 0 and 1, '2.000000' is not supported",
            "trace {\n datadog_analytics_rate x\n}": 'plugin/trace: strconv.ParseFloat: parsing "x": invalid syntax',
            "trace {\n zipkin_max_backlog_size x\n}": 'plugin/trace: strconv.Atoi: parsing "x": invalid syntax',
            "trace {\n zipkin_max_batch_size x\n}": 'plugin/trace: strconv.Atoi: parsing "x": invalid syntax',
            "trace {\n zipkin_max_batch_interval x\n}": 'plugin/trace: time: invalid duration "x"',
            "trace {\n foo\n}": "plugin/trace: Corefile:3 - Error during parsing: unknown property 'foo'",
        }
        for text, error in rows.items():
            self.assertEqual(setup_error(text), error, text)
        self.assertIsNone(setup_error("trace datadog localhost:8126 {\n datadog_analytics_rate 0.5\n client_server false\n}"))

    @inlineCallbacks
    def test_readme_corefile_starts(self) -> Any:
        for path in readme_corefiles("trace"):
            server = InProcessServer(path.read_text() + "\nexample.org {\n whoami\n}\n")
            yield server.start()
            yield server.stop()
