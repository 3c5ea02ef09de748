"""timeouts: CoreDNS's syntax and errors, and the limits it sets on a real server's TCP and DoH
connections (HTTP/1.1 and HTTP/2), tested with clients that are slow in each way."""

from __future__ import annotations

import base64
import socket
import ssl
import struct
import time
from typing import Any

import dns.message
import dns.query
from h2.config import H2Configuration
from h2.connection import H2Connection
from h2.events import ConnectionTerminated, ResponseReceived, StreamEnded
from h2.settings import SettingCodes
from twisted.internet.defer import inlineCallbacks
from twisted.internet.threads import deferToThread
from twisted.trial.unittest import SynchronousTestCase, TestCase

from twisted_coredns.server import limits
from twisted_coredns.testing import InProcessServer, wait_for
from twisted_coredns.testing.certs import certificates
from twisted_coredns.testing.setup import check_setup_rows, run_setup

from .transport_support import client_context, corefile, doh_query, dot_query

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


# -- DoH: each timeout against a real slow client ------------------------------------------------

_DOH_TIMEOUTS = " timeouts {\n  read 1s\n  write 1s\n  idle 2s\n }\n"


def _get_target(name: str) -> bytes:
    wire = dns.message.make_query(name, "A").to_wire()
    return b"/dns-query?dns=" + base64.urlsafe_b64encode(wire).rstrip(b"=")


def _tls(port: int, alpn: str, rcvbuf: int = 0) -> ssl.SSLSocket:
    raw = socket.socket()
    if rcvbuf:
        raw.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    raw.settimeout(5)
    raw.connect(("127.0.0.1", port))
    ctx = client_context()
    ctx.set_alpn_protocols([alpn])
    return ctx.wrap_socket(raw, server_hostname="localhost")


def _h2(sock: ssl.SSLSocket, window: int | None = None) -> H2Connection:
    conn = H2Connection(H2Configuration(client_side=True, header_encoding=None))
    conn.initiate_connection()
    if window is not None:
        conn.update_settings({SettingCodes.INITIAL_WINDOW_SIZE: window})
    sock.sendall(conn.data_to_send())
    return conn


def _h2_get(conn: H2Connection, target: bytes, end: bool = True) -> int:
    sid = conn.get_next_available_stream_id()
    method = b"GET" if end else b"POST"
    conn.send_headers(sid, [(b":method", method), (b":scheme", b"https"), (b":authority", b"localhost"),
                            (b":path", target if end else b"/dns-query")], end_stream=end)
    return sid


def _h2_events(sock: ssl.SSLSocket, conn: H2Connection, until: Any, timeout: float = 5.0) -> list[Any]:
    """h2 events read until ``until(events)`` holds, the server closes, or ``timeout``."""
    events: list[Any] = []
    deadline = time.monotonic() + timeout
    sock.settimeout(0.2)
    while not until(events) and time.monotonic() < deadline:
        try:
            data = sock.recv(65536)
        except TimeoutError:
            continue
        except OSError:
            events.append("closed")
            break
        if not data:
            events.append("closed")
            break
        events.extend(conn.receive_data(data))
        out = conn.data_to_send()
        if out:
            sock.sendall(out)
    return events


def _closed_after(sock: socket.socket, timeout: float = 6.0) -> float:
    """Seconds until the server closes ``sock`` (reading and dropping what comes), or ``timeout``."""
    start = time.monotonic()
    sock.settimeout(timeout)
    try:
        while sock.recv(65536):
            pass
    except (TimeoutError, ConnectionResetError, ssl.SSLError):
        pass
    return time.monotonic() - start


def _status(events: list[Any], sid: int) -> bytes | None:
    for event in events:
        if isinstance(event, ResponseReceived) and event.stream_id == sid:
            return dict(event.headers)[b":status"]
    return None


