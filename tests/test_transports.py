"""The transport seam: the registry, the socket kinds each transport binds, and multisocket
workers serving DoT and DoH listeners (N listeners per address, queries reaching each worker)."""

from __future__ import annotations

import socket
import time

import dns.message
import dns.query
import dns.rdataclass
import dns.rdatatype
from twisted.trial import unittest

from twisted_coredns.config import served_transports
from twisted_coredns.corefile import CorefileError
from twisted_coredns.instance import build
from twisted_coredns.server.sockets import close_pair, listen_pair, pair_port
from twisted_coredns.server.tlsconfig import TLSSettings
from twisted_coredns.server.transports import TRANSPORTS, ServeContext, transport
from twisted_coredns.testing import SubprocessServer, wait_for
from twisted_coredns.testing.certs import certificates

from .plugins.transport_support import client_context


class SeamTests(unittest.TestCase):
    def test_registry(self) -> None:
        self.assertIn("dns", served_transports())
        self.assertEqual((transport("dns").uses_udp, transport("dns").uses_tcp), (True, True))
        self.assertEqual((transport("tls").uses_udp, transport("tls").uses_tcp), (False, True))
        self.assertEqual((transport("https").uses_udp, transport("https").uses_tcp), (False, True))
        with self.assertRaises(KeyError):
            transport("gopher")
        for t in TRANSPORTS.values():
            self.assertEqual(t, transport(t.name))

    def test_unserved_transport_is_a_corefile_error(self) -> None:
        with self.assertRaises(CorefileError) as caught:
            build("unix://.:53 {\n whoami\n}\n", "Corefile")
        self.assertIn("transport 'unix' is not supported", str(caught.exception))

    def test_context_takes_tls_from_the_first_block_that_has_it(self) -> None:
        certs = certificates()
        instance = build(
            "tls://example.net:0 {\n whoami\n}\n"
            f"tls://.:0 {{\n tls {certs.cert_file} {certs.key_file}\n whoami\n}}\n", "Corefile"
        )
        (group,) = instance.groups
        from twisted_coredns.server.router import ZoneRouter

        ctx = ServeContext.of(ZoneRouter(group), group, None)
        self.assertIsInstance(ctx.tls, TLSSettings)
        self.assertIs(ctx.settings, group.entries[0][1].settings)

    def test_socket_kinds(self) -> None:
        # tls:// (TCP) and a UDP-only transport can share a port number.
        tcp_only = listen_pair("127.0.0.1", 0, udp=False)
        self.addCleanup(close_pair, tcp_only)
        self.assertIsNone(tcp_only[0])
        port = pair_port(tcp_only)
        udp_only = listen_pair("127.0.0.1", port, udp=True, tcp=False)
        self.addCleanup(close_pair, udp_only)
        self.assertIsNone(udp_only[1])
        self.assertEqual(pair_port(udp_only), port)


def _listeners(port: int, kind: str) -> int:
    """Sockets listening (TCP) or bound (UDP) on ``port``, from /proc/net."""
    count = 0
    files = ("/proc/net/tcp", "/proc/net/tcp6") if kind == "tcp" else ("/proc/net/udp", "/proc/net/udp6")
    for name in files:
        try:
            with open(name) as f:
                next(f)
                for line in f:
                    fields = line.split()
                    local, state = fields[1], fields[3]
                    if int(local.rsplit(":", 1)[1], 16) == port and (kind == "udp" or state == "0A"):
                        count += 1
        except FileNotFoundError:
            pass
    return count


def _worker_of(port: int) -> str:
    q = dns.message.make_query("worker.multisocket.", dns.rdatatype.TXT, dns.rdataclass.CH)
    reply = dns.query.tls(q, "127.0.0.1", port=port, ssl_context=client_context(),
                          server_hostname="localhost",
                          timeout=3)
    return str(reply.answer[0][0])


class MultisocketTransportTests(unittest.TestCase):
    def test_two_dot_listeners_and_two_doh_listeners(self) -> None:
        certs = certificates()
        dot_port = _free_tcp_port()
        doh_port = _free_tcp_port()
        corefile = (
            f"tls://.:{dot_port} {{\n tls {certs.cert_file} {certs.key_file}\n multisocket 2\n whoami\n}}\n"
            f"https://.:{doh_port} {{\n tls {certs.cert_file} {certs.key_file}\n multisocket 2\n whoami\n}}\n"
            ". {\n whoami\n}\n"  # plain DNS on the probe port: start() waits on it
        )
        server = SubprocessServer(corefile, host="127.0.0.1")
        self.addCleanup(server.stop)
        server.start()
        wait_for(lambda: _listeners(dot_port, "tcp") == 2, 20, "two DoT listeners")
        self.assertEqual(_listeners(dot_port, "tcp"), 2)
        self.assertEqual(_listeners(dot_port, "udp"), 0)
        wait_for(lambda: _listeners(doh_port, "tcp") == 2, 20, "two DoH listeners")
        seen: set[str] = set()
        deadline = time.monotonic() + 20
        while len(seen) < 2 and time.monotonic() < deadline:
            try:
                seen.add(_worker_of(dot_port).split()[0])
            except Exception:
                time.sleep(0.05)
        self.assertEqual(len(seen), 2, seen)


def _free_tcp_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])

