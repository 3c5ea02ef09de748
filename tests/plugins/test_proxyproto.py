"""proxyproto against a real server: PROXY v1 and v2 on TCP, DoT and DoH, v2 on UDP; whoami shows
the address the header carries; malformed headers and refused sources."""

from __future__ import annotations

import ipaddress
import json
import os
import socket
import ssl
import struct
from typing import Any

import dns.message
import dns.rdatatype
from twisted.internet.defer import inlineCallbacks
from twisted.internet.threads import deferToThread
from twisted.trial import unittest

from twisted_coredns.server.proxyheader import V2_SIGNATURE, crc32c
from twisted_coredns.testing import InProcessServer
from twisted_coredns.testing.certs import certificates
from twisted_coredns.testing.setup import check_setup_rows

from .transport_support import DATA, corefile


def v1(source: str = "203.0.113.7", sport: int = 4242) -> bytes:
    return f"PROXY TCP4 {source} 127.0.0.1 {sport} 53\r\n".encode()


def v2(source: str = "203.0.113.9", sport: int = 5353, udp: bool = False, checksum: str = "none") -> bytes:
    family = 0x12 if udp else 0x11
    body = ipaddress.IPv4Address(source).packed + ipaddress.IPv4Address("127.0.0.1").packed
    body += struct.pack("!HH", sport, 53)
    if checksum != "none":
        body += b"\x03\x00\x04\x00\x00\x00\x00"
    header = V2_SIGNATURE + bytes([0x21, family]) + struct.pack("!H", len(body)) + body
    if checksum == "good":
        header = header[:-4] + struct.pack("!I", crc32c(header))
    elif checksum == "bad":
        header = header[:-4] + b"\xde\xad\xbe\xef"
    return header


def _address(reply: dns.message.Message) -> str:
    for rrset in reply.additional:
        if rrset.rdtype == dns.rdatatype.A:
            return str(rrset[0].address)
    raise AssertionError(str(reply))


def tcp_exchange(port: int, header: bytes, tls: bool = False) -> dns.message.Message | None:
    wire = dns.message.make_query("a.example.org.", "A").to_wire()
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(header)
        conn: Any = sock
        if tls:
            ctx = ssl.create_default_context(cafile=certificates().ca_file)
            conn = ctx.wrap_socket(sock, server_hostname="localhost")
        buf = b""
        try:
            conn.sendall(len(wire).to_bytes(2, "big") + wire)
            while len(buf) < 2 or len(buf) - 2 < int.from_bytes(buf[:2], "big"):
                chunk = conn.recv(4096)
                if not chunk:
                    return None
                buf += chunk
        except (OSError, ssl.SSLError):
            return None  # closed by the server
        return dns.message.from_wire(buf[2:])


def udp_exchange(port: int, header: bytes) -> dns.message.Message | None:
    wire = dns.message.make_query("a.example.org.", "A").to_wire()
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(1.0)
        sock.sendto(header + wire, ("127.0.0.1", port))
        try:
            return dns.message.from_wire(sock.recv(4096))
        except TimeoutError:
            return None


class ProxyProtoSetupTests(unittest.TestCase):
    def test_setup_rows(self) -> None:
        with open(os.path.join(DATA, "proxyproto_setup_rows.json"), encoding="utf-8") as f:
            rows = json.load(f)["rows"]
        self.assertEqual(check_setup_rows(self, rows, error_prefix="plugin/proxyproto: "), len(rows))

    @inlineCallbacks
    def test_readme_corefiles_start(self) -> Any:
        for i in range(1, 6):
            server = InProcessServer(corefile(f"proxyproto_{i}.corefile"))
            yield server.start()
            yield server.stop()


