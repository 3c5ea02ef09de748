"""forward against real upstreams: unbound, a second twisted-coredns process, and small fake
upstreams (Twisted, on 127.0.0.1) that drop, refuse, truncate, delay or count what they get."""

from __future__ import annotations

import socket
import struct
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import dns.edns
import dns.flags
import dns.message
import dns.rcode
import dns.rrset
from twisted.internet import reactor, threads
from twisted.internet.defer import Deferred, gatherResults, inlineCallbacks
from twisted.internet.error import CannotListenError
from twisted.internet.protocol import DatagramProtocol, Factory, Protocol
from twisted.internet.task import deferLater
from twisted.trial.unittest import SkipTest, SynchronousTestCase, TestCase

from twisted_coredns import metrics
from twisted_coredns.plugins.forward.forward import Forward
from twisted_coredns.request import Request
from twisted_coredns.testing import InProcessServer, SubprocessServer, make_query
from twisted_coredns.testing.unbound import UnboundServer, unbound_missing

RECORDS = [
    "a.example.test. 300 IN A 127.0.0.2",
    "a.example.test. 300 IN AAAA ::2",
    "dns.upstream.test. 300 IN A 127.0.0.1",
] + [f'big.example.test. 300 IN TXT "{"x" * 100}{i}"' for i in range(20)]

Behaviour = Callable[[dns.message.Message, str], Any]


def answer(q: dns.message.Message, rcode: int = 0, tc: bool = False, ip: str = "127.0.0.9") -> bytes:
    r = dns.message.make_response(q)
    r.set_rcode(rcode)
    if rcode == 0 and q.question[0].rdtype == 1 and q.question[0].name.to_text() != ".":
        r.answer.append(dns.rrset.from_text(q.question[0].name, 60, "IN", "A", ip))
    if tc:
        r.flags |= dns.flags.TC
        r.answer = []
    return r.to_wire()


class _UDP(DatagramProtocol):
    def __init__(self, up: FakeUpstream) -> None:
        self.up = up

    def datagramReceived(self, data: bytes, addr: Any) -> None:
        self.up.handle(data, "udp", addr, lambda wire: self.transport.write(wire, addr))


class _TCP(Protocol):
    def __init__(self, up: FakeUpstream) -> None:
        self.up = up
        self.buf = b""

    def connectionMade(self) -> None:
        self.up.connections += 1

    def dataReceived(self, data: bytes) -> None:
        self.buf += data
        while len(self.buf) >= 2 and len(self.buf) >= 2 + struct.unpack("!H", self.buf[:2])[0]:
            n = struct.unpack("!H", self.buf[:2])[0]
            msg, self.buf = self.buf[2 : 2 + n], self.buf[2 + n :]
            peer = self.transport.getPeer()
            self.up.handle(
                msg,
                "tcp",
                (peer.host, peer.port),
                lambda wire: self.transport.write(struct.pack("!H", len(wire)) + wire),
            )


class FakeUpstream:
    """A DNS server in this reactor: ``behaviour(query, proto)`` returns reply bytes, ``None``
    (drop it), or a Deferred of either. It keeps every query it got."""

    def __init__(self, behaviour: Behaviour | None = None) -> None:
        self.behaviour = behaviour or (lambda q, proto: answer(q))
        self.queries: list[tuple[str, tuple[str, int], dns.message.Message, bytes]] = []
        self.connections = 0
        self.ports: list[Any] = []
        self.port = 0

    def start(self) -> FakeUpstream:
        while True:
            udp = reactor.listenUDP(0, _UDP(self), interface="127.0.0.1")
            self.port = udp.getHost().port
            try:
                tcp = reactor.listenTCP(
                    self.port, Factory.forProtocol(lambda: _TCP(self)), interface="127.0.0.1"
                )
            except CannotListenError:
                udp.stopListening()
                continue
            self.ports = [udp, tcp]
            return self

    def stop(self) -> Any:
        return gatherResults([p.stopListening() for p in self.ports])

    def handle(self, data: bytes, proto: str, addr: Any, send: Callable[[bytes], None]) -> None:
        q = dns.message.from_wire(data)
        self.queries.append((proto, addr, q, data))
        result = self.behaviour(q, proto)
        if isinstance(result, Deferred):
            result.addCallback(lambda wire: wire is not None and send(wire))
        elif result is not None:
            send(result)

    @property
    def probes(self) -> list[dns.message.Message]:
        """The health checks received (NS queries)."""
        return [q for _p, _a, q, _w in self.queries if q.question[0].rdtype == 2]

    @property
    def lookups(self) -> list[tuple[str, tuple[str, int], dns.message.Message, bytes]]:
        return [e for e in self.queries if e[2].question[0].rdtype != 2]


def drop(q: dns.message.Message, proto: str) -> None:
    return None


def sample(name: str, labels: dict[str, str] | None = None) -> float:
    return metrics.REGISTRY.get_sample_value(name, labels or {}) or 0.0


