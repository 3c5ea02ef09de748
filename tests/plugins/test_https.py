"""DNS over HTTPS (https://) against a real server: dnspython (HTTP/1.1 and HTTP/2), kdig (h2,
POST and GET), httpx for bad input, the https plugin's options and metric."""

from __future__ import annotations

import base64
import json
import os
import shutil
import struct
import subprocess
import tempfile
from typing import Any

import dns.message
import dns.rdatatype
import dns.rrset
import httpx
from twisted.internet.defer import inlineCallbacks
from twisted.internet.threads import deferToThread
from twisted.trial import unittest

from twisted_coredns.metrics.queries import https_responses
from twisted_coredns.server.doh import max_age
from twisted_coredns.testing import InProcessServer
from twisted_coredns.testing.certs import certificates
from twisted_coredns.testing.setup import check_setup_rows

from .transport_support import DATA, corefile, doh_query

MIME = "application/dns-message"


class HTTPSSetupTests(unittest.TestCase):
    def test_setup_rows(self) -> None:
        with open(os.path.join(DATA, "https_setup_rows.json"), encoding="utf-8") as f:
            rows = json.load(f)["rows"]
        self.assertEqual(check_setup_rows(self, rows, error_prefix="plugin/https: "), len(rows))


class DoHServerTests(unittest.TestCase):
    @inlineCallbacks
    def setUp(self) -> Any:
        certs = certificates()
        text = f"https://.:0 {{\n tls {certs.cert_file} {certs.key_file}\n whoami\n}}\n"
        self.server = InProcessServer(text)
        yield self.server.start()
        self.addCleanup(self.server.stop)
        self.port = self.server.port
        self.url = f"https://127.0.0.1:{self.port}/dns-query"

    def _count(self, status: str) -> float:
        address = next(iter(self.server.ports))
        return https_responses.labels(address, status)._value.get()  # type: ignore[attr-defined]

    @inlineCallbacks
    def test_post_and_get_over_http1_and_h2(self) -> Any:
        before = self._count("200")
        for post in (True, False):
            for h2 in (False, True):
                reply = yield deferToThread(doh_query, self.port, "a.example.org.", post=post, h2=h2)
                self.assertEqual(reply.rcode(), 0)
                self.assertTrue(any(r.rdtype == dns.rdatatype.A for r in reply.additional))
        self.assertEqual(self._count("200") - before, 4)

    @inlineCallbacks
    def test_kdig_https_post_and_get(self) -> Any:
        certs = certificates()
        for flag in ("+https", "+https-get"):
            out = yield deferToThread(
                subprocess.run,
                ["kdig", "@127.0.0.1", "-p", str(self.port), flag, f"+tls-ca={certs.ca_file}",
                 "+tls-hostname=localhost", "+timeout=3", "a.example.org", "A"],
                capture_output=True, text=True, timeout=15,
            )
            self.assertIn("status: NOERROR", out.stdout, out.stdout + out.stderr)
            self.assertIn("HTTP/2", out.stdout)

    def _http(self, method: str, path: str, **kw: Any) -> httpx.Response:
        with httpx.Client(verify=certificates().ca_file, timeout=10) as client:
            return client.request(method, f"https://127.0.0.1:{self.port}{path}", **kw)

    @inlineCallbacks
    def test_cache_control_is_lowest_ttl(self) -> Any:
        wire = dns.message.make_query("a.example.org.", "A").to_wire()
        r = yield deferToThread(self._http, "POST", "/dns-query", content=wire,
                                headers={"content-type": "application/dns-message"})
        self.assertEqual(r.status_code, 200)
        self.assertEqual(r.headers["content-type"], "application/dns-message")
        # whoami's records have TTL 0.
        self.assertEqual(r.headers["cache-control"], "max-age=0")

    def _http2(self, method: str, path: str, **kw: Any) -> httpx.Response:
        with httpx.Client(verify=certificates().ca_file, timeout=10, http1=False, http2=True) as client:
            r = client.request(method, f"https://127.0.0.1:{self.port}{path}", **kw)
            assert r.http_version == "HTTP/2", r.http_version
            return r

    def _cases(self) -> list[tuple[str, str, dict[str, Any], int]]:
        """(method, target, httpx arguments, status CoreDNS gives) for requests at the edges of
        RFC 8484 as CoreDNS's ServeHTTP and plugin/pkg/doh read them."""
        wire = dns.message.make_query("a.example.", "A").to_wire()
        query = base64.urlsafe_b64encode(wire).rstrip(b"=").decode()
        padded = base64.urlsafe_b64encode(dns.message.make_query("ab.example.", "A").to_wire()).decode()
        assert padded.endswith("=")

        def header(flags: int, counts: tuple[int, int, int, int] = (1, 0, 0, 0)) -> str:
            bad = wire[:2] + struct.pack("!H", flags) + struct.pack("!4H", *counts) + wire[12:]
            return base64.urlsafe_b64encode(bad).rstrip(b"=").decode()

        return [
            # GET: the one dns parameter, whatever else the query string holds.
            ("GET", f"/dns-query?dns={query}", {}, 200),
            ("GET", f"/dns-query?ct=application/dns-message&dns={query}&x=1", {}, 200),
            ("GET", f"/dns-query?a;b=1&dns={query}", {}, 200),  # Go drops the pair with ';'
            ("GET", f"/dns%2Dquery?dns={query}", {}, 200),  # URL.Path is decoded
            ("GET", f"/dns-query?dns={query};x=1", {}, 400),
            ("GET", f"/dns-query?dns={query}&dns={query}", {}, 400),
            ("GET", f"/dns-query?dns={query}&dns=", {}, 400),
            ("GET", "/dns-query?dns=", {}, 400),
            ("GET", "/dns-query?ct=1", {}, 400),
            ("GET", "/dns-query", {}, 400),
            ("GET", f"/dns-query?dns={padded}", {}, 400),  # RawURLEncoding: no padding
            ("GET", "/dns-query?dns=!!notbase64", {}, 400),
            ("GET", f"/dns-query?dns={query.replace('A', '+', 1)}", {}, 400),
            ("GET", "/dns-query?dns=AAAA", {}, 400),  # too short for a header
            # miekg/dns's accept rules refuse these: CoreDNS answers 400, not FORMERR or NOTIMP.
            ("GET", f"/dns-query?dns={header(0x8100)}", {}, 400),  # a response
            ("GET", f"/dns-query?dns={header(0x2800)}", {}, 400),  # UPDATE
            ("GET", f"/dns-query?dns={header(0x0100, (2, 0, 0, 0))}", {}, 400),  # two questions
            # POST: the body, of any content type (CoreDNS does not look at it).
            ("POST", "/dns-query", {"content": wire, "headers": {"content-type": MIME}}, 200),
            ("POST", "/dns-query", {"content": wire, "headers": {"content-type": "text/plain"}}, 200),
            ("POST", "/dns-query", {"content": wire}, 200),
            ("POST", "/dns-query", {"content": b"", "headers": {"content-type": MIME}}, 400),
            ("POST", "/dns-query", {"content": b"x" * 40, "headers": {"content-type": MIME}}, 400),
            ("PUT", "/dns-query", {"content": wire}, 400),
            ("DELETE", f"/dns-query?dns={query}", {}, 400),
            ("GET", "/other", {}, 404),
            ("POST", "/dns-query/", {"content": wire}, 404),
        ]

    def _check(self, send: Any) -> list[str]:
        wrong = []
        for method, path, kw, status in self._cases():
            r = send(method, path, **kw)
            body_ok = (r.content == b"\n") if status == 404 else (
                r.content == b"invalid request\n" if status == 400 else r.headers["content-type"] == MIME)
            if r.status_code != status or not body_ok:
                wrong.append(f"{method} {path[:60]}: {r.status_code} {r.content[:40]!r}, expected {status}")
        return wrong

    @inlineCallbacks
    def test_edge_cases_get_coredns_statuses_over_http1(self) -> Any:
        wrong = yield deferToThread(self._check, self._http)
        self.assertEqual(wrong, [])

    @inlineCallbacks
    def test_edge_cases_get_coredns_statuses_over_h2(self) -> Any:
        wrong = yield deferToThread(self._check, self._http2)
        self.assertEqual(wrong, [])

    @inlineCallbacks
    def test_every_status_is_counted_with_the_server_label(self) -> Any:
        address = next(iter(self.server.ports))
        self.assertTrue(address.startswith("https://"), address)
        before = {status: self._count(status) for status in ("200", "400", "404")}
        yield deferToThread(self._check, self._http2)
        cases = self._cases()
        for status in before:
            expected = sum(1 for case in cases if str(case[3]) == status)
            self.assertEqual(self._count(status) - before[status], expected, status)

    def _big_body(self, send: Any) -> str:
        try:
            r = send("POST", "/dns-query", content=b"\0" * (10 << 20),
                     headers={"content-type": "application/dns-message"})
        except httpx.HTTPError as exc:
            return type(exc).__name__  # cut off before the whole body was sent
        return f"{r.status_code} {r.content!r}"

    @inlineCallbacks
    def test_ten_megabyte_body_is_cut_off(self) -> Any:
        outcome = yield deferToThread(self._big_body, self._http)
        self.assertNotIn(outcome[:3], ("200", "500"), outcome)
        reply = yield deferToThread(doh_query, self.port, "b.example.org.")
        self.assertEqual(reply.rcode(), 0)

    @inlineCallbacks
    def test_ten_megabyte_body_over_h2_gets_400_and_the_stream_reset(self) -> Any:
        outcome = yield deferToThread(self._big_body, self._http2)
        # 400 once 64 KiB are passed; the stream reset stops the client sending the rest.
        self.assertIn(outcome, ("400 b'invalid request\\n'", "RemoteProtocolError"))
        reply = yield deferToThread(doh_query, self.port, "c.example.org.", h2=True)
        self.assertEqual(reply.rcode(), 0)