class DoHTimeoutTests(TestCase):
    """``timeouts { read 1s; write 1s; idle 2s }`` on an https:// block, with clients that connect
    and say nothing, leave a request unfinished, do not read their replies, or fall silent."""

    @inlineCallbacks
    def setUp(self) -> Any:
        certs = certificates()
        self.server = InProcessServer(
            f"https://.:0 {{\n tls {certs.cert_file} {certs.key_file}\n{_DOH_TIMEOUTS} whoami\n}}\n"
        )
        yield self.server.start()
        self.addCleanup(self.server.stop)
        self.port = self.server.port
        self.factory = self.server.service.servers[0].ports[0].factory

    def _still_serving(self) -> int:
        return doh_query(self.port, "other.example.", h2=True).rcode()

    def _open(self) -> int:
        return len(self.factory.protocols)

    def _gone_after(self, before: int, start: float, timeout: float = 6.0) -> float:
        """Seconds from ``start`` until the server holds fewer than ``before`` connections."""
        wait_for(lambda: self._open() < before, timeout, "the server to drop the connection")
        return time.monotonic() - start

    # read ----------------------------------------------------------------------------------------

    def _silent_tcp(self) -> float:
        with socket.create_connection(("127.0.0.1", self.port), timeout=5) as sock:
            return _closed_after(sock)

    @inlineCallbacks
    def test_read_a_client_that_never_starts_tls_is_cut_off(self) -> Any:
        seconds = yield deferToThread(self._silent_tcp)
        self.assertGreater(seconds, 0.8)
        self.assertLess(seconds, 2.5)
        self.assertEqual((yield deferToThread(self._still_serving)), 0)

    def _unfinished_http1(self) -> float:
        with _tls(self.port, "http/1.1") as sock:
            sock.sendall(b"POST /dns-query HTTP/1.1\r\nHost: localhost\r\nContent-Length: 100\r\n\r\n0123")
            return _closed_after(sock)

    @inlineCallbacks
    def test_read_an_unfinished_http1_request_is_cut_off(self) -> Any:
        seconds = yield deferToThread(self._unfinished_http1)
        self.assertGreater(seconds, 0.8)
        self.assertLess(seconds, 2.5)
        self.assertEqual((yield deferToThread(self._still_serving)), 0)

    def _unfinished_h2_body(self) -> tuple[bytes | None, bytes | None, float]:
        with _tls(self.port, "h2") as sock:
            conn = _h2(sock)
            first = _h2_get(conn, _get_target("first.example."))
            sock.sendall(conn.data_to_send())
            events = _h2_events(sock, conn, lambda ev: any(isinstance(e, StreamEnded) for e in ev))
            slow = _h2_get(conn, b"", end=False)
            conn.send_data(slow, b"\x00\x01")  # two bytes of a body that never ends
            sock.sendall(conn.data_to_send())
            start = time.monotonic()
            later = _h2_events(sock, conn, lambda ev: _status(ev, slow) is not None)
            return _status(events, first), _status(later, slow), time.monotonic() - start

    @inlineCallbacks
    def test_read_an_h2_body_that_never_ends_gets_400(self) -> Any:
        first, slow, seconds = yield deferToThread(self._unfinished_h2_body)
        self.assertEqual(first, b"200")
        self.assertEqual(slow, b"400")
        self.assertGreater(seconds, 0.8)
        self.assertLess(seconds, 2.5)

    # write ---------------------------------------------------------------------------------------

    def _h2_window_shut(self) -> tuple[bytes | None, float]:
        with _tls(self.port, "h2") as sock:
            conn = _h2(sock, window=0)  # no DATA may be sent to us
            before = self._open()
            sid = _h2_get(conn, _get_target("shut.example."))
            sock.sendall(conn.data_to_send())
            start = time.monotonic()
            events = _h2_events(sock, conn, lambda ev: _status(ev, sid) is not None)
            return _status(events, sid), self._gone_after(before, start)

    @inlineCallbacks
    def test_write_a_reply_the_h2_client_will_not_take_aborts_the_connection(self) -> Any:
        status, seconds = yield deferToThread(self._h2_window_shut)
        self.assertEqual(status, b"200")  # the headers go; the body waits for a window
        self.assertGreater(seconds, 0.8)
        self.assertLess(seconds, 2.5)
        self.assertEqual((yield deferToThread(self._still_serving)), 0)

    def _http1_not_reading(self) -> float | None:
        """Seconds from the last request sent until the server dropped the connection, or None
        when it dropped it while requests were still going in."""
        with _tls(self.port, "http/1.1", rcvbuf=4096) as sock:
            before = self._open()
            request = b"GET " + _get_target("flood.example.") + b" HTTP/1.1\r\nHost: localhost\r\n\r\n"
            sock.setblocking(False)
            try:
                for _ in range(20000):  # pipelined, and no reply is ever read
                    sock.sendall(request)
            except (ssl.SSLWantWriteError, BlockingIOError):
                pass
            except (ssl.SSLEOFError, ConnectionResetError, BrokenPipeError):
                # On a slow machine the write timeout fires while the loop is still sending.
                wait_for(lambda: self._open() < before, 6.0, "the server to forget the connection")
                return None
            start = time.monotonic()
            return self._gone_after(before, start)

    @inlineCallbacks
    def test_write_an_http1_client_that_does_not_read_is_cut_off(self) -> Any:
        seconds = yield deferToThread(self._http1_not_reading)
        # The write timeout closed it, not the idle timeout (2 s): cut while requests still came
        # in, when no idle timer can run, or within 1.8 s of the last one.
        if seconds is not None:
            self.assertLess(seconds, 1.8)
        self.assertEqual((yield deferToThread(self._still_serving)), 0)

    # idle ----------------------------------------------------------------------------------------

    def _h2_idle(self) -> tuple[list[Any], float]:
        with _tls(self.port, "h2") as sock:
            conn = _h2(sock)
            _h2_get(conn, _get_target("once.example."))
            sock.sendall(conn.data_to_send())
            _h2_events(sock, conn, lambda ev: any(isinstance(e, StreamEnded) for e in ev))
            start = time.monotonic()
            events = _h2_events(sock, conn, lambda ev: "closed" in ev, timeout=6)
            return events, time.monotonic() - start

    @inlineCallbacks
    def test_idle_h2_connection_gets_goaway_and_is_closed(self) -> Any:
        events, seconds = yield deferToThread(self._h2_idle)
        self.assertTrue(any(isinstance(e, ConnectionTerminated) for e in events), events)
        self.assertIn("closed", events)
        self.assertGreater(seconds, 1.7)
        self.assertLess(seconds, 3.5)

    def _http1_idle(self) -> float:
        with _tls(self.port, "http/1.1") as sock:
            sock.sendall(b"GET " + _get_target("once.example.") + b" HTTP/1.1\r\nHost: localhost\r\n\r\n")
            sock.settimeout(5)
            reply = sock.recv(65536)
            assert reply.startswith(b"HTTP/1.1 200"), reply
            return _closed_after(sock)

    @inlineCallbacks
    def test_idle_http1_connection_is_closed(self) -> Any:
        seconds = yield deferToThread(self._http1_idle)
        self.assertGreater(seconds, 1.7)
        self.assertLess(seconds, 3.5)


