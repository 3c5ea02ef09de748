"""prometheus: its Corefile syntax and errors, and what ``/metrics`` shows after real queries.

The servers run in this process (``InProcessServer``) on fresh ports, so every ``server`` label
(``dns://127.0.0.1:PORT``) is this test's alone and counts are exact, though the metrics are
process-wide. ``/metrics`` is read with urllib in a thread, as any scraper reads it. Multisocket
sums, a real Prometheus server and load are tests/test_operations.py's.
"""

from __future__ import annotations

import errno
import os
import platform
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any
from unittest import mock

import dns.message
import dns.rcode
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families
from twisted.internet import reactor
from twisted.internet.defer import Deferred, inlineCallbacks
from twisted.internet.task import deferLater
from twisted.internet.threads import deferToThread
from twisted.trial.unittest import SkipTest, SynchronousTestCase, TestCase

import twisted_coredns
from twisted_coredns.corefile import parse
from twisted_coredns.instance import build
from twisted_coredns.metrics import PROCESS_REGISTRY, REGISTRY, SIZE_BUCKETS, TIME_BUCKETS
from twisted_coredns.plugin import Controller
from twisted_coredns.plugins.prometheus import Metrics
from twisted_coredns.plugins.prometheus import setup as prometheus_setup
from twisted_coredns.response import Response
from twisted_coredns.testing import (
    InProcessServer,
    SubprocessServer,
    free_port,
    make_query,
    make_request,
    setup_error,
)
from twisted_coredns.testing.setup import SetupResult, check_setup_rows, load_setup_rows

from ..helpers import test_registry
from .logerr_support import DATA

DOCS = Path(__file__).resolve().parent.parent.parent / "docs" / "plugins"
PROMTOOL = "/usr/bin/promtool"
HTTP = "127.0.0.1:0"

# Every family CoreDNS's code declares for the plugins we have, and the ones only we have:
# (name, type, labels, where in CoreDNS's plugin/). The families on /metrics are compared with it.
VARS, CACHE, PROXY = "metrics/vars/vars.go", "cache/metrics.go", "pkg/proxy/metrics.go"
SERVER_ZONE = ("server", "zone", "view")
FAMILIES: list[tuple[str, str, tuple[str, ...], str]] = [
    # name                                          type         labels                          where
    ("coredns_build_info",                           "gauge",     ("version", "revision", "goversion"),
     "metrics/metrics.go"),
    ("coredns_panics_total",                         "counter",   (),                             VARS),
    ("coredns_dns_requests_total",                   "counter",   (*SERVER_ZONE, "proto", "family", "type"),
     VARS),
    ("coredns_dns_request_duration_seconds",         "histogram", SERVER_ZONE,                    VARS),
    ("coredns_dns_request_size_bytes",               "histogram", (*SERVER_ZONE, "proto"),        VARS),
    ("coredns_dns_do_requests_total",                "counter",   SERVER_ZONE,                    VARS),
    ("coredns_dns_response_size_bytes",              "histogram", (*SERVER_ZONE, "proto"),        VARS),
    ("coredns_dns_responses_total",                  "counter",   (*SERVER_ZONE, "rcode", "plugin"), VARS),
    ("coredns_dns_https_responses_total",            "counter",   ("server", "status"),           VARS),
    ("coredns_dns_https3_responses_total",           "counter",   ("server", "status"),           VARS),
    ("coredns_dns_quic_responses_total",             "counter",   ("server", "status"),           VARS),
    ("coredns_plugin_enabled",                       "gauge",     (*SERVER_ZONE, "name"),         VARS),
    ("coredns_cache_entries",                        "gauge",     ("server", "type", "zones", "view"), CACHE),
    ("coredns_cache_requests_total",                 "counter",   ("server", "zones", "view"),    CACHE),
    ("coredns_cache_hits_total",                     "counter",   ("server", "type", "zones", "view"), CACHE),
    ("coredns_cache_misses_total",                   "counter",   ("server", "zones", "view"),    CACHE),
    ("coredns_cache_prefetch_total",                 "counter",   ("server", "zones", "view"),    CACHE),
    ("coredns_cache_drops_total",                    "counter",   ("server", "zones", "view"),    CACHE),
    ("coredns_cache_served_stale_total",             "counter",   ("server", "zones", "view"),    CACHE),
    ("coredns_cache_evictions_total",                "counter",   ("server", "type", "zones", "view"), CACHE),
    ("coredns_forward_healthcheck_broken_total",     "counter",   (),                 "forward/metrics.go"),
    ("coredns_forward_max_concurrent_rejects_total", "counter",   (),                 "forward/metrics.go"),
    ("coredns_forward_requests_total",               "counter",   ("to",),            "forward (<1.11)"),
    ("coredns_proxy_request_duration_seconds",       "histogram", ("proxy_name", "to", "rcode"),  PROXY),
    ("coredns_proxy_healthcheck_failures_total",     "counter",   ("proxy_name", "to"),           PROXY),
    ("coredns_proxy_conn_cache_hits_total",          "counter",   ("proxy_name", "to", "proto"),  PROXY),
    ("coredns_proxy_conn_cache_misses_total",        "counter",   ("proxy_name", "to", "proto"),  PROXY),
    ("coredns_hosts_entries",                        "gauge",     ("hostsfile",),     "hosts/metrics.go"),
    ("coredns_hosts_reload_timestamp_seconds",       "gauge",     (),                 "hosts/metrics.go"),
    ("coredns_reload_failed_total",                  "counter",   (),                 "reload/metrics.go"),
    ("coredns_reload_version_info",                  "gauge",     ("hash", "value"),  "reload/metrics.go"),
    ("coredns_health_request_duration_seconds",      "histogram", (),                 "health/overloaded.go"),
    ("coredns_health_request_failures_total",        "counter",   (),                 "health/overloaded.go"),
    ("coredns_dnstap_dropped_total",                 "counter",   (),                 "ours only"),
    ("coredns_acl_blocked_requests_total",           "counter",   SERVER_ZONE,        "acl/metrics.go"),
    ("coredns_acl_filtered_requests_total",          "counter",   SERVER_ZONE,        "acl/metrics.go"),
    ("coredns_acl_allowed_requests_total",           "counter",   ("server", "view"), "acl/metrics.go"),
    ("coredns_acl_dropped_requests_total",           "counter",   SERVER_ZONE,        "acl/metrics.go"),
    ("coredns_template_matches_total",               "counter",   (*SERVER_ZONE, "class", "type"),
     "template/metrics.go"),
    ("coredns_template_template_failures_total",     "counter",
     (*SERVER_ZONE, "class", "type", "section", "template"), "template/metrics.go"),
    ("coredns_template_rr_failures_total",           "counter",
     (*SERVER_ZONE, "class", "type", "section", "template"), "template/metrics.go"),
    ("coredns_autopath_success_total",               "counter",   ("server",),        "autopath/metrics.go"),
    ("coredns_dns64_requests_translated_total",      "counter",   ("server",),        "dns64/metrics.go"),
    ("coredns_dnssec_cache_entries",                 "gauge",     ("server", "type"), "dnssec/metrics.go"),
    ("coredns_dnssec_cache_hits_total",              "counter",   ("server",),        "dnssec/metrics.go"),
    ("coredns_dnssec_cache_misses_total",            "counter",   ("server",),        "dnssec/metrics.go"),
    ("coredns_grpc_requests_total",                  "counter",   ("to",),            "grpc/metrics.go"),
    ("coredns_grpc_responses_total",                 "counter",   ("rcode", "to"),    "grpc/metrics.go"),
    ("coredns_grpc_request_duration_seconds",        "histogram", ("to",),            "grpc/metrics.go"),
    ("coredns_local_localhost_requests_total",       "counter",   (),                 "local/metrics.go"),
    ("coredns_shed_dropped_total",                   "counter",   ("server", "reason"), "shed/metrics.go"),
]