class DoHNoReplyTests(unittest.TestCase):
    """A query the chain drops (erratic's ``drop``) gets 500 ``No response``, as CoreDNS answers
    it (RFC 8484 4.2.1), counted with status 500."""

    @inlineCallbacks
    def test_dropped_query_is_500_over_http1_and_h2(self) -> Any:
        certs = certificates()
        server = InProcessServer(
            f"https://.:0 {{\n tls {certs.cert_file} {certs.key_file}\n erratic {{\n  drop 1\n }}\n}}\n"
        )
        yield server.start()
        self.addCleanup(server.stop)
        address = next(iter(server.ports))
        before = https_responses.labels(address, "500")._value.get()  # type: ignore[attr-defined]
        wire = dns.message.make_query("dropped.example.", "A").to_wire()

        def post(h2: bool) -> httpx.Response:
            with httpx.Client(verify=certs.ca_file, timeout=10, http1=not h2, http2=h2) as client:
                return client.post(f"https://127.0.0.1:{server.port}/dns-query", content=wire)

        for h2 in (False, True):
            r = yield deferToThread(post, h2)
            self.assertEqual((r.status_code, r.content, r.http_version),
                             (500, b"No response\n", "HTTP/2" if h2 else "HTTP/1.1"))
        after = https_responses.labels(address, "500")._value.get()  # type: ignore[attr-defined]
        self.assertEqual(after - before, 2)