class _ForwardCase(TestCase):
    timeout = 60

    def upstream(self, behaviour: Behaviour | None = None) -> FakeUpstream:
        up = FakeUpstream(behaviour).start()
        self.addCleanup(up.stop)
        return up

    @inlineCallbacks
    def server(self, corefile: str) -> Any:
        srv = InProcessServer(corefile)
        yield srv.start()
        self.addCleanup(srv.stop)
        return srv

    def forward_of(self, srv: InProcessServer) -> Forward:
        handler = srv.instance.blocks[0].handlers[0]
        assert isinstance(handler, Forward)
        return handler

    def wait(self, seconds: float) -> Deferred[None]:
        return deferLater(reactor, seconds, lambda: None)


class UnboundTests(_ForwardCase):
    """A real recursive server (unbound with local data) behind forward."""

    unbound: UnboundServer

    def setUp(self) -> None:
        # trial has no setUpClass: one unbound per test (it starts in a fraction of a second).
        reason = unbound_missing()
        if reason:
            raise SkipTest(reason)
        self.unbound = UnboundServer(RECORDS).start()
        self.addCleanup(self.unbound.stop)

    @inlineCallbacks
    def test_udp_and_tcp_relay_keep_the_upstream_reply(self) -> Any:
        srv = yield self.server(f". {{\n forward . 127.0.0.1:{self.unbound.port}\n}}\n")
        for tcp in (False, True):
            q = make_query("A.Example.Test.", "A", edns=True)
            q.id = 4242
            r = yield srv.query("", message=q, tcp=tcp)
            self.assertEqual(r.id, 4242)
            self.assertEqual(r.rcode(), dns.rcode.NOERROR)
            self.assertTrue(r.flags & dns.flags.AA, "unbound's AA flag kept")
            self.assertTrue(r.flags & dns.flags.RA)
            self.assertEqual(r.edns, 0)
            self.assertEqual([rd.address for rd in r.answer[0]], ["127.0.0.2"])
            self.assertEqual(str(r.question[0].name), "A.Example.Test.")
        nx = yield srv.query("nope.example.test.", "A")
        self.assertEqual(nx.rcode(), dns.rcode.NXDOMAIN)

    @inlineCallbacks
    def test_large_answers_truncate_over_udp_and_pass_over_tcp(self) -> Any:
        srv = yield self.server(f". {{\n forward . 127.0.0.1:{self.unbound.port}\n}}\n")
        small = yield srv.query("big.example.test.", "TXT")
        self.assertTrue(small.flags & dns.flags.TC)
        full = yield srv.query("big.example.test.", "TXT", tcp=True)
        self.assertEqual(len(full.answer[0]), 20)

    @inlineCallbacks
    def test_resolv_conf_file(self) -> Any:
        with tempfile.NamedTemporaryFile("w", suffix=".conf", delete=False) as f:
            f.write("nameserver 127.0.0.1\n")
        self.addCleanup(Path(f.name).unlink)
        # A resolv.conf names port 53: point the upstream's port at unbound after setup.
        srv = yield self.server(f". {{\n forward . {f.name}\n}}\n")
        proxy = self.forward_of(srv).proxies[0]
        self.assertEqual(proxy.addr, "127.0.0.1:53")
        proxy.port = self.unbound.port
        r = yield srv.query("a.example.test.", "A")
        self.assertEqual(r.answer[0][0].address, "127.0.0.2")

    @inlineCallbacks
    def test_hostname_upstream_resolved_with_resolver(self) -> Any:
        port = self.unbound.port
        srv = yield self.server(
            f". {{\n forward . dns.upstream.test:{port} {{\n  resolver 127.0.0.1:{port}\n }}\n}}\n"
        )
        self.assertEqual(self.forward_of(srv).proxies[0].addr, f"127.0.0.1:{port}")
        r = yield srv.query("a.example.test.", "AAAA")
        self.assertEqual(r.answer[0][0].address, "::2")

    @inlineCallbacks
    def test_killed_upstream_fails_over_and_is_reported(self) -> Any:
        dead = UnboundServer(RECORDS).start()
        dead_port = dead.port
        dead.stop()
        srv = yield self.server(
            f". {{\n forward . 127.0.0.1:{dead_port} 127.0.0.1:{self.unbound.port} {{\n  policy sequential\n"
            f"  max_fails 0\n }}\n}}\n"
        )
        r = yield srv.query("a.example.test.", "A")
        self.assertEqual(r.answer[0][0].address, "127.0.0.2")
        # Alone, the dead upstream gives SERVFAIL and Go's error text.
        only_dead = yield self.server(f". {{\n forward . 127.0.0.1:{dead_port}\n}}\n")
        f = self.forward_of(only_dead)
        resp = yield f.serve(Request(make_query("a.example.test.").to_wire(), ("127.0.0.1", 5000), "udp"))
        self.assertEqual(resp.rcode, dns.rcode.SERVFAIL)
        self.assertFalse(resp.written)
        self.assertRegex(
            str(resp.error),
            rf"^read udp 127\.0\.0\.1:\d+->127\.0\.0\.1:{dead_port}: read: connection refused$",
        )
        tcp = yield f.serve(Request(make_query("a.example.test.").to_wire(), ("127.0.0.1", 5000), "tcp"))
        self.assertEqual(str(tcp.error), f"dial tcp 127.0.0.1:{dead_port}: connect: connection refused")

    @inlineCallbacks
    def test_forward_to_a_second_twisted_coredns(self) -> Any:
        child = SubprocessServer(". {\n whoami\n}\n")
        yield threads.deferToThread(child.start)
        self.addCleanup(lambda: threads.deferToThread(child.stop))
        srv = yield self.server(f". {{\n forward . 127.0.0.1:{child.port}\n}}\n")
        r = yield srv.query("who.example.", "A", tcp=False)
        # whoami in the child saw forward's own socket: 127.0.0.1 and a port that is not ours.
        self.assertEqual(r.additional[0][0].address, "127.0.0.1")


