"""The grpc:// server with a real grpcio client: answers, a message that is not DNS gets a gRPC
error and the server goes on, grpc_server's limits and setup errors."""

from __future__ import annotations

import socket
from typing import Any

import dns.message
import dns.rcode
import grpc
from twisted.internet.defer import inlineCallbacks
from twisted.internet.threads import deferToThread
from twisted.trial import unittest

from twisted_coredns.server.dnspb import QUERY_METHOD, decode_packet, encode_packet
from twisted_coredns.testing import InProcessServer, free_port
from twisted_coredns.testing.setup import setup_error


def _call(port: int, payload: bytes) -> Any:
    """One DnsService/Query call with raw protobuf bytes; the reply's DNS bytes or the RpcError."""
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        query = channel.unary_unary(QUERY_METHOD, response_deserializer=decode_packet)
        try:
            return query(payload, timeout=5)
        except grpc.RpcError as exc:
            return exc


class GRPCServerTests(unittest.TestCase):
    @inlineCallbacks
    def setUp(self) -> Any:
        self.grpc_port = free_port()
        self.server = InProcessServer(
            f"grpc://.:{self.grpc_port} {{\n bind 127.0.0.1\n"
            " grpc_server {\n  max_connections 2\n }\n whoami\n}\n"
        )
        yield self.server.start()
        self.addCleanup(self.server.stop)

    @inlineCallbacks
    def test_answers_a_query(self) -> Any:
        wire = yield deferToThread(
            _call, self.grpc_port, encode_packet(dns.message.make_query("a.test.", "A").to_wire())
        )
        reply = dns.message.from_wire(wire)
        self.assertEqual(reply.rcode(), dns.rcode.NOERROR)
        self.assertEqual(reply.additional[0][0].address, "127.0.0.1")  # the real client, not the relay
        self.assertTrue(str(reply.additional[1].name).startswith("_tcp."))

    @inlineCallbacks
    def test_bad_messages_get_grpc_errors_and_the_server_goes_on(self) -> Any:
        not_protobuf = yield deferToThread(_call, self.grpc_port, b"\xff\xff\xff")
        self.assertEqual(not_protobuf.code(), grpc.StatusCode.INVALID_ARGUMENT)
        not_dns = yield deferToThread(_call, self.grpc_port, encode_packet(b"hello"))
        self.assertEqual(not_dns.code(), grpc.StatusCode.UNKNOWN)
        too_big = yield deferToThread(_call, self.grpc_port, encode_packet(b"\0" * 70000))
        self.assertIsInstance(too_big, grpc.RpcError)
        wire = yield deferToThread(
            _call, self.grpc_port, encode_packet(dns.message.make_query("b.test.", "A").to_wire())
        )
        self.assertEqual(dns.message.from_wire(wire).rcode(), dns.rcode.NOERROR)

    @inlineCallbacks
    def test_max_connections_refuses_the_one_over(self) -> Any:
        def hold_three() -> bytes:
            held = [socket.create_connection(("127.0.0.1", self.grpc_port), timeout=5) for _ in range(3)]
            try:
                held[2].settimeout(5)
                return held[2].recv(10)  # closed at once: b""
            finally:
                for s in held:
                    s.close()

        data = yield deferToThread(hold_three)
        self.assertEqual(data, b"")


class GRPCServerSetupTests(unittest.TestCase):
    def test_errors(self) -> None:
        cases = {
            "grpc_server {\n max_streams x\n}": "Corefile:3 - Error during parsing: "
            "invalid max_streams value 'x': "
            'strconv.Atoi: parsing "x": invalid syntax',
            "grpc_server {\n max_connections -1\n}": "Corefile:3 - Error during parsing: "
            "max_connections must be a non-negative integer: -1",
            "grpc_server {\n max_streams 1\n max_streams 2\n}": "Corefile:4 - Error during parsing: "
            "max_streams already defined for this server block",
            "grpc_server {\n bogus 1\n}": "Corefile:3 - Error during parsing: unknown property 'bogus'",
            "grpc_server arg": "Corefile:2 - Error during parsing: "
            "Wrong argument count or unexpected line ending after 'arg'",
        }
        for text, error in cases.items():
            self.assertEqual(setup_error(text), "plugin/grpc_server: " + error, text)
        self.assertIsNone(setup_error("grpc_server {\n max_streams 0\n max_connections 0\n}"))