class DnsperfTests(unittest.TestCase):
    """dnsperf's DoH client parses one TLS read at a time and takes one reply from it: replies
    in flight together must each come in records of their own, or dnsperf loses them."""

    @inlineCallbacks
    def test_dnsperf_doh_gets_every_reply(self) -> Any:
        if shutil.which("dnsperf") is None:
            raise unittest.SkipTest("dnsperf is not installed")
        certs = certificates()
        server = InProcessServer(f"https://.:0 {{\n tls {certs.cert_file} {certs.key_file}\n whoami\n}}\n")
        yield server.start()
        self.addCleanup(server.stop)
        folder = tempfile.mkdtemp(prefix="doh-dnsperf-")
        self.addCleanup(shutil.rmtree, folder, True)
        queries = os.path.join(folder, "queries")
        with open(queries, "w") as f:
            f.write("".join(f"q{i}.example. A\n" for i in range(300)))
        for method in ("GET", "POST"):
            out = yield deferToThread(
                subprocess.run,
                ["dnsperf", "-m", "doh", "-s", "127.0.0.1", "-p", str(server.port), "-d", queries, "-n", "1",
                 "-c", "2", "-q", "20", "-t", "3", "-O", f"doh-uri=https://127.0.0.1:{server.port}/dns-query",
                 "-O", f"doh-method={method}"],
                capture_output=True, text=True, timeout=60,
            )
            self.assertIn("Queries completed:    300 ", out.stdout, out.stdout + out.stderr)
            self.assertIn("Queries lost:         0 ", out.stdout)