class TLSTests(_ForwardCase):
    """DNS-over-TLS to unbound's tls-port with a certificate made for the test."""

    def setUp(self) -> None:
        reason = unbound_missing()
        if reason:
            raise SkipTest(reason)
        tmp = tempfile.TemporaryDirectory(prefix="forward-tls-")
        self.addCleanup(tmp.cleanup)
        self.ca, cert, key = _make_certs(Path(tmp.name), "dns.test")
        self.unbound = UnboundServer(RECORDS, tls=(cert, key)).start()
        self.addCleanup(self.unbound.stop)

    @inlineCallbacks
    def test_per_upstream_server_name(self) -> Any:
        srv = yield self.server(
            f". {{\n forward . tls://127.0.0.1%dns.test:{self.unbound.tls_port} {{\n"
            f"  tls {self.ca}\n }}\n}}\n"
        )
        r = yield srv.query("a.example.test.", "A")
        self.assertEqual(r.answer[0][0].address, "127.0.0.2")
        self.assertGreater(
            sample(
                "coredns_proxy_conn_cache_misses_total",
                {"proxy_name": "forward", "to": f"127.0.0.1:{self.unbound.tls_port}", "proto": "tcp-tls"},
            ),
            0,
        )

    @inlineCallbacks
    def test_tls_servername_and_a_wrong_name_fails(self) -> Any:
        good = yield self.server(
            f". {{\n forward . tls://127.0.0.1:{self.unbound.tls_port} {{\n  tls {self.ca}\n"
            f"  tls_servername dns.test\n }}\n}}\n"
        )
        r = yield good.query("a.example.test.", "A")
        self.assertEqual(r.rcode(), dns.rcode.NOERROR)
        bad = yield self.server(
            f". {{\n forward . tls://127.0.0.1:{self.unbound.tls_port} {{\n  tls {self.ca}\n"
            f"  tls_servername other.test\n  max_fails 0\n }}\n}}\n"
        )
        r = yield bad.query("a.example.test.", "A", timeout=8)
        self.assertEqual(r.rcode(), dns.rcode.SERVFAIL)


def _make_certs(directory: Path, name: str) -> tuple[str, str, str]:
    """A CA and a server certificate for ``name``, written as PEM files."""
    import datetime

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    now = datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "forward test CA")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=2))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=2))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(name)]), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    pem = serialization.Encoding.PEM
    ca_path, cert_path, key_path = directory / "ca.pem", directory / "cert.pem", directory / "key.pem"
    ca_path.write_bytes(ca.public_bytes(pem))
    cert_path.write_bytes(cert.public_bytes(pem))
    key_path.write_bytes(
        key.private_bytes(pem, serialization.PrivateFormat.TraditionalOpenSSL, serialization.NoEncryption())
    )
    return str(ca_path), str(cert_path), str(key_path)