SUFFIXES = {"counter": ("_total",), "gauge": ("",), "histogram": ("_bucket", "_count", "_sum")}


# -- reading /metrics -------------------------------------------------------------------------------------


def fetch(port: int, path: str = "/metrics") -> tuple[int, str, str]:
    """(status, content type, body) of ``GET http://127.0.0.1:PORT/PATH`` (blocking)."""
    request = urllib.request.Request(f"http://127.0.0.1:{port}{path}", headers={"Connection": "close"})
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status, response.headers.get("Content-Type", ""), response.read().decode()
    except urllib.error.HTTPError as exc:
        with exc:
            return exc.code, exc.headers.get("Content-Type", ""), exc.read().decode()


def http_get(port: int, path: str = "/metrics") -> Deferred[tuple[int, str, str]]:
    """(status, content type, body) of ``GET path``, from a thread (the server is in this reactor)."""
    return deferToThread(fetch, port, path)


class Scrape:
    """One /metrics text, parsed."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.families = list(text_string_to_metric_families(text))

    def samples(self, name: str, **where: str) -> dict[frozenset[tuple[str, str]], float]:
        """The samples called ``name`` whose labels include ``where``, by their whole label set."""
        return {
            frozenset(s.labels.items()): s.value
            for f in self.families
            for s in f.samples
            if s.name == name and all(s.labels.get(k) == v for k, v in where.items())
        }

    def table(self, name: str, keys: tuple[str, ...], **where: str) -> dict[tuple[str, ...], float]:
        """The samples of ``name`` matching ``where``, keyed by the values of ``keys``."""
        out: dict[tuple[str, ...], float] = {}
        for labels, value in self.samples(name, **where).items():
            d = dict(labels)
            out[tuple(d[k] for k in keys)] = value
        return out

    def value(self, name: str, **labels: str) -> float:
        """The one sample with exactly these labels."""
        found = self.samples(name, **labels)
        exact = [v for k, v in found.items() if dict(k) == labels]
        if len(exact) != 1:
            raise AssertionError(f"no single {name}{labels} in /metrics: {found}")
        return exact[0]

    def buckets(self, name: str, **labels: str) -> list[tuple[float, float]]:
        """A histogram's (upper bound, cumulative count) pairs, in order, for exactly ``labels``."""
        out = []
        for key, value in self.samples(f"{name}_bucket", **labels).items():
            d = dict(key)
            le = d.pop("le")
            if d == labels:
                out.append((float(le), value))
        return sorted(out)


