"""DoQ (quic://) and DoH3 (https3://) with real clients: dnspython's dns.query.quic and
dns.query.https over HTTP/3, kdig +quic, an aioquic client for what those will not send; mutual
TLS in every client_auth mode, random bytes, DoQ's protocol errors and read timeout, the quic and
https3 setup errors."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from typing import Any

import dns.edns
import dns.exception
import dns.message
import dns.query
import dns.quic
import dns.rcode
from aioquic.quic import events
from aioquic.quic.configuration import QuicConfiguration
from aioquic.quic.connection import QuicConnection
from aioquic.tls import AlertDescription
from aioquic.tls import Context as TLSContext
from twisted.internet.defer import gatherResults, inlineCallbacks
from twisted.internet.threads import deferToThread
from twisted.trial import unittest

from tests.quic_client import RawQuicClient, doq_frame
from twisted_coredns.metrics.queries import https3_responses, quic_responses
from twisted_coredns.server.quic import _ServerConnection
from twisted_coredns.testing import InProcessServer, free_port
from twisted_coredns.testing.certs import certificates
from twisted_coredns.testing.setup import setup_error

DOQ_PROTOCOL_ERROR = 0x2
CRYPTO_ERROR = 0x100


def _client_conf(h3: bool, cert: str | None, key: str | None) -> QuicConfiguration:
    conf = QuicConfiguration(alpn_protocols=["h3"] if h3 else ["doq"], server_name="localhost")
    conf.load_verify_locations(certificates().ca_file)
    if cert is not None:
        conf.load_cert_chain(cert, key)
    return conf


REFUSED_WAIT = 1.5
"""dnspython's QUIC client does not wake a query when the server closes the connection: a refused
client's query ends in its timeout. Served ones take milliseconds."""


def _doq(port: int, name: str, cert: str | None = None, key: str | None = None, timeout: float = 3) -> Any:
    """dnspython's DoQ query, with a client certificate when given; the reply or the exception."""
    q = dns.message.make_query(name, "A")
    try:
        with dns.quic.SyncQuicManager(conf=_client_conf(False, cert, key)) as manager:
            conn = manager.connect("127.0.0.1", port)
            return dns.query.quic(q, "127.0.0.1", port=port, connection=conn, timeout=timeout)
    except (dns.exception.DNSException, OSError, EOFError, ValueError) as exc:
        return exc


def _doh3(
    port: int, name: str, post: bool, cert: str | None = None, key: str | None = None, timeout: float = 3
) -> Any:
    """dnspython's DoH query over HTTP/3; the reply or the exception."""
    q = dns.message.make_query(name, "A")
    try:
        with dns.quic.SyncQuicManager(conf=_client_conf(True, cert, key), h3=True) as manager:
            conn = manager.connect("127.0.0.1", port)
            return dns.query.https(
                q, "https://localhost/dns-query", bootstrap_address="127.0.0.1", port=port, session=conn,
                http_version=dns.query.HTTPVersion.H3, post=post, timeout=timeout,
            )
    except (dns.exception.DNSException, OSError, EOFError, ValueError) as exc:
        return exc


def _label(server: InProcessServer, port: int) -> str:
    return next(a for a in server.ports if a.endswith(f":{port}"))