class TransportTests(_ForwardCase):
    @inlineCallbacks
    def test_follows_the_client_and_relays_its_bytes(self) -> Any:
        up = self.upstream()
        srv = yield self.server(f". {{\n forward . 127.0.0.1:{up.port}\n}}\n")
        q = make_query("x.example.", "A", edns=True)
        q.use_edns(0, 0, 1400, options=[dns.edns.GenericOption(65001, b"hello")])
        q.id = 777
        yield srv.query("", message=q)
        yield srv.query("y.example.", "A", tcp=True)
        protos = [p for p, _a, _q, _w in up.lookups]
        self.assertEqual(protos, ["udp", "tcp"])
        wire = up.lookups[0][3]
        self.assertNotEqual(wire[:2], q.to_wire()[:2], "a fresh ID upstream")
        self.assertEqual(wire[2:], q.to_wire()[2:], "the client's bytes, EDNS option included")

    @inlineCallbacks
    def test_other_classes_go_upstream(self) -> Any:
        up = self.upstream(lambda q, proto: dns.message.make_response(q).to_wire())
        srv = yield self.server(f". {{\n forward . 127.0.0.1:{up.port}\n}}\n")
        r = yield srv.query("version.bind.", "TXT", rdclass="CH")
        self.assertEqual(r.rcode(), dns.rcode.NOERROR, "CH is served (CoreDNS's EnableChaos)")
        self.assertEqual(up.lookups[0][2].question[0].rdclass, 3)

    @inlineCallbacks
    def test_force_tcp(self) -> Any:
        up = self.upstream()
        srv = yield self.server(f". {{\n forward . 127.0.0.1:{up.port} {{\n  force_tcp\n }}\n}}\n")
        yield srv.query("x.example.", "A")
        self.assertEqual([p for p, *_ in up.lookups], ["tcp"])

    @inlineCallbacks
    def test_prefer_udp_retries_truncated_over_tcp(self) -> Any:
        up = self.upstream(lambda q, proto: answer(q, tc=(proto == "udp")))
        srv = yield self.server(f". {{\n forward . 127.0.0.1:{up.port} {{\n  prefer_udp\n }}\n}}\n")
        r = yield srv.query("x.example.", "A", tcp=True)
        self.assertEqual([p for p, *_ in up.lookups], ["udp", "tcp"])
        self.assertFalse(r.flags & dns.flags.TC)
        self.assertEqual(r.answer[0][0].address, "127.0.0.9")

    @inlineCallbacks
    def test_truncated_reply_relayed_without_prefer_udp(self) -> Any:
        up = self.upstream(lambda q, proto: answer(q, tc=(proto == "udp")))
        srv = yield self.server(f". {{\n forward . 127.0.0.1:{up.port}\n}}\n")
        r = yield srv.query("x.example.", "A")
        self.assertTrue(r.flags & dns.flags.TC)
        self.assertEqual([p for p, *_ in up.lookups], ["udp"])

    @inlineCallbacks
    def test_mismatched_reply_is_formerr(self) -> Any:
        def other(q: dns.message.Message, proto: str) -> bytes:
            return answer(dns.message.make_query("other.example.", "A", id=q.id))

        up = self.upstream(other)
        srv = yield self.server(f". {{\n forward . 127.0.0.1:{up.port}\n}}\n")
        r = yield srv.query("x.example.", "A")
        self.assertEqual(r.rcode(), dns.rcode.FORMERR)

    @inlineCallbacks
    def test_refused_upstream_is_relayed(self) -> Any:
        up = self.upstream(lambda q, proto: answer(q, dns.rcode.REFUSED))
        srv = yield self.server(f". {{\n forward . 127.0.0.1:{up.port}\n}}\n")
        r = yield srv.query("x.example.", "A")
        self.assertEqual(r.rcode(), dns.rcode.REFUSED)
        self.assertEqual(up.probes, [], "a reply is not an error: no health check")

    @inlineCallbacks
    def test_except_and_from(self) -> Any:
        up = self.upstream()
        srv = yield self.server(
            f". {{\n forward example.org 127.0.0.1:{up.port} {{\n  except skip.example.org\n }}\n"
            " whoami\n}\n"
        )
        fwd = yield srv.query("a.example.org.", "A")
        self.assertEqual(fwd.answer[0][0].address, "127.0.0.9")
        for name in ("x.skip.example.org.", "other.test."):
            r = yield srv.query(name, "A")
            self.assertFalse(r.answer, name)
            self.assertEqual(len(r.additional), 2, f"{name}: whoami answered")
        apex = yield srv.query("example.org.", "A")
        self.assertEqual(apex.answer[0][0].address, "127.0.0.9")

    @inlineCallbacks
    def test_source_address(self) -> Any:
        up = self.upstream()
        srv = yield self.server(
            f". {{\n forward . 127.0.0.1:{up.port} {{\n  source_address 127.0.0.2\n }}\n}}\n"
        )
        yield srv.query("x.example.", "A")
        yield srv.query("x.example.", "A", tcp=True)
        self.assertEqual([a[0] for _p, a, _q, _w in up.lookups], ["127.0.0.2", "127.0.0.2"])


