"""tls and DNS over TLS (tls://) against a real server: dnspython and kdig clients, mutual TLS,
bad certificates, slow and idle clients."""

from __future__ import annotations

import json
import os
import socket
import ssl
import subprocess
import tempfile
from typing import Any

import dns.exception
import dns.message
import dns.query
import dns.rdatatype
from twisted.internet.defer import inlineCallbacks
from twisted.internet.threads import deferToThread
from twisted.trial import unittest

from twisted_coredns.corefile import CorefileError
from twisted_coredns.instance import build
from twisted_coredns.testing import InProcessServer, wait_for
from twisted_coredns.testing.certs import certificates
from twisted_coredns.testing.setup import check_setup_rows

from .transport_support import DATA, corefile, dot_query


def _whoami_address(reply: Any) -> str:
    for rrset in reply.additional:
        if rrset.rdtype in (dns.rdatatype.A, dns.rdatatype.AAAA):
            return str(rrset[0].address)
    raise AssertionError(f"no address in {reply}")


class TLSSetupTests(unittest.TestCase):
    def test_setup_rows(self) -> None:
        certs = certificates()
        with open(os.path.join(DATA, "tls_setup_rows.json"), encoding="utf-8") as f:
            rows = json.load(f)["rows"]
        keylog = os.path.join(tempfile.mkdtemp(), "tls.log")
        self.addCleanup(lambda: os.path.exists(keylog) and os.unlink(keylog))
        filled = []
        for row in rows:
            text = (row["input"].replace("{cert}", certs.cert_file).replace("{key}", certs.key_file)
                    .replace("{ca}", certs.ca_file).replace("{keylog}", keylog))
            filled.append({**row, "input": text})
        self.assertEqual(check_setup_rows(self, filled, error_prefix="plugin/tls: "), len(rows))

    def test_key_not_matching_certificate_is_a_corefile_error(self) -> None:
        certs = certificates()
        text = f"tls://.:0 {{\n tls {certs.cert_file} {certs.client_key_file}\n whoami\n}}\n"
        with self.assertRaises(CorefileError) as caught:
            build(text, "Corefile")
        self.assertIn("plugin/tls: could not load TLS cert", str(caught.exception))

    def test_acme_is_a_clear_corefile_error(self) -> None:
        with self.assertRaises(CorefileError) as caught:
            build("tls://.:0 {\n tls {\n  acme dns.example.org\n }\n whoami\n}\n", "Corefile")
        self.assertIn("ACME", str(caught.exception))

    def test_missing_certificate_binds_nothing(self) -> None:
        # The command prints the error and exits 1 without a traceback and without listening.
        with tempfile.TemporaryDirectory() as folder:
            path = os.path.join(folder, "Corefile")
            with open(path, "w") as f:
                f.write("tls://.:0 {\n tls missing.pem missing-key.pem\n whoami\n}\n")
            out = subprocess.run(
                [_python(), "-m", "twisted_coredns", "-conf", path],
                capture_output=True, text=True, timeout=30, cwd=folder,
            )
        self.assertEqual(out.returncode, 1, out.stdout + out.stderr)
        self.assertIn("could not load TLS cert: open missing.pem: no such file or directory", out.stderr)
        self.assertNotIn("Traceback", out.stderr)


def _python() -> str:
    import sys

    return sys.executable