class QuicTests(unittest.TestCase):
    @inlineCallbacks
    def setUp(self) -> Any:
        c = certificates()
        self.doq, self.doh3 = free_port(), free_port()
        corefile = f"""
quic://.:{self.doq} {{
    bind 127.0.0.1
    tls {c.cert_file} {c.key_file}
    quic {{
        max_streams 16
        worker_pool_size 4
    }}
    timeouts {{
        read 1
    }}
    whoami
}}
https3://.:{self.doh3} {{
    bind 127.0.0.1
    tls {c.cert_file} {c.key_file}
    https3 {{
        max_streams 16
        max_connections 2
    }}
    whoami
}}
"""
        self.server = InProcessServer(corefile)
        yield self.server.start()
        self.addCleanup(self.server.stop)

    @inlineCallbacks
    def test_doq_answers(self) -> Any:
        label = _label(self.server, self.doq)
        before = quic_responses.labels(label, "0x0")._value.get()
        reply = yield deferToThread(_doq, self.doq, "a.test.")
        self.assertEqual(reply.rcode(), dns.rcode.NOERROR)
        self.assertEqual(reply.additional[0][0].address, "127.0.0.1")
        # CoreDNS's request.Proto() is "udp" for DoQ (the remote is a *net.UDPAddr).
        self.assertTrue(str(reply.additional[1].name).startswith("_udp."))
        self.assertEqual(quic_responses.labels(label, "0x0")._value.get(), before + 1)

    @inlineCallbacks
    def test_kdig_quic(self) -> Any:
        if shutil.which("kdig") is None:
            raise AssertionError("kdig (knot-dnsutils) is needed for this test")
        c = certificates()
        out = yield deferToThread(
            subprocess.run,
            # +quic after the +tls options: kdig's +tls-* options choose TLS over TCP again.
            ["kdig", f"+tls-ca={c.ca_file}", "+tls-hostname=localhost", "+quic", "-p", str(self.doq),
             "@127.0.0.1", "k.test.", "A", "+timeout=3", "+retry=0"],
            capture_output=True, text=True, timeout=20,
        )
        self.assertIn("status: NOERROR", out.stdout, out.stdout + out.stderr)
        self.assertIn("127.0.0.1", out.stdout)

    @inlineCallbacks
    def test_random_bytes_are_ignored(self) -> Any:
        def junk() -> None:
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
                for first in (b"\x00", b"\xc0", b"\x40"):
                    s.sendto(first + os.urandom(1299), ("127.0.0.1", self.doq))
                s.sendto(b"\xc0\x00\x00\x00\x01", ("127.0.0.1", self.doq))

        yield deferToThread(junk)
        reply = yield deferToThread(_doq, self.doq, "b.test.")
        self.assertEqual(reply.rcode(), dns.rcode.NOERROR)

    @inlineCallbacks
    def test_protocol_errors_close_the_connection(self) -> Any:
        with_id = dns.message.make_query("p.test.", "A")
        with_id.id = 4321
        keepalive_option = dns.edns.GenericOption(dns.edns.OptionType.KEEPALIVE, b"")
        keepalive = dns.message.make_query("p.test.", "A", use_edns=0, options=[keepalive_option])
        keepalive.id = 0
        cases = {
            "a non-zero ID": doq_frame(with_id.to_wire()),
            "edns-tcp-keepalive": doq_frame(keepalive.to_wire()),
            "a length that is not the message's": b"\x00\x30" + b"\x00" * 20,
            "no DNS message": doq_frame(b"\x00\x00hello"),
        }

        def send(data: bytes) -> Any:
            with RawQuicClient(self.doq) as client:
                assert client.handshake()
                client.send(data)
                return client.terminated(3)

        label = _label(self.server, self.doq)
        for name, data in cases.items():
            before = quic_responses.labels(label, "0x2")._value.get()
            closed = yield deferToThread(send, data)
            self.assertIsNotNone(closed, name)
            self.assertEqual(closed.error_code, DOQ_PROTOCOL_ERROR, name)
            self.assertEqual(quic_responses.labels(label, "0x2")._value.get(), before + 1, name)
        reply = yield deferToThread(_doq, self.doq, "after.test.")
        self.assertEqual(reply.rcode(), dns.rcode.NOERROR)

    @inlineCallbacks
    def test_a_stream_left_unfinished_is_closed_after_the_read_timeout(self) -> Any:
        """CoreDNS (server_quic.go) sets the stream's read deadline to the server's read timeout
        (``timeouts { read 1 }`` here); a query not whole by then closes the connection with
        DOQ_PROTOCOL_ERROR. A whole query without the stream's end is answered, as CoreDNS reads
        the 2-byte length and that many bytes, and no further."""
        query = dns.message.make_query("slow.test.", "A")
        query.id = 0
        frame = doq_frame(query.to_wire())

        def half() -> tuple[Any, float, Any]:
            with RawQuicClient(self.doq) as client:
                assert client.handshake()
                client.send(frame[:7], end=False)
                start = time.monotonic()
                closed = client.terminated(5)
                return closed, time.monotonic() - start, None

        closed, waited, _ = yield deferToThread(half)
        self.assertIsNotNone(closed)
        self.assertEqual(closed.error_code, DOQ_PROTOCOL_ERROR)
        self.assertGreaterEqual(waited, 0.8)
        self.assertLess(waited, 3.0)

        def whole_without_end() -> Any:
            with RawQuicClient(self.doq) as client:
                assert client.handshake()
                stream = client.send(frame, end=False)
                return client.reply(stream)

        data = yield deferToThread(whole_without_end)
        self.assertIsNotNone(data)
        reply = dns.message.from_wire(data[2:])
        self.assertEqual(reply.rcode(), dns.rcode.NOERROR)
        self.assertEqual(reply.question[0].name.to_text(), "slow.test.")

    @inlineCallbacks
    def test_doh3_max_connections(self) -> Any:
        """``max_connections 2``: a third connection is closed once its handshake is done, with
        H3_EXCESSIVE_LOAD and "too many connections", as CoreDNS's limit listener closes it; once
        one of the two says goodbye, a new one is served."""

        def three() -> tuple[Any, Any]:
            held = [RawQuicClient(self.doh3, alpn=("h3",)) for _ in range(2)]
            try:
                for client in held:
                    assert client.handshake()
                with RawQuicClient(self.doh3, alpn=("h3",)) as third:
                    third.handshake()
                    over = third.terminated(3)
            finally:
                for client in held:
                    client.close()
            return over, _doh3(self.doh3, "after.test.", True)

        over, reply = yield deferToThread(three)
        self.assertIsNotNone(over)
        self.assertEqual(over.error_code, 0x107)
        self.assertEqual(over.reason_phrase, "too many connections")
        self.assertEqual(reply.rcode(), dns.rcode.NOERROR)

    @inlineCallbacks
    def test_doh3_post_and_get(self) -> Any:
        for post in (True, False):
            reply = yield deferToThread(_doh3, self.doh3, "e.test.", post)
            self.assertEqual(reply.rcode(), dns.rcode.NOERROR)
            self.assertEqual(reply.additional[0][0].address, "127.0.0.1")
        label = _label(self.server, self.doh3)
        self.assertGreaterEqual(https3_responses.labels(label, "200")._value.get(), 2)