class ConnectionCacheTests(_ForwardCase):
    @inlineCallbacks
    def test_reuse_and_expire(self) -> Any:
        up = self.upstream()
        srv = yield self.server(f". {{\n forward . 127.0.0.1:{up.port}\n}}\n")
        to = {"proxy_name": "forward", "to": f"127.0.0.1:{up.port}", "proto": "udp"}
        for _ in range(3):
            yield srv.query("x.example.", "A")
        self.assertEqual(len({a for _p, a, _q, _w in up.lookups}), 1, "one socket reused")
        self.assertEqual(sample("coredns_proxy_conn_cache_misses_total", to), 1)
        self.assertEqual(sample("coredns_proxy_conn_cache_hits_total", to), 2)

        up2 = self.upstream()
        srv2 = yield self.server(f". {{\n forward . 127.0.0.1:{up2.port} {{\n  expire 100ms\n }}\n}}\n")
        yield srv2.query("x.example.", "A")
        yield self.wait(0.3)
        yield srv2.query("x.example.", "A")
        self.assertEqual(len({a for _p, a, _q, _w in up2.lookups}), 2, "an expired socket is not reused")

    @inlineCallbacks
    def test_max_age(self) -> Any:
        up = self.upstream()
        srv = yield self.server(
            f". {{\n forward . 127.0.0.1:{up.port} {{\n  expire 100ms\n  max_age 300ms\n }}\n}}\n"
        )
        for _ in range(8):
            yield srv.query("x.example.", "A")
            yield self.wait(0.07)
        self.assertGreaterEqual(
            len({a for _p, a, _q, _w in up.lookups}), 2, "a socket older than max_age is replaced"
        )

    @inlineCallbacks
    def test_max_idle_conns(self) -> Any:
        def slow(q: dns.message.Message, proto: str) -> Any:
            return deferLater(reactor, 0.2, answer, q)

        counts = []
        for extra in ("", "  max_idle_conns 1\n"):
            up = self.upstream(slow)
            srv = yield self.server(f". {{\n forward . 127.0.0.1:{up.port} {{\n  force_tcp\n{extra} }}\n}}\n")
            for _ in range(2):
                yield gatherResults([srv.query(f"q{i}.example.", "A") for i in range(4)])
            counts.append(up.connections)
        self.assertEqual(counts, [4, 7], "unlimited: 4 kept and reused; max_idle_conns 1: 3 closed each time")


class HealthTests(_ForwardCase):
    @inlineCallbacks
    def test_checks_start_after_an_error_and_revive(self) -> Any:
        state = {"answer": False}

        def flaky(q: dns.message.Message, proto: str) -> bytes | None:
            return answer(q) if state["answer"] else None

        up = self.upstream(flaky)
        srv = yield self.server(
            f". {{\n forward . 127.0.0.1:{up.port} {{\n  max_fails 1\n  health_check 100ms\n"
            f"  read_timeout 200ms\n }}\n}}\n"
        )
        proxy = self.forward_of(srv).proxies[0]
        self.assertEqual(up.probes, [], "no checks while nothing failed")
        r = yield srv.query("x.example.", "A", timeout=5)
        self.assertEqual(r.rcode(), dns.rcode.SERVFAIL)
        yield self.wait(2.5)
        self.assertGreaterEqual(len(up.probes), 2)
        probe = up.probes[0]
        self.assertEqual(
            (str(probe.question[0].name), bool(probe.flags & dns.flags.RD), probe.edns), (".", True, -1)
        )
        self.assertTrue(proxy.down(1), f"down after more than max_fails failed checks ({proxy.fails})")
        self.assertGreater(
            sample(
                "coredns_proxy_healthcheck_failures_total",
                {"proxy_name": "forward", "to": f"127.0.0.1:{up.port}"},
            ),
            1,
        )
        state["answer"] = True
        yield self.wait(1.5)  # a check in flight may take its whole 1s timeout
        self.assertEqual(proxy.fails, 0)
        self.assertFalse(proxy.down(1))
        seen = len(up.probes)
        yield self.wait(0.5)
        self.assertEqual(len(up.probes), seen, "a healthy upstream is not probed")
        r = yield srv.query("x.example.", "A")
        self.assertEqual(r.rcode(), dns.rcode.NOERROR)

    @inlineCallbacks
    def test_no_rec_and_domain(self) -> Any:
        up = self.upstream(drop)
        srv = yield self.server(
            f". {{\n forward . 127.0.0.1:{up.port} {{\n  health_check 100ms no_rec domain Probe.Example\n"
            f"  read_timeout 100ms\n  force_tcp\n }}\n}}\n"
        )
        r = yield srv.query("x.example.", "A", timeout=5)
        self.assertEqual(r.rcode(), dns.rcode.SERVFAIL)
        yield self.wait(1.5)
        self.assertTrue(up.probes)
        probe = up.probes[0]
        self.assertEqual(str(probe.question[0].name), "probe.example.")
        self.assertFalse(probe.flags & dns.flags.RD)
        self.assertIn(
            "tcp", {p for p, _a, q, _w in up.queries if q.question[0].rdtype == 2}, "checks use TCP"
        )

    @inlineCallbacks
    def test_max_fails_0_never_checks(self) -> Any:
        up = self.upstream(drop)
        srv = yield self.server(
            f". {{\n forward . 127.0.0.1:{up.port} {{\n  max_fails 0\n  health_check 50ms\n"
            f"  read_timeout 100ms\n }}\n}}\n"
        )
        r = yield srv.query("x.example.", "A", timeout=5)
        self.assertEqual(r.rcode(), dns.rcode.SERVFAIL)
        yield self.wait(0.6)
        self.assertEqual(up.probes, [])
        self.assertFalse(self.forward_of(srv).proxies[0].down(0))

    @inlineCallbacks
    def test_all_down_random_or_failfast(self) -> Any:
        for failfast in (False, True):
            up = self.upstream(lambda q, proto: None if q.question[0].rdtype == 2 else answer(q))
            opt = "  failfast_all_unhealthy_upstreams\n" if failfast else ""
            srv = yield self.server(f". {{\n forward . 127.0.0.1:{up.port} {{\n{opt} }}\n}}\n")
            self.forward_of(srv).proxies[0].fails = 3  # as after three failed checks
            before = sample("coredns_forward_healthcheck_broken_total")
            r = yield srv.query("x.example.", "A")
            self.assertEqual(sample("coredns_forward_healthcheck_broken_total"), before + 1)
            if failfast:
                self.assertEqual(r.rcode(), dns.rcode.SERVFAIL)
                self.assertEqual(up.lookups, [], "failfast: nothing sent")
            else:
                self.assertEqual(r.rcode(), dns.rcode.NOERROR, "all down: one upstream tried anyway")


