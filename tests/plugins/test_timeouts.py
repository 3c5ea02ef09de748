"""timeouts: CoreDNS's syntax and errors, and the limits it sets on a real server's TCP
connections."""

from __future__ import annotations

import socket
import struct
import time
from typing import Any

import dns.message
from twisted.internet.defer import inlineCallbacks
from twisted.internet.threads import deferToThread
from twisted.trial.unittest import SynchronousTestCase, TestCase

from twisted_coredns.server import limits
from twisted_coredns.testing import InProcessServer
from twisted_coredns.testing.setup import check_setup_rows, run_setup

E = "plugin/timeouts: Corefile:{line} - Error during parsing: "
TWICE = "plugin/timeouts: " + E

ROWS = [
    # From CoreDNS's plugin/timeouts/timeouts_test.go, with the whole text our server prints.
    {"input": "timeouts", "expect_error": True,
     "error": TWICE.format(line=2) + "timeouts block with no timeouts specified"},
    {"input": "timeouts invalid", "expect_error": True,
     "error": TWICE.format(line=2) + "Wrong argument count or unexpected line ending after 'invalid'"},
    {"input": "timeouts {\n\tread 10s\n}", "expect_error": False},
    {"input": "timeouts {\n\tread 10\n}", "expect_error": False},
    {"input": "timeouts {\n\tread 0\n}", "expect_error": True,
     "error": E.format(line=3) + "timeout provided '0s' needs to be between 1 second and 24 hours"},
    {"input": "timeouts {\n\tread 25h\n}", "expect_error": True,
     "error": E.format(line=3) + "timeout provided '25h0m0s' needs to be between 1 second and 24 hours"},
    {"input": "timeouts {\n\tread 10s\n\twrite 20s\n\tidle 60s\n}", "expect_error": False},
    {"input": "timeouts {\n\tread abc\n}", "expect_error": True,
     "error": E.format(line=3) + "failed to parse duration 'abc'"},
    {"input": "timeouts {\n\tread 10s 20s\n}", "expect_error": True,
     "error": E.format(line=3) + "Wrong argument count or unexpected line ending after '20s'"},
    {"input": "timeouts {\n\tfoo 10s\n}", "expect_error": True,
     "error": E.format(line=3) + "unknown option: 'foo'"},
    {"input": "timeouts {\n\tmaxtcpqueries 128\n}", "expect_error": False},
    {"input": "timeouts {\n\tmaxtcpqueries -1\n}", "expect_error": False},
    {"input": "timeouts {\n\tmaxtcpqueries 0\n}", "expect_error": True,
     "error": E.format(line=3) + "maxtcpqueries provided '0' needs to be -1 (unlimited) or a positive "
     "integer"},
    {"input": "timeouts {\n\tmaxtcpqueries -2\n}", "expect_error": True,
     "error": E.format(line=3) + "maxtcpqueries provided '-2' needs to be -1 (unlimited) or a positive "
     "integer"},
    {"input": "timeouts {\n\tmaxtcpqueries x\n}", "expect_error": True,
     "error": E.format(line=3) + "invalid value for maxtcpqueries 'x': strconv.Atoi: parsing \"x\": "
     "invalid syntax"},
    # Ours: CoreDNS has no cap on DNS-over-TCP connections.
    {"input": "timeouts {\n\tmaxtcpconnections 50\n}", "expect_error": False},
    {"input": "timeouts {\n\tmaxtcpconnections 0\n}", "expect_error": True,
     "error": E.format(line=3)
     + "maxtcpconnections provided '0' needs to be -1 (unlimited) or a positive integer"},
]


class SetupTests(SynchronousTestCase):
    def test_rows(self) -> None:
        check_setup_rows(self, ROWS, error_prefix="plugin/timeouts: ")

    def test_values_land_in_the_block_settings(self) -> None:
        result = run_setup(
            "timeouts {\n read 2\n write 3s\n idle 1m\n maxtcpqueries 128\n maxtcpconnections 50\n}"
        )
        self.assertEqual(
            {k: result.config.settings[k] for k in (limits.READ_TIMEOUT, limits.WRITE_TIMEOUT,
                                                    limits.IDLE_TIMEOUT, limits.MAX_TCP_QUERIES,
                                                    limits.MAX_TCP_CONNECTIONS)},
            {limits.READ_TIMEOUT: 2.0, limits.WRITE_TIMEOUT: 3.0, limits.IDLE_TIMEOUT: 60.0,
             limits.MAX_TCP_QUERIES: 128, limits.MAX_TCP_CONNECTIONS: 50},
        )


def _framed(name: str) -> bytes:
    wire = dns.message.make_query(name, "A").to_wire()
    return struct.pack("!H", len(wire)) + wire


def _read_until_closed(sock: socket.socket, timeout: float) -> tuple[int, float]:
    """Replies read, and seconds until the server closed the connection."""
    start = time.monotonic()
    sock.settimeout(timeout)
    data = b""
    try:
        while chunk := sock.recv(65535):
            data += chunk
    except (TimeoutError, ConnectionResetError):
        pass
    replies, off = 0, 0
    while off + 2 <= len(data):
        (size,) = struct.unpack_from("!H", data, off)
        off += 2 + size
        replies += 1
    return replies, time.monotonic() - start


class ServerTests(TestCase):
    @inlineCallbacks
    def setUp(self) -> Any:
        self.server = InProcessServer(". {\n timeouts {\n  read 1s\n  maxtcpqueries 2\n }\n whoami\n}\n")
        yield self.server.start()
        self.addCleanup(self.server.stop)

    def _connect(self) -> socket.socket:
        sock = socket.create_connection(("127.0.0.1", self.server.port), timeout=5)
        self.addCleanup(sock.close)
        return sock

    @inlineCallbacks
    def test_maxtcpqueries_closes_after_the_second_reply(self) -> Any:
        sock = self._connect()
        sock.sendall(_framed("a.example.") + _framed("b.example.") + _framed("c.example."))
        replies, _ = yield deferToThread(_read_until_closed, sock, 5)
        self.assertEqual(replies, 2)

    @inlineCallbacks
    def test_a_partial_query_is_cut_off_at_the_read_timeout(self) -> Any:
        sock = self._connect()
        sock.sendall(struct.pack("!H", 100) + b"12345")
        replies, seconds = yield deferToThread(_read_until_closed, sock, 5)
        self.assertEqual(replies, 0)
        self.assertGreater(seconds, 0.8)
        self.assertLess(seconds, 2.5)