def dual_stack_port() -> int | None:
    """A port free on 127.0.0.1 and on ::1 (UDP and TCP), or None when ::1 cannot be bound."""
    for _ in range(20):
        port = free_port()
        try:
            for kind in (socket.SOCK_DGRAM, socket.SOCK_STREAM):
                with socket.socket(socket.AF_INET6, kind) as s:
                    s.bind(("::1", port))
        except OSError as exc:
            if exc.errno in (errno.EAFNOSUPPORT, errno.EADDRNOTAVAIL):  # no IPv6 loopback here
                return None
            continue
        return port
    return None


def exchange(port: int, wire: bytes, host: str = "127.0.0.1", tcp: bool = False) -> Deferred[bytes]:
    """The reply's bytes to ``wire``, so that sizes can be checked byte for byte."""

    def run() -> bytes:
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        if tcp:
            with socket.create_connection((host, port), timeout=3) as s:
                s.sendall(len(wire).to_bytes(2, "big") + wire)
                data = b""
                while len(data) < 2 or len(data) < 2 + int.from_bytes(data[:2], "big"):
                    chunk = s.recv(65536)
                    if not chunk:
                        raise ConnectionError("closed before the whole reply")
                    data += chunk
                return data[2:]
        with socket.socket(family, socket.SOCK_DGRAM) as s:
            s.settimeout(3)
            s.sendto(wire, (host, port))
            return s.recv(65535)

    return deferToThread(run)


def wait_until(predicate: Callable[[], object], timeout: float = 6.0) -> Deferred[None]:
    """Poll ``predicate`` on the reactor until it holds; fail after ``timeout`` seconds."""

    @inlineCallbacks
    def poll() -> Any:
        deadline = time.monotonic() + timeout
        while not predicate():
            if time.monotonic() > deadline:
                raise AssertionError(f"condition not met within {timeout}s")
            yield deferLater(reactor, 0.02, lambda: None)

    return poll()


# -- setup -------------------------------------------------------------------------------------------------


def parsed(text: str, result: SetupResult) -> tuple[str, bool]:
    """``setup.parse`` on the row's directives: the address and runtime_metrics."""
    block = parse(f". {{\n{text}\n}}\n", "Corefile")[0]
    directives = [d for d in block.directives if d.name == "prometheus"]
    return prometheus_setup.parse(Controller("prometheus", directives, result.config, reactor))


class PrometheusSetupTests(SynchronousTestCase):
    """Setup, row by row from CoreDNS's setup_test.go and ours, with CoreDNS's error texts."""

    def test_setup_rows(self) -> None:
        rows = load_setup_rows(DATA / "prometheus_setup_cases.json",
                               source_contains="coredns/coredns @4b26cce")

        def check(row: Mapping[str, Any], result: SetupResult) -> None:
            self.assertEqual(parsed(row["input"], result), (row["addr"], row["runtime_metrics"]))
            self.assertIsInstance(result.handler, Metrics)

        count = check_setup_rows(self, rows, check=check, error_prefix="plugin/prometheus: ")
        self.assertEqual(count, 24)

    def test_tls_is_not_supported(self) -> None:
        # CoreDNS's code (not its README) has `tls CONFIG_FILE`, an exporter-toolkit web config;
        # twisted.web has no reader for that file, so the option is refused rather than ignored.
        result = setup_error("prometheus {\n    tls /etc/coredns/web.yml\n}")
        self.assertEqual(result, "plugin/prometheus: Corefile:3 - Error during parsing: unknown option: tls")

    def test_block_plugins_with_the_handler_first(self) -> None:
        instance = build(". {\n    whoami\n    prometheus\n}\n", dns_port=0)
        self.assertEqual([h.name for h in instance.blocks[0].handlers], ["prometheus", "whoami"])


class HandlerCostTests(SynchronousTestCase):
    """The handler sits in front of every query: a synchronous answer stays synchronous."""

    def test_synchronous_answer_makes_no_deferred(self) -> None:
        instance = build(". {\n    prometheus\n    whoami\n}\n", dns_port=0)
        handler = instance.blocks[0].handlers[0]
        self.assertIsInstance(handler, Metrics)
        made: list[object] = []
        real_init = Deferred.__init__

        def counting_init(self: Deferred[Any], *args: Any, **kw: Any) -> None:
            made.append(self)
            real_init(self, *args, **kw)

        request = make_request("a.example.org.")
        request.server = "dns://handler-cost-test:0"
        request.zone = "."
        with mock.patch.object(Deferred, "__init__", counting_init):
            result = handler.serve(request)
            self.assertEqual(made, [])
            Deferred()
            self.assertEqual(len(made), 1, "the count sees a Deferred made")
        self.assertIs(type(result), Response)
        self.assertEqual(result.plugin, "whoami")
        counted = Scrape(generate_latest(REGISTRY).decode())
        self.assertEqual(counted.table("coredns_dns_requests_total", ("zone", "type"), server=request.server),
                         {(".", "A"): 1})


