"""grpc (the client plugin) against our own grpc:// server, over real sockets: relaying, except,
fallthrough, policy, TLS with client certificates, its metrics, CoreDNS's setup rows and every
README Corefile."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

import dns.message
import dns.query
import dns.rcode
import dns.rdatatype
from twisted.internet.defer import inlineCallbacks
from twisted.internet.threads import deferToThread
from twisted.trial import unittest

from twisted_coredns.plugins.grpc import metrics
from twisted_coredns.testing import InProcessServer, free_port
from twisted_coredns.testing.certs import certificates
from twisted_coredns.testing.setup import check_setup_rows, load_setup_rows, setup_error

DATA = Path(__file__).resolve().parent.parent / "data"


def _tls_plugin() -> bool:
    from twisted_coredns.registry import default_registry

    try:
        return "tls" in default_registry().names()
    except Exception:
        return False


def _ask(port: int, name: str, rdtype: str = "A", tcp: bool = False) -> Any:
    query = dns.message.make_query(name, rdtype)
    ask = dns.query.tcp if tcp else dns.query.udp
    return deferToThread(ask, query, "127.0.0.1", port=port, timeout=5)


def _srv_proto(reply: dns.message.Message) -> str:
    """whoami's SRV owner says the transport the upstream saw: ``_tcp`` for gRPC."""
    for rrset in reply.additional:
        if rrset.rdtype == dns.rdatatype.SRV:
            return str(rrset.name).split(".")[0]
    return ""


def _dead_port() -> int:
    return free_port()


class GRPCRelayTests(unittest.TestCase):
    """One server: an upstream grpc:// block (whoami, and hosts for NXDOMAIN) and client blocks."""

    @inlineCallbacks
    def setUp(self) -> Any:
        self.up = free_port()
        dead = _dead_port()
        corefile = f"""
grpc://.:{self.up} {{
    bind 127.0.0.1
    whoami
}}
. {{
    grpc . 127.0.0.1:{self.up} {{
        except local.test
    }}
    whoami
}}
fall.test {{
    grpc . 127.0.0.1:{self.up} {{
        fallthrough
    }}
    whoami
}}
nofall.test {{
    grpc . 127.0.0.1:{self.up}
}}
dead.test {{
    grpc . 127.0.0.1:{dead}
}}
deadfall.test {{
    grpc . 127.0.0.1:{dead} {{
        fallthrough
    }}
    whoami
}}
seq.test {{
    grpc . 127.0.0.1:{dead} 127.0.0.1:{self.up} {{
        policy sequential
    }}
}}
"""
        self.server = InProcessServer(corefile)
        yield self.server.start()
        self.addCleanup(self.server.stop)
        self.port = next(p for a, p in self.server.ports.items() if not a.startswith("grpc"))

    @inlineCallbacks
    def test_relays_to_the_grpc_server(self) -> Any:
        reply = yield _ask(self.port, "www.example.org.")
        self.assertEqual(reply.rcode(), dns.rcode.NOERROR)
        self.assertEqual(_srv_proto(reply), "_tcp")  # answered by the upstream, over gRPC
        self.assertEqual(reply.additional[0][0].address, "127.0.0.1")

    @inlineCallbacks
    def test_relays_over_tcp_too(self) -> Any:
        reply = yield _ask(self.port, "www.example.org.", tcp=True)
        self.assertEqual(_srv_proto(reply), "_tcp")

    @inlineCallbacks
    def test_except_names_go_to_the_next_plugin(self) -> Any:
        reply = yield _ask(self.port, "a.local.test.")
        self.assertEqual(_srv_proto(reply), "_udp")  # the local whoami, asked over UDP

    @inlineCallbacks
    def test_an_answer_is_not_a_fallthrough(self) -> Any:
        reply = yield _ask(self.port, "x.fall.test.")
        self.assertEqual(_srv_proto(reply), "_tcp")  # the upstream answered: no fallthrough

    @inlineCallbacks
    def test_dead_upstream_is_servfail(self) -> Any:
        reply = yield _ask(self.port, "x.dead.test.")
        self.assertEqual(reply.rcode(), dns.rcode.SERVFAIL)

    @inlineCallbacks
    def test_dead_upstream_falls_through_with_fallthrough(self) -> Any:
        reply = yield _ask(self.port, "x.deadfall.test.")
        self.assertEqual(reply.rcode(), dns.rcode.NOERROR)
        self.assertEqual(_srv_proto(reply), "_udp")  # the local whoami

    @inlineCallbacks
    def test_sequential_tries_the_next_upstream_and_counts(self) -> Any:
        to = f"127.0.0.1:{self.up}"
        before = metrics.requests.labels(to)._value.get()
        reply = yield _ask(self.port, "x.seq.test.")
        self.assertEqual(reply.rcode(), dns.rcode.NOERROR)
        self.assertEqual(_srv_proto(reply), "_tcp")
        self.assertEqual(metrics.requests.labels(to)._value.get(), before + 1)
        self.assertGreaterEqual(metrics.responses.labels("NOERROR", to)._value.get(), 1)