class ReadmeCorefileTests(TestCase):
    """The five Corefiles of CoreDNS's timeouts README start and answer, over their transport,
    through ``forward`` to a loopback upstream."""

    @inlineCallbacks
    def test_readme_corefiles_start_and_answer(self) -> Any:
        upstream = InProcessServer(". {\n whoami\n}\n")
        yield upstream.start()
        self.addCleanup(upstream.stop)
        target = f"127.0.0.1:{upstream.port}"
        certs = certificates()
        for n in range(1, 6):
            server = InProcessServer(corefile(f"timeouts_{n}.corefile", upstream=target))
            yield server.start()
            try:
                (address,) = server.ports
                reply = yield deferToThread(_query_over, address.split("://")[0], server.port, certs.ca_file)
                self.assertEqual(reply.rcode(), 0, address)
                self.assertTrue(reply.additional, address)  # whoami's address record, forwarded
            finally:
                yield server.stop()


def _query_over(scheme: str, port: int, ca: str) -> Any:
    q = dns.message.make_query("readme.example.", "A")
    if scheme == "tls":
        return dot_query(port, "readme.example.")
    if scheme == "https":
        return doh_query(port, "readme.example.")
    if scheme == "quic":
        return dns.query.quic(q, "127.0.0.1", port=port, verify=ca, server_hostname="localhost", timeout=5)
    return dns.query.tcp(q, "127.0.0.1", port=port, timeout=5)