class DoHOptionsTests(unittest.TestCase):
    @inlineCallbacks
    def test_readme_corefiles_start_and_answer(self) -> Any:
        for name in ("https_1.corefile", "https_2.corefile", "tls_3.corefile"):
            server = InProcessServer(corefile(name))
            yield server.start()
            try:
                if "https_" in name:
                    reply = yield deferToThread(doh_query, server.port, "a.example.org.")
                    self.assertEqual(reply.rcode(), 0)
            finally:
                yield server.stop()

    def _hold(self, port: int, count: int, factory: Any) -> bool:
        """Hold ``count`` connections; one more is not accepted until one of them closes."""
        import socket

        from twisted_coredns.testing import wait_for

        held = [socket.create_connection(("127.0.0.1", port), timeout=3) for _ in range(count)]
        try:
            wait_for(lambda: len(factory.protocols) >= count, 5, "the held connections accepted")
            try:
                doh_query(port, "c.example.org.", timeout=1.5)
                served_at_cap = True
            except Exception:
                served_at_cap = False
            held.pop().close()
            reply = doh_query(port, "d.example.org.", timeout=3)
            return not served_at_cap and reply.rcode() == 0
        finally:
            for s in held:
                s.close()

    @inlineCallbacks
    def test_max_connections_caps_the_listener(self) -> Any:
        certs = certificates()
        server = InProcessServer(
            f"https://.:0 {{\n tls {certs.cert_file} {certs.key_file}\n https {{\n  max_connections 3\n }}\n"
            " whoami\n}\n"
        )
        yield server.start()
        self.addCleanup(server.stop)
        factory = server.service.servers[0].ports[0].factory
        ok = yield deferToThread(self._hold, server.port, 3, factory)
        self.assertTrue(ok)

    @inlineCallbacks
    def test_plain_http_without_tls(self) -> Any:
        server = InProcessServer("https://.:0 {\n whoami\n}\n")
        yield server.start()
        self.addCleanup(server.stop)
        wire = dns.message.make_query("a.example.org.", "A").to_wire()

        def post() -> httpx.Response:
            return httpx.post(f"http://127.0.0.1:{server.port}/dns-query", content=wire,
                              headers={"content-type": "application/dns-message"}, timeout=5)

        r = yield deferToThread(post)
        self.assertEqual(r.status_code, 200)
        self.assertEqual(dns.message.from_wire(r.content).rcode(), 0)


class MaxAgeTests(unittest.SynchronousTestCase):
    """``cache-control: max-age`` is CoreDNS's MinimalTTLWithMaximum of the reply."""

    def _reply(self, rcode: int = 0, answer: str = "", authority: str = "") -> tuple[bytes, int]:
        query = dns.message.make_query("a.example.", "A", want_dnssec=False, use_edns=True)
        reply = dns.message.make_response(query)
        reply.set_rcode(rcode)
        for section, text in ((reply.answer, answer), (reply.authority, authority)):
            for line in filter(None, text.split("\n")):
                name, ttl, rdclass, rdtype, rdata = line.split(" ", 4)
                section.append(dns.rrset.from_text(name, int(ttl), rdclass, rdtype, rdata))
        return reply.to_wire(), dns.rdatatype.A

    def test_cases(self) -> None:
        soa = "example. 900 IN SOA ns.example. h.example. 1 2 3 4 60"
        self.assertEqual(max_age(*self._reply(answer="a.example. 300 IN A 192.0.2.1")), 300)
        self.assertEqual(max_age(*self._reply(answer="a.example. 7200 IN A 192.0.2.1")), 3600)
        self.assertEqual(max_age(*self._reply(rcode=3, authority=soa)), 900)  # NXDOMAIN: the SOA's TTL
        self.assertEqual(max_age(*self._reply(rcode=2)), 5)  # an error
        self.assertEqual(max_age(*self._reply()), 5)  # nothing but OPT
        self.assertEqual(max_age(*self._reply(authority="example. 900 IN NS ns.example.")), 5)  # delegation