class DoTServerTests(unittest.TestCase):
    """One DoT server (with a plain second block on the same address) shared by the tests."""

    server: InProcessServer
    port: int

    @inlineCallbacks
    def setUp(self) -> Any:
        certs = certificates()
        self.server = InProcessServer(
            f"tls://.:0 {{\n tls {certs.cert_file} {certs.key_file}\n whoami\n}}\n"
            "tls://example.net:0 {\n whoami\n}\n"
        )
        yield self.server.start()
        self.addCleanup(self.server.stop)
        self.port = self.server.port

    @inlineCallbacks
    def test_dnspython_dot(self) -> Any:
        reply = yield deferToThread(dot_query, self.port, "a.example.org.")
        self.assertEqual(_whoami_address(reply), "127.0.0.1")
        # whoami's SRV tells the transport: the stream transport is tcp, as CoreDNS says.
        self.assertTrue(any(r.rdtype == dns.rdatatype.SRV and str(r.name).startswith("_tcp.")
                            for r in reply.additional))
        # The second block shares the address, and its TLS.
        reply = yield deferToThread(dot_query, self.port, "www.example.net.")
        self.assertEqual(_whoami_address(reply), "127.0.0.1")

    @inlineCallbacks
    def test_kdig_tls(self) -> Any:
        certs = certificates()
        out = yield deferToThread(
            subprocess.run,
            ["kdig", "@127.0.0.1", "-p", str(self.port), "+tls", f"+tls-ca={certs.ca_file}",
             "+tls-hostname=localhost", "+timeout=3", "a.example.org", "A"],
            capture_output=True, text=True, timeout=15,
        )
        self.assertIn("status: NOERROR", out.stdout, out.stdout + out.stderr)
        self.assertIn("TLS session", out.stdout)

    def _pipelined(self, count: int) -> list[int]:
        ctx = ssl.create_default_context(cafile=certificates().ca_file)
        with socket.create_connection(("127.0.0.1", self.port), timeout=5) as raw, \
                ctx.wrap_socket(raw, server_hostname="localhost") as tls:
            wires = []
            for i in range(count):
                q = dns.message.make_query(f"q{i}.example.org.", "A")
                q.id = i + 1
                wire = q.to_wire()
                wires.append(len(wire).to_bytes(2, "big") + wire)
            tls.sendall(b"".join(wires))
            ids = []
            buf = b""
            while len(ids) < count:
                chunk = tls.recv(65536)
                if not chunk:
                    break
                buf += chunk
                while len(buf) >= 2 and len(buf) - 2 >= int.from_bytes(buf[:2], "big"):
                    size = int.from_bytes(buf[:2], "big")
                    ids.append(dns.message.from_wire(buf[2 : 2 + size]).id)
                    buf = buf[2 + size :]
            return ids

    @inlineCallbacks
    def test_pipelined_queries_on_one_connection(self) -> Any:
        ids = yield deferToThread(self._pipelined, 20)
        self.assertEqual(sorted(ids), list(range(1, 21)))

    def _stalled_handshake(self) -> float:
        """Connect and send nothing: the server closes within its read timeout (3 s)."""
        import time

        start = time.monotonic()
        with socket.create_connection(("127.0.0.1", self.port), timeout=10) as sock:
            # Half a ClientHello, then silence.
            sock.sendall(b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03")
            try:
                while sock.recv(4096):
                    pass
            except ConnectionResetError:
                pass
        return time.monotonic() - start

    @inlineCallbacks
    def test_handshake_that_never_finishes_is_cut_off(self) -> Any:
        stalled = deferToThread(self._stalled_handshake)
        # Everyone else is served meanwhile.
        reply = yield deferToThread(dot_query, self.port, "b.example.org.")
        self.assertEqual(_whoami_address(reply), "127.0.0.1")
        took = yield stalled
        self.assertLess(took, 8.0)

    def _idle_flood(self, count: int) -> int:
        socks = []
        try:
            for _ in range(count):
                socks.append(socket.create_connection(("127.0.0.1", self.port), timeout=5))
            # The server still answers a real client while 500 connections send nothing.
            reply = dot_query(self.port, "c.example.org.", timeout=5)
            assert _whoami_address(reply) == "127.0.0.1"
            # They are closed by the server (read timeout), not kept forever.
            closed = 0
            for s in socks:
                s.settimeout(10)
                try:
                    if s.recv(1) == b"":
                        closed += 1
                except (ConnectionResetError, TimeoutError, OSError):
                    closed += 1
            return closed
        finally:
            for s in socks:
                s.close()

    @inlineCallbacks
    def test_500_idle_connections(self) -> Any:
        closed = yield deferToThread(self._idle_flood, 500)
        self.assertEqual(closed, 500)


class MutualTLSTests(unittest.TestCase):
    @inlineCallbacks
    def setUp(self) -> Any:
        certs = certificates()
        self.server = InProcessServer(
            f"tls://.:0 {{\n tls {certs.cert_file} {certs.key_file} {certs.ca_file} {{\n"
            "  client_auth require_and_verify\n }\n whoami\n}\n"
        )
        yield self.server.start()
        self.addCleanup(self.server.stop)

    @inlineCallbacks
    def test_client_with_certificate_is_served(self) -> Any:
        certs = certificates()
        reply = yield deferToThread(dot_query, self.server.port, "a.example.org.",
                                    cert=(certs.client_cert_file, certs.client_key_file))
        self.assertEqual(_whoami_address(reply), "127.0.0.1")

    @inlineCallbacks
    def test_client_without_certificate_is_refused(self) -> Any:
        with self.assertRaises((ssl.SSLError, ConnectionResetError, EOFError, OSError)):
            yield deferToThread(dot_query, self.server.port, "a.example.org.")

    @inlineCallbacks
    def test_client_with_stranger_certificate_is_refused(self) -> Any:
        certs = certificates()
        with self.assertRaises((ssl.SSLError, ConnectionResetError, EOFError, OSError)):
            yield deferToThread(dot_query, self.server.port, "a.example.org.",
                                cert=(certs.stranger_cert_file, certs.stranger_key_file))


class KeylogAndPlainTests(unittest.TestCase):
    @inlineCallbacks
    def test_keylog_is_written(self) -> Any:
        certs = certificates()
        keylog = os.path.join(tempfile.mkdtemp(), "keys.log")
        server = InProcessServer(
            f"tls://.:0 {{\n tls {certs.cert_file} {certs.key_file} {{\n  keylog {keylog}\n }}\n whoami\n}}\n"
        )
        yield server.start()
        self.addCleanup(server.stop)
        yield deferToThread(dot_query, server.port, "a.example.org.")
        wait_for(lambda: os.path.getsize(keylog) > 0, 5, "a key log line")
        with open(keylog) as f:
            self.assertIn("CLIENT_", f.read())

    @inlineCallbacks
    def test_tls_scheme_without_tls_plugin_is_plain_tcp(self) -> Any:
        # CoreDNS serves tls:// without the tls plugin unencrypted.
        server = InProcessServer("tls://.:0 {\n whoami\n}\n")
        yield server.start()
        self.addCleanup(server.stop)
        q = dns.message.make_query("a.example.org.", "A")
        reply = yield deferToThread(dns.query.tcp, q, "127.0.0.1", port=server.port, timeout=3)
        self.assertEqual(_whoami_address(reply), "127.0.0.1")
        with self.assertRaises((OSError, dns.exception.Timeout)):
            # Nothing listens on UDP for tls://.
            yield deferToThread(dns.query.udp, q, "127.0.0.1", port=server.port, timeout=1)

    @inlineCallbacks
    def test_readme_corefile_starts(self) -> Any:
        server = InProcessServer(corefile("tls_1.corefile"))
        yield server.start()
        self.addCleanup(server.stop)
        self.assertTrue(server.port)
