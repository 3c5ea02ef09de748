"""``multisocket 2`` on quic://, https3:// and grpc://, with the real command line: two listening
sockets per address (read from /proc/net), queries from new connections reach both workers, and
one QUIC connection stays with the worker that holds it.

Which worker answered is the ``worker.multisocket. CH TXT`` reply (``pid=P``), which every
transport routes like any query.
"""

from __future__ import annotations

import socket
from pathlib import Path
from typing import ClassVar

import dns.message
import dns.query
import dns.quic
import grpc
from aioquic.quic.configuration import QuicConfiguration
from twisted.trial.unittest import SynchronousTestCase

from tests.quic_client import RawQuicClient, doq_frame
from twisted_coredns.server.dnspb import QUERY_METHOD, decode_packet, encode_packet
from twisted_coredns.testing import SubprocessServer, free_port, wait_for, worker_pids
from twisted_coredns.testing.certs import certificates

CONNECTIONS = 16
"""New connections per transport: with two workers, the chance that all land on one is 2**-15."""


def _pid(reply: dns.message.Message) -> int:
    text = b" ".join(s for rr in reply.answer[0] for s in rr.strings).decode()
    return int(text.rsplit("pid=", 1)[1])


def _which() -> dns.message.Message:
    return dns.message.make_query("worker.multisocket.", "TXT", "CH", id=0)  # DoQ wants ID 0


def _quic_conf(alpn: str) -> QuicConfiguration:
    conf = QuicConfiguration(alpn_protocols=[alpn], server_name="localhost")
    conf.load_verify_locations(certificates().ca_file)
    return conf


def _listeners(port: int, kind: str) -> int:
    """Sockets bound to ``port`` on 127.0.0.1 in /proc/net/``kind`` (UDP: every one; TCP: those
    listening)."""
    wanted = f"0100007F:{port:04X}"
    count = 0
    for line in Path(f"/proc/net/{kind}").read_text().splitlines()[1:]:
        fields = line.split()
        if fields[1] == wanted and (kind == "udp" or fields[3] == "0A"):
            count += 1
    return count


class MultisocketTransportTests(SynchronousTestCase):
    server: ClassVar[SubprocessServer]
    ports: ClassVar[dict[str, int]]
    workers: ClassVar[set[int]]

    @classmethod
    def setUpClass(cls) -> None:
        c = certificates()
        cls.ports = {name: free_port() for name in ("quic", "https3", "grpc")}
        blocks = [". {\n bind 127.0.0.1\n whoami\n}\n"]
        for scheme, port in cls.ports.items():
            tls = f" tls {c.cert_file} {c.key_file}\n" if scheme != "grpc" else ""
            blocks.append(f"{scheme}://.:{port} {{\n bind 127.0.0.1\n{tls} multisocket 2\n whoami\n}}\n")
        cls.server = SubprocessServer("".join(blocks))
        cls.server.start(timeout=30)
        try:
            cls.server.wait_for_log("twisted-coredns-", timeout=20)
            assert cls.server.process is not None
            master = cls.server.process.pid
            cls.workers = wait_for(lambda: (lambda w: w if len(w) == 2 else None)(worker_pids(master)), 10,
                                   "two workers")
        except BaseException:
            cls.server.stop()
            raise

    @classmethod
    def tearDownClass(cls) -> None:
        cls.server.stop()

    def test_two_listeners_per_address(self) -> None:
        self.assertEqual(_listeners(self.ports["quic"], "udp"), 2)
        self.assertEqual(_listeners(self.ports["https3"], "udp"), 2)
        # DoQ and DoH3 bind no TCP socket, gRPC no UDP one.
        self.assertEqual(_listeners(self.ports["quic"], "tcp"), 0)
        self.assertEqual(_listeners(self.ports["https3"], "tcp"), 0)
        # gRPC: the public listeners only. Each worker's grpcio server listens on a loopback port
        # of its own, which the reactor relays to (server/grpc.py).
        self.assertEqual(_listeners(self.ports["grpc"], "tcp"), 2)
        self.assertEqual(_listeners(self.ports["grpc"], "udp"), 0)

    def test_doq_connections_reach_both_workers(self) -> None:
        port = self.ports["quic"]
        seen = set()
        for _ in range(CONNECTIONS):
            with dns.quic.SyncQuicManager(conf=_quic_conf("doq")) as manager:
                conn = manager.connect("127.0.0.1", port)
                seen.add(_pid(dns.query.quic(_which(), "127.0.0.1", port=port, connection=conn, timeout=3)))
        self.assertEqual(seen, self.workers)

    def test_doh3_connections_reach_both_workers(self) -> None:
        port = self.ports["https3"]
        seen = set()
        for _ in range(CONNECTIONS):
            with dns.quic.SyncQuicManager(conf=_quic_conf("h3"), h3=True) as manager:
                conn = manager.connect("127.0.0.1", port)
                reply = dns.query.https(
                    _which(), "https://localhost/dns-query", bootstrap_address="127.0.0.1", port=port,
                    session=conn, http_version=dns.query.HTTPVersion.H3, timeout=3,
                )
                seen.add(_pid(reply))
        self.assertEqual(seen, self.workers)

    def test_grpc_connections_reach_both_workers(self) -> None:
        seen = set()
        for _ in range(CONNECTIONS):
            with grpc.insecure_channel(f"127.0.0.1:{self.ports['grpc']}") as channel:
                call = channel.unary_unary(QUERY_METHOD, response_deserializer=decode_packet)
                seen.add(_pid(dns.message.from_wire(call(encode_packet(_which().to_wire()), timeout=5))))
        self.assertEqual(seen, self.workers)

    def test_one_quic_connection_stays_with_one_worker(self) -> None:
        """SO_REUSEPORT picks a socket by the datagram's addresses and ports, not by QUIC's
        connection ID: every packet of a client that keeps its port reaches the worker holding
        its connection, and 50 queries over one connection get one worker's answers."""
        seen: set[int] = set()
        with RawQuicClient(self.ports["quic"]) as client:
            self.assertTrue(client.handshake())
            for _ in range(50):
                data = client.reply(client.send(doq_frame(_which().to_wire())))
                assert data is not None
                seen.add(_pid(dns.message.from_wire(data[2:])))
        self.assertEqual(len(seen), 1)
        self.assertLessEqual(seen, self.workers)

    def test_a_connection_whose_port_changes_goes_on_or_is_dropped_never_misanswered(self) -> None:
        """A client whose port changes (NAT rebinding) may hash to the other worker, which does not
        know its connection ID and drops its packets without a word (server/quic.py): the client
        times out and reconnects. If it hashes to the same worker, the connection goes on."""
        port = self.ports["quic"]
        outcomes = set()
        for _ in range(4):
            with RawQuicClient(port) as client:
                self.assertTrue(client.handshake())
                first = client.reply(client.send(doq_frame(_which().to_wire())))
                assert first is not None
                before = _pid(dns.message.from_wire(first[2:]))
                # Rebind: a new socket, so a new source port, for the same connection.
                old = client.sock
                client.sock = socket.socket(old.family, old.type)
                client.sock.bind(("127.0.0.1", 0))
                client.sock.connect(client.addr)
                old.close()
                data = client.reply(client.send(doq_frame(_which().to_wire())), timeout=1.0)
                if data is None:
                    outcomes.add("dropped")
                else:
                    self.assertEqual(_pid(dns.message.from_wire(data[2:])), before)
                    outcomes.add("same worker")
        self.assertTrue(outcomes)