class LimitsTests(_ForwardCase):
    @inlineCallbacks
    def test_read_timeout(self) -> Any:
        up = self.upstream(drop)
        srv = yield self.server(
            f". {{\n forward . 127.0.0.1:{up.port} {{\n  read_timeout 200ms\n  max_fails 0\n }}\n}}\n"
        )
        start = time.monotonic()
        r = yield srv.query("x.example.", "A", timeout=8)
        elapsed = time.monotonic() - start
        self.assertEqual(r.rcode(), dns.rcode.SERVFAIL)
        self.assertLess(elapsed, 1.5, "two attempts of 200ms, not of the default 2s")
        self.assertEqual(len(up.lookups), 2, "max_connect_attempts defaults to 2 per upstream")

    @inlineCallbacks
    def test_max_connect_attempts(self) -> Any:
        a, b = self.upstream(drop), self.upstream(drop)
        srv = yield self.server(
            f". {{\n forward . 127.0.0.1:{a.port} 127.0.0.1:{b.port} {{\n  read_timeout 100ms\n"
            f"  max_connect_attempts 1\n  max_fails 0\n }}\n}}\n"
        )
        r = yield srv.query("x.example.", "A", timeout=8)
        self.assertEqual(r.rcode(), dns.rcode.SERVFAIL)
        self.assertEqual(len(a.lookups) + len(b.lookups), 1)

    @inlineCallbacks
    def test_max_concurrent(self) -> Any:
        up = self.upstream(lambda q, proto: deferLater(reactor, 0.3, answer, q))
        srv = yield self.server(f". {{\n forward . 127.0.0.1:{up.port} {{\n  max_concurrent 1\n }}\n}}\n")
        f = self.forward_of(srv)
        before = sample("coredns_forward_max_concurrent_rejects_total")
        first = f.serve(Request(make_query("a.example.").to_wire(), ("127.0.0.1", 1), "udp"))
        second = f.serve(Request(make_query("b.example.").to_wire(), ("127.0.0.1", 2), "udp"))
        self.assertEqual(
            (second.rcode, str(second.error)), (dns.rcode.REFUSED, "concurrent queries exceeded maximum 1")
        )
        self.assertEqual(sample("coredns_forward_max_concurrent_rejects_total"), before + 1)
        r = yield first
        self.assertEqual(r.rcode, 0)
        third = yield f.serve(Request(make_query("c.example.").to_wire(), ("127.0.0.1", 3), "udp"))
        self.assertEqual(third.rcode, 0, "the slot is free again")
        self.assertEqual(up.probes, [], "not a health failure")


class PolicyTests(_ForwardCase):
    @inlineCallbacks
    def counts(self, policy: str, n: int = 12) -> Any:
        ups = [self.upstream(), self.upstream(), self.upstream()]
        to = " ".join(f"127.0.0.1:{u.port}" for u in ups)
        srv = yield self.server(f". {{\n forward . {to} {{\n  policy {policy}\n }}\n}}\n")
        for i in range(n):
            yield srv.query(f"q{i}.example.", "A")
        return [len(u.lookups) for u in ups]

    @inlineCallbacks
    def test_policies(self) -> Any:
        seq = yield self.counts("sequential")
        self.assertEqual(seq, [12, 0, 0])
        rr = yield self.counts("round_robin")
        self.assertEqual(rr, [4, 4, 4])
        rnd = yield self.counts("random", 60)
        self.assertTrue(all(c > 0 for c in rnd), rnd)