# -- over real sockets -------------------------------------------------------------------------------------

MAIN = """\
example.org {{
    bind {hosts}
    prometheus {http}
    whoami
}}
cached.test {{
    prometheus {http}
    cache
    whoami
}}
hosts.test {{
    prometheus {http}
    hosts {hostsfile}
}}
fwd.test {{
    prometheus {http}
    forward . 127.0.0.1:{up}
}}
dead.test {{
    prometheus {http}
    forward . 127.0.0.1:{dead}
}}
crash.test {{
    prometheus {http}
    crash
    whoami
}}
async.test {{
    prometheus {http}
    asyncanswer
}}
slow.test {{
    prometheus {http}
    slow
}}
big.test {{
    prometheus {http}
    big
}}
"""


class MetricsServerCase(TestCase):
    """The Corefile above on a fresh port: one block per kind of answer, all with the same
    prometheus address; an upstream for ``forward`` in this reactor, and a port nobody serves."""

    ipv6 = False

    @inlineCallbacks
    def start(self) -> Any:
        self.upstream = InProcessServer(". {\n    whoami\n}\n")
        yield self.upstream.start()
        self.addCleanup(self.upstream.stop)
        port = dual_stack_port() if self.ipv6 else free_port()
        if port is None:
            raise SkipTest("::1 cannot be bound here")
        self.dns_port = port
        self.dead = free_port()
        directory = tempfile.mkdtemp(prefix="coredns-prometheus-")
        self.addCleanup(shutil.rmtree, directory, True)
        self.hostsfile = os.path.join(directory, "hosts")
        Path(self.hostsfile).write_text("10.0.0.1 a.hosts.test\n2001:db8::1 a.hosts.test\n", encoding="utf-8")
        corefile = MAIN.format(
            hosts="127.0.0.1 ::1" if self.ipv6 else "127.0.0.1", http=HTTP, up=self.upstream.port,
            dead=self.dead, hostsfile=self.hostsfile,
        )
        self.server = InProcessServer(corefile, registry=test_registry(), dns_port=port)
        yield self.server.start()
        self.addCleanup(self.server.stop)
        self.s4 = f"dns://127.0.0.1:{port}"
        self.s6 = f"dns://[::1]:{port}"
        self.http_port = self.server.http_port(HTTP)
        assert self.http_port is not None

    def query(self, name: str, rdtype: str | int = "A", **kw: Any) -> Deferred[dns.message.Message]:
        return self.server.query(name, rdtype, port=self.dns_port, **kw)

    @inlineCallbacks
    def scrape(self) -> Any:
        status, content_type, body = yield http_get(self.http_port)
        self.assertEqual(status, 200, body)
        # the text format (version 0.0.4 in Go's client, 1.0.0 in prometheus_client 0.22 and later)
        self.assertRegex(content_type, r"^text/plain; version=\d+\.\d+\.\d+; charset=utf-8$")
        return Scrape(body)


class RequestCountTests(MetricsServerCase):
    @inlineCallbacks
    def test_requests_by_proto_family_and_type(self) -> Any:
        yield self.start()
        plan = [("A", 2), ("AAAA", 2), ("MX", 1), ("TXT", 1), ("SVCB", 1), (65280, 2), ("NAPTR", 1)]
        for rdtype, n in plan:
            for _ in range(n):
                yield self.query("a.example.org.", rdtype)
        yield self.query("a.example.org.", "A", edns=0, want_dnssec=True)
        yield self.query("a.example.org.", "A", tcp=True)
        yield self.query("a.example.org.", "A", tcp=True)
        yield self.query("a.example.org.", "AAAA", tcp=True, edns=0, want_dnssec=True)
        yield self.query("a.example.org.", "DS", tcp=True)
        scrape = yield self.scrape()
        keys = ("proto", "family", "type")
        self.assertEqual(
            scrape.table("coredns_dns_requests_total", keys, server=self.s4, zone="example.org.", view=""),
            {
                ("udp", "1", "A"): 3, ("udp", "1", "AAAA"): 2, ("udp", "1", "MX"): 1, ("udp", "1", "TXT"): 1,
                ("udp", "1", "SVCB"): 1, ("udp", "1", "other"): 3,
                ("tcp", "1", "A"): 2, ("tcp", "1", "AAAA"): 1, ("tcp", "1", "DS"): 1,
            },
        )
        self.assertEqual(scrape.table("coredns_dns_do_requests_total", ("zone", "view"), server=self.s4),
                         {("example.org.", ""): 2})
        self.assertEqual(
            scrape.table("coredns_dns_responses_total", ("zone", "rcode", "plugin"), server=self.s4),
            {("example.org.", "NOERROR", "whoami"): 15},
        )
        self.assertEqual(scrape.value("coredns_dns_request_duration_seconds_count", server=self.s4,
                                      zone="example.org.", view=""), 15)