class ProxyProtoTCPUDPTests(unittest.TestCase):
    @inlineCallbacks
    def setUp(self) -> Any:
        self.server = InProcessServer(". {\n proxyproto\n whoami\n}\n")
        yield self.server.start()
        self.addCleanup(self.server.stop)

    @inlineCallbacks
    def test_v1_and_v2_on_tcp(self) -> Any:
        reply = yield deferToThread(tcp_exchange, self.server.port, v1())
        self.assertEqual(_address(reply), "203.0.113.7")
        reply = yield deferToThread(tcp_exchange, self.server.port, v2(checksum="good"))
        self.assertEqual(_address(reply), "203.0.113.9")
        # Without a header the connection's own address is used.
        reply = yield deferToThread(tcp_exchange, self.server.port, b"")
        self.assertEqual(_address(reply), "127.0.0.1")

    @inlineCallbacks
    def test_v2_on_udp(self) -> Any:
        reply = yield deferToThread(udp_exchange, self.server.port, v2("198.51.100.4", udp=True))
        self.assertEqual(_address(reply), "198.51.100.4")

    @inlineCallbacks
    def test_malformed_headers_close_or_drop(self) -> Any:
        for header in (v2(checksum="bad"), V2_SIGNATURE + b"\x21\x11\x00\x04\x01\x02\x03\x04",
                       b"PROXY TCP4 999.1.1.1 127.0.0.1 1 53\r\n"):
            reply = yield deferToThread(tcp_exchange, self.server.port, header)
            self.assertIsNone(reply)
        reply = yield deferToThread(udp_exchange, self.server.port, v2(udp=True, checksum="bad"))
        self.assertIsNone(reply)
        # Everyone else is still served.
        reply = yield deferToThread(tcp_exchange, self.server.port, v1())
        self.assertEqual(_address(reply), "203.0.113.7")


class ProxyProtoPolicyTests(unittest.TestCase):
    @inlineCallbacks
    def test_reject_from_a_source_not_allowed(self) -> Any:
        text = ". {\n proxyproto {\n  allow 192.168.1.1/32\n  default reject\n }\n whoami\n}\n"
        server = InProcessServer(text)
        yield server.start()
        self.addCleanup(server.stop)
        self.assertIsNone((yield deferToThread(tcp_exchange, server.port, v1())))
        reply = yield deferToThread(tcp_exchange, server.port, b"")
        self.assertEqual(_address(reply), "127.0.0.1")

    @inlineCallbacks
    def test_ignore_keeps_the_connection_address(self) -> Any:
        server = InProcessServer(". {\n proxyproto {\n  allow 192.168.1.1/32\n }\n whoami\n}\n")
        yield server.start()
        self.addCleanup(server.stop)
        reply = yield deferToThread(tcp_exchange, server.port, v1())
        self.assertEqual(_address(reply), "127.0.0.1")

    @inlineCallbacks
    def test_udp_session_tracking(self) -> Any:
        server = InProcessServer(". {\n proxyproto {\n  udp_session_tracking 30s 10\n }\n whoami\n}\n")
        yield server.start()
        self.addCleanup(server.stop)

        def two_datagrams() -> tuple[str, str]:
            wire = dns.message.make_query("a.example.org.", "A").to_wire()
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
                sock.settimeout(2)
                sock.sendto(v2("198.51.100.8", udp=True) + wire, ("127.0.0.1", server.port))
                first = _address(dns.message.from_wire(sock.recv(4096)))
                sock.sendto(wire, ("127.0.0.1", server.port))
                second = _address(dns.message.from_wire(sock.recv(4096)))
            return first, second

        self.assertEqual((yield deferToThread(two_datagrams)), ("198.51.100.8", "198.51.100.8"))

    @inlineCallbacks
    def test_dot_behind_proxy(self) -> Any:
        certs = certificates()
        server = InProcessServer(
            f"tls://.:0 {{\n tls {certs.cert_file} {certs.key_file}\n proxyproto\n whoami\n}}\n"
        )
        yield server.start()
        self.addCleanup(server.stop)
        reply = yield deferToThread(tcp_exchange, server.port, v2(checksum="good"), True)
        self.assertEqual(_address(reply), "203.0.113.9")

    @inlineCallbacks
    def test_doh_behind_proxy(self) -> Any:
        certs = certificates()
        server = InProcessServer(
            f"https://.:0 {{\n tls {certs.cert_file} {certs.key_file}\n proxyproto\n whoami\n}}\n"
        )
        yield server.start()
        self.addCleanup(server.stop)

        def post() -> str:
            wire = dns.message.make_query("a.example.org.", "A").to_wire()
            request = (b"POST /dns-query HTTP/1.1\r\nHost: localhost\r\n"
                       b"Content-Type: application/dns-message\r\n"
                       b"Content-Length: %d\r\nConnection: close\r\n\r\n" % len(wire)) + wire
            ctx = ssl.create_default_context(cafile=certificates().ca_file)
            with socket.create_connection(("127.0.0.1", server.port), timeout=5) as sock:
                sock.sendall(v1("192.0.2.55"))
                with ctx.wrap_socket(sock, server_hostname="localhost") as tls:
                    tls.sendall(request)
                    data = b""
                    while chunk := tls.recv(4096):
                        data += chunk
            body = data.split(b"\r\n\r\n", 1)[1]
            return _address(dns.message.from_wire(body))

        self.assertEqual((yield deferToThread(post)), "192.0.2.55")