class NextAndFailoverTests(_ForwardCase):
    @inlineCallbacks
    def test_failover_rows(self) -> Any:
        """CoreDNS's TestFailover rows (tests/data/forward/setup_cases.json, rows 22-24)."""
        servfail = self.upstream(lambda q, proto: answer(q, dns.rcode.SERVFAIL))
        refused = self.upstream(lambda q, proto: answer(q, dns.rcode.REFUSED))
        good = self.upstream()
        order = {
            22: (servfail, refused, good, "failover ServFail Refused", True),
            23: (servfail, refused, good, "", False),
            24: (good, servfail, refused, "", True),
        }
        for row, (a, b, c, extra, has_record) in order.items():
            srv = yield self.server(
                f". {{\n forward . 127.0.0.1:{a.port} 127.0.0.1:{b.port} 127.0.0.1:{c.port} {{\n"
                f"  policy sequential\n  {extra}\n }}\n}}\n"
            )
            r = yield srv.query("example.org.", "A")
            self.assertEqual(bool(r.answer), has_record, f"row {row}")

    @inlineCallbacks
    def test_failover_stops_after_all_upstreams(self) -> Any:
        a = self.upstream(lambda q, proto: answer(q, dns.rcode.SERVFAIL))
        b = self.upstream(lambda q, proto: answer(q, dns.rcode.REFUSED))
        srv = yield self.server(
            f". {{\n forward . 127.0.0.1:{a.port} 127.0.0.1:{b.port} {{\n  policy sequential\n"
            f"  failover SERVFAIL REFUSED\n }}\n}}\n"
        )
        r = yield srv.query("x.example.", "A")
        self.assertEqual(r.rcode(), dns.rcode.REFUSED, "the last reply is returned")
        self.assertEqual((len(a.lookups), len(b.lookups)), (1, 1))

    @inlineCallbacks
    def test_next_rcode_and_next_on_nodata(self) -> Any:
        nx = self.upstream(lambda q, proto: answer(q, dns.rcode.NXDOMAIN))
        nodata = self.upstream(lambda q, proto: dns.message.make_response(q).to_wire())
        good = self.upstream()
        for first, option in ((nx, "next NXDOMAIN"), (nodata, "next_on_nodata")):
            srv = yield self.server(
                f". {{\n forward . 127.0.0.1:{first.port} {{\n  {option}\n }}\n"
                f" forward . 127.0.0.1:{good.port}\n}}\n"
            )
            r = yield srv.query("x.example.", "A")
            self.assertEqual(r.answer[0][0].address, "127.0.0.9", option)
            plain = yield self.server(
                f". {{\n forward . 127.0.0.1:{first.port}\n forward . 127.0.0.1:{good.port}\n}}\n"
            )
            r = yield plain.query("x.example.", "A")
            self.assertFalse(r.answer, f"without {option} the first reply stands")
        # next only passes to another forward.
        alone = yield self.server(
            f". {{\n forward . 127.0.0.1:{nx.port} {{\n  next NXDOMAIN\n }}\n whoami\n}}\n"
        )
        r = yield alone.query("x.example.", "A")
        self.assertEqual(r.rcode(), dns.rcode.NXDOMAIN)


class MetricsTests(_ForwardCase):
    @inlineCallbacks
    def test_request_duration(self) -> Any:
        up = self.upstream(lambda q, proto: answer(q, dns.rcode.NXDOMAIN))
        srv = yield self.server(f". {{\n forward . 127.0.0.1:{up.port}\n}}\n")
        yield srv.query("x.example.", "A")
        labels = {"proxy_name": "forward", "to": f"127.0.0.1:{up.port}", "rcode": "NXDOMAIN"}
        self.assertEqual(sample("coredns_proxy_request_duration_seconds_count", labels), 1)


class SubprocessTests(SynchronousTestCase):
    """The whole program: twisted-coredns forwarding to unbound, with the errors plugin's log."""

    def test_forward_and_error_log(self) -> None:
        reason = unbound_missing()
        if reason:
            raise SkipTest(reason)
        unbound = UnboundServer(RECORDS).start()
        self.addCleanup(unbound.stop)
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as hole:
            hole.bind(("127.0.0.1", 0))  # reads nothing, answers nothing
            hole_port = hole.getsockname()[1]
            srv = SubprocessServer(
                f". {{\n errors\n forward . 127.0.0.1:{unbound.port}\n}}\n"
                f"blackhole.test {{\n errors\n forward . 127.0.0.1:{hole_port} {{\n"
                "  read_timeout 100ms\n }\n}\n"
            )
            srv.start()
            self.addCleanup(srv.stop)
            r = srv.query("a.example.test.", "A")
            self.assertEqual(r.answer[0][0].address, "127.0.0.2")
            r = srv.query("x.blackhole.test.", "A", timeout=5)
            self.assertEqual(r.rcode(), dns.rcode.SERVFAIL)
            log = srv.wait_for_log("i/o timeout")
            self.assertRegex(
                log,
                rf"\[ERROR\] plugin/errors: 2 x\.blackhole\.test\. A: read udp "
                rf"[0-9.]+:\d+->127\.0\.0\.1:{hole_port}: i/o timeout",
            )