class GRPCNXDomainTests(unittest.TestCase):
    """The upstream answers NXDOMAIN (file, for its zone); fallthrough passes it to the next plugin."""

    @inlineCallbacks
    def setUp(self) -> Any:
        up = free_port()
        corefile = f"""
grpc://nx.test:{up} {{
    bind 127.0.0.1
    file {DATA / "transports" / "nx.test.zone"}
}}
nx.test {{
    grpc . 127.0.0.1:{up} {{
        fallthrough
    }}
    whoami
}}
strict.nx.test {{
    grpc . 127.0.0.1:{up}
}}
"""
        self.server = InProcessServer(corefile)
        yield self.server.start()
        self.addCleanup(self.server.stop)
        self.port = next(p for a, p in self.server.ports.items() if not a.startswith("grpc"))

    @inlineCallbacks
    def test_known_name_is_relayed(self) -> Any:
        reply = yield _ask(self.port, "known.nx.test.")
        self.assertEqual(reply.answer[0][0].address, "192.0.2.1")

    @inlineCallbacks
    def test_nxdomain_goes_to_next_plugin(self) -> Any:
        reply = yield _ask(self.port, "other.nx.test.")
        self.assertEqual(reply.rcode(), dns.rcode.NOERROR)
        self.assertEqual(_srv_proto(reply), "_udp")

    @inlineCallbacks
    def test_nxdomain_without_fallthrough_is_kept(self) -> Any:
        reply = yield _ask(self.port, "a.strict.nx.test.")
        self.assertEqual(reply.rcode(), dns.rcode.NXDOMAIN)


class GRPCTLSTests(unittest.TestCase):
    """Mutual TLS: the upstream requires and verifies a client certificate."""

    @inlineCallbacks
    def setUp(self) -> Any:
        if not _tls_plugin():
            raise unittest.SkipTest("the tls plugin is not registered")
        c = certificates()
        up = free_port()
        corefile = f"""
grpc://.:{up} {{
    bind 127.0.0.1
    tls {c.cert_file} {c.key_file} {c.ca_file} {{
        client_auth require_and_verify
    }}
    whoami
}}
with.test {{
    grpc . 127.0.0.1:{up} {{
        tls {c.client_cert_file} {c.client_key_file} {c.ca_file}
        tls_servername localhost
    }}
}}
without.test {{
    grpc . 127.0.0.1:{up} {{
        tls {c.ca_file}
    }}
}}
"""
        self.server = InProcessServer(corefile)
        yield self.server.start()
        self.addCleanup(self.server.stop)
        self.port = next(p for a, p in self.server.ports.items() if not a.startswith("grpc"))

    @inlineCallbacks
    def test_client_certificate_is_served(self) -> Any:
        reply = yield _ask(self.port, "a.with.test.")
        self.assertEqual(reply.rcode(), dns.rcode.NOERROR)
        self.assertEqual(_srv_proto(reply), "_tcp")

    @inlineCallbacks
    def test_no_client_certificate_is_refused(self) -> Any:
        reply = yield _ask(self.port, "a.without.test.")
        self.assertEqual(reply.rcode(), dns.rcode.SERVFAIL)


class GRPCSetupTests(unittest.TestCase):
    def test_coredns_setup_rows(self) -> None:
        rows = load_setup_rows(DATA / "grpc_setup_cases.json", source_contains="plugin/grpc")
        check_setup_rows(self, rows, error_prefix="plugin/grpc: ")

    def test_errors_word_for_word(self) -> None:
        self.assertEqual(
            setup_error("grpc . 127.0.0.1 {\npolicy random2\n}"),
            "plugin/grpc: Corefile:3 - Error during parsing: unknown policy 'random2'",
        )
        self.assertEqual(
            setup_error("grpc ."),
            "plugin/grpc: Corefile:2 - Error during parsing: "
            "Wrong argument count or unexpected line ending after '.'",
        )
        many = " ".join(f"127.0.0.{i}" for i in range(1, 17))
        self.assertEqual(setup_error(f"grpc . {many}"), "plugin/grpc: more than 15 TOs configured: 16")
        self.assertEqual(
            setup_error("grpc . 127.0.0.1 {\ntls /nonexistent/ca.pem\n}"),
            "plugin/grpc: error reading /nonexistent/ca.pem: "
            "open /nonexistent/ca.pem: no such file or directory",
        )
        self.assertEqual(
            setup_error("grpc . 127.0.0.1 {\ntls_servername a b\n}"),
            "plugin/grpc: Corefile:3 - Error during parsing: unknown property 'b'",
        )


class GRPCReadmeTests(unittest.TestCase):
    """Every Corefile of CoreDNS's grpc README starts (addresses rewritten to loopback)."""

    @inlineCallbacks
    def test_readme_corefiles_start(self) -> Any:
        folder = tempfile.mkdtemp(prefix="grpc-readme-")
        self.addCleanup(lambda: [os.remove(os.path.join(folder, f)) for f in os.listdir(folder)])
        resolv = os.path.join(folder, "resolv.conf")
        with open(resolv, "w") as f:
            f.write("nameserver 127.0.0.1\n")
        files = sorted((DATA / "transports").glob("grpc_*.corefile"))
        self.assertEqual(len(files), 8)
        for path in files:
            text = path.read_text().replace("RESOLV_CONF", resolv).replace("SOCKET_DIR", folder)
            server = InProcessServer(text)
            yield server.start()
            try:
                self.assertTrue(server.port)
            finally:
                yield server.stop()