MODES = ("nocert", "request", "require", "verify_if_given", "require_and_verify")
"""The tls plugin's client_auth values, and below what each does with a client that sends no
certificate, one signed by the CA, and one signed by another CA: Go's tls.ClientAuthType
(``require`` is Go's RequireAnyClientCert)."""
SERVED = {
    "nocert": (True, True, True),
    "request": (True, True, True),
    "require": (False, True, True),
    "verify_if_given": (True, True, False),
    "require_and_verify": (False, True, False),
}


class MutualTLSTests(unittest.TestCase):
    """``tls CERT KEY CA { client_auth MODE }`` on DoQ and DoH3."""

    @inlineCallbacks
    def setUp(self) -> Any:
        c = certificates()
        self.ports = {mode: free_port() for mode in MODES}
        self.doh3 = free_port()
        blocks = [
            f"quic://.:{port} {{\n bind 127.0.0.1\n tls {c.cert_file} {c.key_file} {c.ca_file} {{\n"
            f"  client_auth {mode}\n }}\n whoami\n}}\n"
            for mode, port in self.ports.items()
        ]
        blocks.append(
            f"https3://.:{self.doh3} {{\n bind 127.0.0.1\n tls {c.cert_file} {c.key_file} {c.ca_file} {{\n"
            "  client_auth require_and_verify\n }\n whoami\n}\n"
        )
        self.server = InProcessServer("".join(blocks))
        yield self.server.start()
        self.addCleanup(self.server.stop)

    def test_aioquic_still_has_the_private_flag(self) -> None:
        """server/quic.py asks for client certificates through aioquic's private
        ``tls.Context._request_client_certificate``, set in ``_initialize``; if an aioquic
        release renames either, this fails before the refusals below stop happening."""
        self.assertFalse(TLSContext(is_client=False)._request_client_certificate)
        self.assertTrue(hasattr(QuicConnection, "_initialize"))
        self.assertEqual(_ServerConnection._initialize.__qualname__, "_ServerConnection._initialize")

    @inlineCallbacks
    def test_every_mode_with_dnspython(self) -> Any:
        c = certificates()
        clients = {
            "no certificate": (None, None),
            "the CA's client": (c.client_cert_file, c.client_key_file),
            "a stranger": (c.stranger_cert_file, c.stranger_key_file),
        }
        # All at once: each refusal costs dnspython's timeout.
        cases = [
            (mode, who, served, deferToThread(_doq, port, "m.test.", cert, key, REFUSED_WAIT))
            for mode, port in self.ports.items()
            for (who, (cert, key)), served in zip(clients.items(), SERVED[mode], strict=True)
        ]
        replies = yield gatherResults([d for *_, d in cases])
        for (mode, who, served, _d), reply in zip(cases, replies, strict=True):
            if served:
                self.assertIsInstance(reply, dns.message.Message, f"{mode}, {who}: {reply!r}")
                self.assertEqual(reply.rcode(), dns.rcode.NOERROR, f"{mode}, {who}")
            else:
                self.assertIsInstance(reply, Exception, f"{mode}, {who}")

    @inlineCallbacks
    def test_refusals_carry_go_s_tls_alerts(self) -> Any:
        """A refused client gets CONNECTION_CLOSE with CRYPTO_ERROR + the alert crypto/tls sends:
        certificate_required without a certificate, unknown_ca for another CA's."""
        c = certificates()

        def refused(cert: str | None, key: str | None) -> Any:
            with RawQuicClient(self.ports["require_and_verify"], cert=cert, key=key) as client:
                client.handshake()
                stream = client.send(doq_frame(dns.message.make_query("r.test.", "A", id=0).to_wire()))
                data = client.reply(stream, timeout=3)
                closed = next((e for e in client.seen if isinstance(e, events.ConnectionTerminated)), None)
                return data, closed

        data, closed = yield deferToThread(refused, None, None)
        self.assertIsNone(data)
        self.assertEqual(closed.error_code, CRYPTO_ERROR + AlertDescription.certificate_required)
        data, closed = yield deferToThread(refused, c.stranger_cert_file, c.stranger_key_file)
        self.assertIsNone(data)
        self.assertEqual(closed.error_code, CRYPTO_ERROR + AlertDescription.unknown_ca)
        data, closed = yield deferToThread(refused, c.client_cert_file, c.client_key_file)
        self.assertIsNotNone(data)
        self.assertEqual(dns.message.from_wire(data[2:]).rcode(), dns.rcode.NOERROR)

    @inlineCallbacks
    def test_a_server_certificate_is_no_client_certificate(self) -> Any:
        """Signed by the CA but for server authentication only: Go's verifier wants the
        clientAuth usage, and so does ours."""
        c = certificates()
        reply = yield deferToThread(
            _doq, self.ports["require_and_verify"], "s.test.", c.cert_file, c.key_file, REFUSED_WAIT
        )
        self.assertIsInstance(reply, Exception)

    @inlineCallbacks
    def test_doh3_require_and_verify(self) -> Any:
        c = certificates()
        refused, stranger = yield gatherResults([
            deferToThread(_doh3, self.doh3, "h.test.", True, None, None, REFUSED_WAIT),
            deferToThread(
                _doh3, self.doh3, "h.test.", True, c.stranger_cert_file, c.stranger_key_file, REFUSED_WAIT
            ),
        ])
        self.assertIsInstance(refused, Exception)
        self.assertIsInstance(stranger, Exception)
        reply = yield deferToThread(_doh3, self.doh3, "h.test.", False, c.client_cert_file, c.client_key_file)
        self.assertIsInstance(reply, dns.message.Message, repr(reply))
        self.assertEqual(reply.rcode(), dns.rcode.NOERROR)

    @inlineCallbacks
    def test_kdig_with_a_client_certificate(self) -> Any:
        if shutil.which("kdig") is None:
            raise AssertionError("kdig (knot-dnsutils) is needed for this test")
        c = certificates()
        tls = [f"+tls-ca={c.ca_file}", "+tls-hostname=localhost"]
        rest = ["+quic", "-p", str(self.ports["require_and_verify"]), "@127.0.0.1", "q.test.", "A",
                "+timeout=2", "+retry=0"]
        refused = yield deferToThread(subprocess.run, ["kdig", *tls, *rest], capture_output=True, text=True,
                                      timeout=20)
        self.assertNotIn("status: NOERROR", refused.stdout)
        self.assertIn("(UDP)", refused.stdout + refused.stderr)  # it did try QUIC
        mine = [f"+tls-certfile={c.client_cert_file}", f"+tls-keyfile={c.client_key_file}"]
        served = yield deferToThread(subprocess.run, ["kdig", *tls, *mine, *rest], capture_output=True,
                                     text=True, timeout=20)
        self.assertIn("status: NOERROR", served.stdout, served.stdout + served.stderr)


class QuicSetupTests(unittest.TestCase):
    def test_quic_errors(self) -> None:
        parsing = "Corefile:{} - Error during parsing: "
        cases = {
            "quic {\n max_streams 0\n}": parsing.format(3) + "max_streams must be a positive integer: 0",
            "quic {\n worker_pool_size x\n}": parsing.format(3) + "invalid worker_pool_size value 'x': "
            'strconv.Atoi: parsing "x": invalid syntax',
            "quic {\n max_streams 1\n max_streams 1\n}": parsing.format(4)
            + "max_streams already defined for this server block",
            "quic {\n nope\n}": parsing.format(3) + "unknown property 'nope'",
        }
        for text, error in cases.items():
            self.assertEqual(setup_error(text), "plugin/quic: " + error, text)

    def test_https3_errors(self) -> None:
        self.assertEqual(
            setup_error("https3 {\n max_connections -1\n}"),
            "plugin/https3: Corefile:3 - Error during parsing: "
            "max_connections must be a non-negative integer: -1",
        )
        self.assertIsNone(setup_error("https3 {\n max_streams 0\n max_connections 0\n}"))