class DoHTests(_ForwardCase):
    """DNS-over-HTTPS to a twisted.web server on 127.0.0.1 with a test certificate."""

    def setUp(self) -> None:
        from twisted.internet import ssl
        from twisted.web import resource, server

        tmp = tempfile.TemporaryDirectory(prefix="forward-doh-")
        self.addCleanup(tmp.cleanup)
        self.ca, cert, key = _make_certs(Path(tmp.name), "doh.test")
        self.requests: list[tuple[bytes, bytes]] = []
        case = self

        class DNSQuery(resource.Resource):
            isLeaf = True

            def render(self, request: Any) -> bytes:
                import base64

                if request.method == b"GET":
                    b64 = request.args[b"dns"][0]
                    wire = base64.urlsafe_b64decode(b64 + b"=" * (-len(b64) % 4))
                else:
                    wire = request.content.read()
                case.requests.append((request.method, wire))
                request.setHeader(b"content-type", b"application/dns-message")
                return answer(dns.message.from_wire(wire))

        root = resource.Resource()
        root.putChild(b"dns-query", DNSQuery())
        site = server.Site(root)
        pem = Path(cert).read_bytes() + Path(key).read_bytes()
        options = ssl.PrivateCertificate.loadPEM(pem).options()
        self.port = reactor.listenSSL(0, site, options, interface="127.0.0.1")
        self.addCleanup(self.port.stopListening)

    @inlineCallbacks
    def test_post_and_get(self) -> Any:
        port = self.port.getHost().port
        for method in ("POST", "GET"):
            option = f"  doh_method {method}\n" if method == "GET" else ""
            srv = yield self.server(
                f". {{\n forward . https://127.0.0.1:{port} {{\n  tls {self.ca}\n  tls_servername doh.test\n"
                f"{option} }}\n}}\n"
            )
            r = yield srv.query("x.example.", "A")
            self.assertEqual(r.answer[0][0].address, "127.0.0.9")
            sent_method, wire = self.requests[-1]
            self.assertEqual(sent_method, method.encode())
            self.assertEqual(wire[:2], b"\x00\x00", "RFC 8484: ID 0")
            # The server restores the client's ID.
            self.assertNotEqual(r.id, 0)


class HostsUpstreamTests(_ForwardCase):
    """A second twisted-coredns process, serving example.test from hosts, as a real upstream."""

    UPSTREAM = (
        "example.test {\n hosts {\n  192.0.2.10 www.example.test\n  2001:db8::10 www.example.test\n"
        "  ttl 60\n }\n}\n"
    )

    def upstream_process(self) -> SubprocessServer:
        proc = SubprocessServer(self.UPSTREAM)
        proc.start()
        self.addCleanup(proc.stop)
        return proc

    @inlineCallbacks
    def check(self, corefile: str, cached: bool, ttl: int = 60) -> Any:
        srv = yield self.server(corefile)
        for _ in range(2 if cached else 1):
            r = yield srv.query("www.example.test.", "A")
            self.assertEqual([rd.address for rd in r.answer[0]], ["192.0.2.10"])
            self.assertEqual(r.rcode(), dns.rcode.NOERROR)
        r = yield srv.query("www.example.test.", "AAAA", tcp=True)
        self.assertEqual([rd.address for rd in r.answer[0]], ["2001:db8::10"])
        # the upstream's TTL (or cache's cap on it), within a few seconds
        self.assertLessEqual(r.answer[0].ttl, ttl)
        self.assertGreater(r.answer[0].ttl, ttl - 5)
        # EDNS goes up and comes back: hosts mirrors the DO bit of the query it got
        r = yield srv.query("www.example.test.", "AAAA", edns=0, payload=1400, want_dnssec=True)
        self.assertEqual(r.edns, 0)
        self.assertTrue(r.ednsflags & dns.flags.DO)
        r = yield srv.query("nothing.example.test.", "AAAA", edns=0)
        self.assertEqual(r.edns, 0)
        self.assertFalse(r.ednsflags & dns.flags.DO)
        return srv

    @inlineCallbacks
    def test_forward_to_hosts_process(self) -> Any:
        proc = self.upstream_process()
        corefile = f"example.test {{\n forward example.test 127.0.0.1:{proc.port}\n}}\n"
        srv = yield self.check(corefile, cached=False)
        r = yield srv.query("www.example.test.", "A")
        self.assertEqual(r.answer[0].ttl, 60)
        self.assertTrue(r.flags & dns.flags.AA, "the upstream's AA is relayed")
        # hosts has no SOA to make an NXDOMAIN from: CoreDNS's hosts answers SERVFAIL for an
        # unknown name, and forward relays the upstream's rcode as it is.
        r = yield srv.query("unknown.example.test.", "A")
        self.assertEqual(r.rcode(), dns.rcode.SERVFAIL)
        # a name the upstream knows, with no record of the type: NODATA, authoritative
        r = yield srv.query("www.example.test.", "TXT")
        self.assertEqual((r.rcode(), r.answer), (dns.rcode.NOERROR, []))
        self.assertTrue(r.flags & dns.flags.AA)

    @inlineCallbacks
    def test_forward_to_hosts_process_through_cache(self) -> Any:
        proc = self.upstream_process()
        corefile = f"example.test {{\n cache 30\n forward example.test 127.0.0.1:{proc.port}\n}}\n"
        srv = yield self.check(corefile, cached=True, ttl=30)
        r = yield srv.query("www.example.test.", "A")
        self.assertLessEqual(r.answer[0].ttl, 30)
        r = yield srv.query("unknown.example.test.", "A")
        self.assertEqual(r.rcode(), dns.rcode.SERVFAIL)