class IPv6Tests(MetricsServerCase):
    ipv6 = True

    @inlineCallbacks
    def test_family_2_over_ipv6(self) -> Any:
        yield self.start()
        yield self.query("a.example.org.", host="::1")
        yield self.query("a.example.org.", "AAAA", host="::1")
        yield self.query("a.example.org.", host="::1", tcp=True)
        yield self.query("a.example.org.")
        scrape = yield self.scrape()
        keys = ("server", "proto", "family", "type")
        self.assertEqual(
            scrape.table("coredns_dns_requests_total", keys, zone="example.org.", server=self.s6),
            {(self.s6, "udp", "2", "A"): 1, (self.s6, "udp", "2", "AAAA"): 1, (self.s6, "tcp", "2", "A"): 1},
        )
        self.assertEqual(
            scrape.table("coredns_dns_requests_total", keys, zone="example.org.", server=self.s4),
            {(self.s4, "udp", "1", "A"): 1},
        )
        names = scrape.table("coredns_plugin_enabled", ("zone", "name"), server=self.s6)
        self.assertEqual(names, {("example.org.", "prometheus"): 1, ("example.org.", "whoami"): 1})


class ResponseTests(MetricsServerCase):
    @inlineCallbacks
    def test_rcode_and_plugin_of_each_answer(self) -> Any:
        yield self.start()
        first = yield self.query("www.cached.test.")
        second = yield self.query("www.cached.test.")
        self.assertEqual(second.answer, first.answer)
        found = yield self.query("a.hosts.test.")
        self.assertEqual([rd.to_text() for rd in found.answer[0]], ["10.0.0.1"])
        nodata = yield self.query("a.hosts.test.", "MX")
        self.assertEqual((nodata.rcode(), nodata.answer), (dns.rcode.NOERROR, []))
        unknown = yield self.query("nobody.hosts.test.")
        self.assertEqual(unknown.rcode(), dns.rcode.SERVFAIL)  # hosts has no SOA to deny with
        forwarded = yield self.query("x.fwd.test.")
        self.assertEqual(forwarded.rcode(), dns.rcode.NOERROR)
        dead = yield self.query("x.dead.test.")
        self.assertEqual(dead.rcode(), dns.rcode.SERVFAIL)
        later = yield self.query("x.async.test.")
        self.assertEqual(later.rcode(), dns.rcode.NOERROR)
        outside = yield self.query("nowhere.invalid.")
        self.assertEqual(outside.rcode(), dns.rcode.REFUSED)
        chaos = yield self.query("version.bind.", "TXT", rdclass="CH")
        self.assertEqual(chaos.rcode(), dns.rcode.REFUSED)
        scrape = yield self.scrape()
        self.assertEqual(
            scrape.table("coredns_dns_responses_total", ("zone", "view", "rcode", "plugin"), server=self.s4),
            {
                ("cached.test.", "", "NOERROR", "whoami"): 1,
                ("cached.test.", "", "NOERROR", "cache"): 1,
                ("hosts.test.", "", "NOERROR", "hosts"): 2,
                # not written by any plugin: the server writes the error, no plugin is named
                ("hosts.test.", "", "SERVFAIL", ""): 1,
                ("fwd.test.", "", "NOERROR", "forward"): 1,
                ("dead.test.", "", "SERVFAIL", ""): 1,
                ("async.test.", "", "NOERROR", "asyncanswer"): 1,
                # in no zone: answered by the server, under the zone "dropped"
                ("dropped", "", "REFUSED", ""): 2,
            },
        )
        self.assertEqual(
            scrape.table("coredns_dns_requests_total", ("view", "proto", "family", "type"), server=self.s4,
                         zone="dropped"),
            {("", "udp", "1", "A"): 1, ("", "udp", "1", "TXT"): 1},
        )
        # a reply not written counts 0 bytes, as CoreDNS's recorder sees it
        dead_sizes = {"server": self.s4, "zone": "dead.test.", "view": "", "proto": "udp"}
        self.assertEqual(scrape.value("coredns_dns_response_size_bytes_sum", **dead_sizes), 0)

    @inlineCallbacks
    def test_cache_forward_and_hosts_families(self) -> Any:
        yield self.start()
        yield self.query("www.cached.test.")
        yield self.query("www.cached.test.")
        yield self.query("x.fwd.test.")
        yield self.query("a.hosts.test.")
        scrape = yield self.scrape()
        cache = {"server": self.s4, "zones": "cached.test.", "view": ""}
        self.assertEqual(scrape.value("coredns_cache_requests_total", **cache), 2)
        self.assertEqual(scrape.value("coredns_cache_misses_total", **cache), 1)
        self.assertEqual(scrape.table("coredns_cache_hits_total", ("type",), **cache),
                         {("success",): 1, ("denial",): 0})
        self.assertEqual(scrape.table("coredns_cache_entries", ("type",), **cache),
                         {("success",): 1, ("denial",): 0})
        for family in ("prefetch", "drops", "served_stale"):
            self.assertEqual(scrape.value(f"coredns_cache_{family}_total", **cache), 0)
        self.assertEqual(scrape.table("coredns_cache_evictions_total", ("type",), **cache),
                         {("success",): 0, ("denial",): 0})
        up = f"127.0.0.1:{self.upstream.port}"
        self.assertEqual(scrape.value("coredns_forward_requests_total", to=up), 1)
        self.assertEqual(scrape.value("coredns_proxy_request_duration_seconds_count", proxy_name="forward",
                                      to=up, rcode="NOERROR"), 1)
        self.assertEqual(scrape.value("coredns_proxy_conn_cache_misses_total", proxy_name="forward", to=up,
                                      proto="udp"), 1)
        self.assertEqual([b for b, _ in scrape.buckets("coredns_proxy_request_duration_seconds",
                                                        proxy_name="forward", to=up, rcode="NOERROR")],
                         [*TIME_BUCKETS, float("inf")])
        # 10.0.0.1 and 2001:db8::1, each by name and by address
        self.assertEqual(scrape.value("coredns_hosts_entries", hostsfile=self.hostsfile), 4)
        self.assertGreater(scrape.value("coredns_hosts_reload_timestamp_seconds"), 1e9)

    @inlineCallbacks
    def test_panic_is_counted(self) -> Any:
        yield self.start()
        first = Scrape((yield http_get(self.http_port))[2])
        before = first.value("coredns_panics_total")
        where = {"zone": "dropped", "rcode": "SERVFAIL", "plugin": ""}
        crashed_before = sum(first.samples("coredns_dns_responses_total", **where).values())
        reply = yield self.query("crash.crash.test.")
        self.assertEqual(reply.rcode(), dns.rcode.SERVFAIL)
        reply = yield self.query("fine.crash.test.")
        self.assertEqual(reply.rcode(), dns.rcode.NOERROR)
        scrape = yield self.scrape()
        self.assertEqual(scrape.value("coredns_panics_total") - before, 1)
        # Answered by the server, as CoreDNS's recover answers: under the zone "dropped".
        crashed = sum(scrape.samples("coredns_dns_responses_total", **where).values())
        self.assertEqual(crashed - crashed_before, 1)
        self.assertEqual(len(self.flushLoggedErrors(RuntimeError)), 1)


class HistogramTests(MetricsServerCase):
    @inlineCallbacks
    def test_size_buckets_are_corednss_and_inclusive(self) -> Any:
        yield self.start()
        exactly_100 = make_query("x" * 35 + "." + "y" * 34 + ".example.org.", "A").to_wire()
        just_over = make_query("x" * 36 + "." + "y" * 34 + ".example.org.", "A").to_wire()
        big = make_query("n30.big.test.", "TXT").to_wire()
        self.assertEqual((len(exactly_100), len(just_over)), (100, 101))
        replies = []
        for wire, tcp in [(exactly_100, False), (just_over, False), (big, True)]:
            replies.append((yield exchange(self.dns_port, wire, tcp=tcp)))
        scrape = yield self.scrape()
        bounds = [*SIZE_BUCKETS, float("inf")]
        self.assertEqual(SIZE_BUCKETS,
                         (0, 100, 200, 300, 400, 511, 1023, 2047, 4095, 8291, 16e3, 32e3, 48e3, 64e3))
        where = {"server": self.s4, "zone": "example.org.", "view": "", "proto": "udp"}
        request_sizes = scrape.buckets("coredns_dns_request_size_bytes", **where)
        self.assertEqual([b for b, _ in request_sizes], bounds)
        self.assertEqual(dict(request_sizes)[0], 0)
        self.assertEqual(dict(request_sizes)[100], 1)  # le is "less or equal"
        self.assertEqual(dict(request_sizes)[200], 2)
        self.assertEqual(scrape.value("coredns_dns_request_size_bytes_sum", **where), 201)
        self.assertEqual(scrape.value("coredns_dns_response_size_bytes_sum", **where),
                         len(replies[0]) + len(replies[1]))
        big_where = {"server": self.s4, "zone": "big.test.", "view": "", "proto": "tcp"}
        size = len(replies[2])
        self.assertTrue(2047 < size <= 4095, size)
        response_sizes = dict(scrape.buckets("coredns_dns_response_size_bytes", **big_where))
        self.assertEqual((response_sizes[2047], response_sizes[4095], response_sizes[float("inf")]),
                         (0, 1, 1))
        self.assertEqual(scrape.value("coredns_dns_response_size_bytes_sum", **big_where), size)
        self.assertEqual(scrape.value("coredns_dns_request_size_bytes_sum", **big_where), len(big))

    @inlineCallbacks
    def test_duration_buckets(self) -> Any:
        yield self.start()
        reply = yield self.query("d140.slow.test.", "TXT")
        self.assertEqual(reply.rcode(), dns.rcode.NOERROR)
        scrape = yield self.scrape()
        self.assertEqual(TIME_BUCKETS, tuple(0.00025 * 2**i for i in range(16)))
        durations = scrape.buckets("coredns_dns_request_duration_seconds", server=self.s4, zone="slow.test.",
                                   view="")
        self.assertEqual([b for b, _ in durations], [*TIME_BUCKETS, float("inf")])
        counts = dict(durations)
        self.assertEqual((counts[0.128], counts[0.256], counts[float("inf")]), (0, 1, 1))
        total = scrape.value("coredns_dns_request_duration_seconds_sum", server=self.s4, zone="slow.test.",
                             view="")
        self.assertTrue(0.14 <= total <= 0.256, total)


class ExpositionTests(MetricsServerCase):
    @inlineCallbacks
    def test_plugin_enabled_and_build_info(self) -> Any:
        yield self.start()
        scrape = yield self.scrape()
        enabled = scrape.table("coredns_plugin_enabled", ("zone", "view", "name"), server=self.s4)
        want = {
            "example.org.": ["prometheus", "whoami"],
            "cached.test.": ["prometheus", "cache", "whoami"],
            "hosts.test.": ["prometheus", "hosts"],
            "fwd.test.": ["prometheus", "forward"],
            "dead.test.": ["prometheus", "forward"],
            "crash.test.": ["prometheus", "crash", "whoami"],
            "async.test.": ["prometheus", "asyncanswer"],
            "slow.test.": ["prometheus", "slow"],
            "big.test.": ["prometheus", "big"],
        }
        # bind configures the server and is no handler: CoreDNS does not list it either
        self.assertEqual(enabled, {(zone, "", name): 1 for zone, names in want.items() for name in names})
        python = f"{platform.python_implementation()} {platform.python_version()}"
        self.assertEqual(scrape.samples("coredns_build_info"), {
            frozenset({("version", twisted_coredns.__version__), ("revision", ""), ("goversion", python)}): 1,
        })

    @inlineCallbacks
    def test_families_are_corednss(self) -> Any:
        yield self.start()
        names = ("a.example.org.", "www.cached.test.", "x.fwd.test.", "a.hosts.test.", "nowhere.invalid.")
        for name in names:
            yield self.query(name)
        yield self.query("a.example.org.", edns=0, want_dnssec=True)
        scrape = yield self.scrape()
        known = {name: (kind, labels) for name, kind, labels, _ in FAMILIES}
        seen = set()
        for family in scrape.families:
            full = family.name + ("_total" if family.type == "counter" else "")
            if not family.name.startswith("coredns_"):
                # Go's go_* families have their Python counterparts; nothing else is added
                self.assertTrue(family.name.startswith(("python_", "process_")), family.name)
                continue
            self.assertIn(full, known, f"{full} is not in the table of CoreDNS's families")
            kind, labels = known[full]
            self.assertEqual(family.type, kind, full)
            for sample in family.samples:
                self.assertIn(sample.name[len(family.name):], SUFFIXES[kind], sample.name)
                names = set(sample.labels) - ({"le"} if sample.name.endswith("_bucket") else set())
                self.assertEqual(names, set(labels), sample.name)
            seen.add(full)
        exercised = {name for name, *_ in FAMILIES if name.startswith(("coredns_dns_", "coredns_cache_",
                                                                        "coredns_forward_", "coredns_proxy_",
                                                                        "coredns_hosts_"))}
        exercised |= {"coredns_build_info", "coredns_panics_total", "coredns_plugin_enabled",
                      "coredns_reload_failed_total"}
        self.assertEqual(exercised - seen, set())
        self.assertIn("process_cpu_seconds_total", scrape.text)
        self.assertEqual([f.name for f in scrape.families if f.name.startswith("go_")], [])

    @inlineCallbacks
    def test_promtool_accepts_the_exposition(self) -> Any:
        if not os.path.exists(PROMTOOL):
            self.fail(f"{PROMTOOL} is missing: install Debian's prometheus package "
                      "(apt-get install prometheus), which provides promtool, to check the /metrics text")
        yield self.start()
        for name in ("a.example.org.", "www.cached.test.", "www.cached.test.", "x.fwd.test.", "x.dead.test.",
                     "a.hosts.test.", "nowhere.invalid.", "x.async.test."):
            yield self.query(name)
        scrape = yield self.scrape()
        checked = subprocess.run([PROMTOOL, "check", "metrics"], input=scrape.text, capture_output=True,
                                 text=True, timeout=30)
        self.assertEqual((checked.returncode, checked.stdout + checked.stderr), (0, ""))

    @inlineCallbacks
    def test_blocks_with_one_address_share_one_listener(self) -> Any:
        yield self.start()
        self.assertEqual(list(self.server.service.http.listeners), [HTTP])
        yield self.query("a.example.org.")
        yield self.query("x.async.test.")
        scrape = yield self.scrape()
        zones = {z for (z,) in scrape.table("coredns_dns_requests_total", ("zone",), server=self.s4)}
        self.assertEqual(zones, {"example.org.", "async.test."})
        status, content_type, body = yield http_get(self.http_port, "/other")
        self.assertEqual((status, content_type, body),
                         (404, "text/plain; charset=utf-8", "404 page not found\n"))
        status, _, body = yield http_get(self.http_port, "/metrics/")
        self.assertEqual(status, 404)


RELOAD_A = """\
. {{
    prometheus {http}
    whoami
}}
"""
RELOAD_B = """\
. {{
    prometheus {http}
    cache
    whoami
}}
"""


class ReloadTests(TestCase):
    """A reload keeps the counters (they are the process's) and the listener of an address that
    stays; coredns_plugin_enabled is the running configuration's."""

    @inlineCallbacks
    def test_counters_survive_and_plugin_enabled_follows(self) -> Any:
        port = free_port()
        server = InProcessServer(RELOAD_A.format(http=HTTP), dns_port=port)
        yield server.start()
        self.addCleanup(server.stop)
        s = f"dns://127.0.0.1:{port}"
        http_port = server.http_port(HTTP)
        listener = server.service.http.listeners[HTTP]
        for _ in range(3):
            yield server.query("a.example.org.")
        requests = {"server": s, "zone": ".", "view": "", "proto": "udp", "family": "1", "type": "A"}
        scrape = Scrape((yield http_get(http_port))[2])
        self.assertEqual(scrape.value("coredns_dns_requests_total", **requests), 3)
        self.assertEqual(scrape.table("coredns_plugin_enabled", ("name",), server=s),
                         {("prometheus",): 1, ("whoami",): 1})

        ok = yield server.reload(RELOAD_B.format(http=HTTP))
        self.assertIs(ok, True)
        self.assertIs(server.service.http.listeners[HTTP], listener)  # not closed and opened again
        yield server.query("a.example.org.")
        scrape = Scrape((yield http_get(http_port))[2])
        self.assertEqual(scrape.value("coredns_dns_requests_total", **requests), 4)
        self.assertEqual(scrape.table("coredns_plugin_enabled", ("name",), server=s),
                         {("prometheus",): 1, ("cache",): 1, ("whoami",): 1})

        # a reload that fails changes nothing
        ok = yield server.reload(RELOAD_B.format(http=HTTP) + "broken {\n")
        self.assertIs(ok, False)
        scrape = Scrape((yield http_get(http_port))[2])
        self.assertEqual(scrape.table("coredns_plugin_enabled", ("name",), server=s),
                         {("prometheus",): 1, ("cache",): 1, ("whoami",): 1})

        # a new address: the new listener serves the same counters, the old one is closed
        moved = f"127.0.0.1:{free_port()}"
        ok = yield server.reload(RELOAD_A.format(http=moved))
        self.assertIs(ok, True)
        self.assertEqual(list(server.service.http.listeners), [moved])
        scrape = Scrape((yield http_get(int(moved.rsplit(":", 1)[1])))[2])
        self.assertEqual(scrape.value("coredns_dns_requests_total", **requests), 4)
        self.assertEqual(scrape.table("coredns_plugin_enabled", ("name",), server=s),
                         {("prometheus",): 1, ("whoami",): 1})
        yield wait_until(lambda: not _listening(http_port))

        yield server.stop()
        left = Scrape(generate_latest(PROCESS_REGISTRY).decode())
        self.assertEqual(left.samples("coredns_plugin_enabled", server=s), {})


def _listening(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


class RuntimeMetricsTests(SynchronousTestCase):
    """``runtime_metrics`` adds the garbage collector's families, process-wide and for good (a
    latch, as in CoreDNS). In a child process: this one may have turned it on already."""

    def test_runtime_metrics_adds_python_gc(self) -> None:
        http = free_port()
        plain = f". {{\n    prometheus 127.0.0.1:{http}\n    whoami\n}}\n"
        with SubprocessServer(plain) as server:
            server.query("a.example.org.")
            before = fetch(http)[2]
            self.assertNotIn("python_gc_", before)
            self.assertIn("process_resident_memory_bytes", before)
            self.assertIn("python_info", before)
            server.corefile.write_text(plain.replace("whoami", "whoami\n}\nexample.net {\n    prometheus "
                                                     f"127.0.0.1:{http} {{\n        runtime_metrics\n    }}"))
            assert server.process is not None
            os.kill(server.process.pid, signal.SIGUSR1)
            server.wait_for_log("Reloading complete")
            after = Scrape(fetch(http)[2])
        gc = {f.name for f in after.families if f.name.startswith("python_gc_")}
        self.assertEqual(gc, {"python_gc_objects_collected", "python_gc_objects_uncollectable",
                              "python_gc_collections"})
        self.assertEqual([f.name for f in after.families if f.name.startswith("go_")], [])


class ReadmeTests(TestCase):
    """The Corefiles of docs/plugins/prometheus.md start and serve /metrics (their ports replaced
    by free ones, ``{$PORT}`` taken from the environment)."""

    @inlineCallbacks
    def test_examples_start(self) -> Any:
        text = (DOCS / "prometheus.md").read_text(encoding="utf-8")
        examples = [part.split("~~~", 1)[0] for part in text.split("~~~ corefile\n")[1:]]
        self.assertGreaterEqual(len(examples), 3)
        for example in examples:
            port = str(free_port())
            corefile = example.replace("9253", port).replace("9153", port)
            with mock.patch.dict(os.environ, {"PORT": port}):
                server = InProcessServer(corefile, dns_port=free_port())
            yield server.start()
            try:
                addresses = list(server.service.http.listeners)
                self.assertTrue(addresses, example)
                for address in addresses:
                    self.assertTrue(address.endswith(":" + port), (address, example))
                    status, _, body = yield http_get(int(port))
                    self.assertEqual(status, 200, example)
                    self.assertIn("coredns_build_info{", body, example)
            finally:
                yield server.stop()
