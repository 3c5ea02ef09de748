"""The dnstap plugin: its Corefile syntax (CoreDNS's setup rows), its encoding, and real servers
tapping real queries to the real ``dnstap`` command (golang-dnstap's, Debian's
golang-github-dnstap-golang-dnstap-cli), to test collectors that stall, go away and come back, over
TLS, and to sinks that connect to a listening server.

The ``dnstap`` command writes the frames it receives to a file (``-w``), but flushes that file only
when it closes it: on SIGHUP it closes and reopens it. ``CLICollector.capture`` renames the file,
sends SIGHUP, and reads the renamed file once the new one exists: the frames as the real
receiver got them, decoded once by ``dnstap -r -j`` (the real decoder) and once here (for the
fields its JSON leaves out: ``extra``, and the exact bytes).
"""

from __future__ import annotations

import datetime
import json
import os
import re
import shutil
import signal
import socket
import stat
import struct
import subprocess
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

import dns.rcode
from twisted.internet import reactor
from twisted.internet.defer import Deferred, inlineCallbacks
from twisted.internet.protocol import ClientFactory, Factory, Protocol
from twisted.internet.task import Clock, deferLater
from twisted.internet.threads import deferToThread
from twisted.trial.unittest import SynchronousTestCase, TestCase

from twisted_coredns.instance import build
from twisted_coredns.metrics import REGISTRY
from twisted_coredns.plugin import Handler
from twisted_coredns.plugins.dnstap import handler as handler_module
from twisted_coredns.plugins.dnstap.framestream import (
    ACCEPT,
    CONTENT_TYPE,
    FINISH,
    READY,
    START,
    STOP,
    FrameDecoder,
    FrameError,
    control_frame,
)
from twisted_coredns.plugins.dnstap.handler import Dnstap, Tap
from twisted_coredns.plugins.dnstap.listener import Listener
from twisted_coredns.plugins.dnstap.message import (
    PayloadEncoder,
    address_fields,
    client_query,
    client_response,
    varint,
)
from twisted_coredns.plugins.dnstap.output import Output, dial_error, split_host_port
from twisted_coredns.plugins.dnstap.setup import DEFAULT_VERSION, url_host
from twisted_coredns.request import Request
from twisted_coredns.response import Response, finish
from twisted_coredns.testing import (
    InProcessServer,
    SubprocessServer,
    free_port,
    make_query,
    make_request,
    wait_for,
)
from twisted_coredns.testing.setup import SetupResult, check_setup_rows, load_setup_rows

from .logerr_support import DATA, LogCapture

DNSTAP = shutil.which("dnstap") or "/usr/bin/dnstap"
HOSTNAME = socket.gethostname().encode()
LOCALHOST = socket.inet_aton("127.0.0.1")
CQ, CR = 5, 6
PREFIX = "plugin/dnstap: "


def _short_directory(case: SynchronousTestCase) -> Path:
    """A fresh temporary directory with a short path: a unix socket's path has 108 bytes at most."""
    directory = Path(tempfile.mkdtemp(prefix="dnstap-"))
    case.addCleanup(shutil.rmtree, directory, True)
    return directory


def _require_cli() -> None:
    if not os.access(DNSTAP, os.X_OK):
        raise AssertionError(
            f"{DNSTAP} is missing: install Debian's golang-github-dnstap-golang-dnstap-cli "
            "(`make tools` does), the collector these tests run"
        )


# -- a protobuf reader, for what the dnstap command's JSON leaves out ----------------------------


def _varint_at(data: bytes, off: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        byte = data[off]
        off += 1
        value |= (byte & 0x7F) << shift
        shift += 7
        if byte < 0x80:
            return value, off


def _fields(data: bytes) -> dict[int, list[Any]]:
    out: dict[int, list[Any]] = defaultdict(list)
    off = 0
    while off < len(data):
        key, off = _varint_at(data, off)
        number, wire_type = key >> 3, key & 7
        value: Any
        if wire_type == 0:
            value, off = _varint_at(data, off)
        elif wire_type == 2:
            length, off = _varint_at(data, off)
            value, off = data[off : off + length], off + length
        elif wire_type == 5:
            (value,), off = struct.unpack_from("<I", data, off), off + 4
        else:
            raise ValueError(f"wire type {wire_type}")
        out[number].append(value)
    return out


_MESSAGE_FIELDS = {
    1: "type", 2: "socket_family", 3: "socket_protocol", 4: "query_address", 5: "response_address",
    6: "query_port", 7: "response_port", 8: "query_time_sec", 9: "query_time_nsec", 10: "query_message",
    12: "response_time_sec", 13: "response_time_nsec", 14: "response_message",
}


def decode(payload: bytes) -> dict[str, Any]:
    """A ``Dnstap`` payload as a dict: ``identity``, ``version``, ``extra``, ``type``, and
    ``message`` (its fields by name; a field not sent is absent)."""
    top = _fields(payload)
    assert set(top) <= {1, 2, 3, 14, 15}, sorted(top)
    message = _fields(top[14][0])
    assert set(message) <= set(_MESSAGE_FIELDS), sorted(message)
    return {
        "identity": top[1][0] if 1 in top else None,
        "version": top[2][0] if 2 in top else None,
        "extra": top[3][0] if 3 in top else None,
        "type": top[15][0],
        "message": {_MESSAGE_FIELDS[n]: values[0] for n, values in message.items()},
    }


def stream_file(payloads: list[bytes]) -> bytes:
    """A Frame Streams file of ``payloads``: what ``dnstap -r`` reads."""
    frames = b"".join(struct.pack(">I", len(p)) + p for p in payloads)
    return control_frame(START, CONTENT_TYPE) + frames + control_frame(STOP)


def read_with_cli(path: Path) -> list[dict[str, Any]]:
    """The real decoder's JSON of a Frame Streams file, one dict per message."""
    out = subprocess.run([DNSTAP, "-r", str(path), "-j"], capture_output=True, text=True, timeout=20,
                         check=True)
    return [json.loads(line) for line in out.stdout.splitlines() if line.strip()]


def read_stream_file(path: Path) -> list[bytes]:
    frames = FrameDecoder().feed(path.read_bytes())
    kinds = [kind for kind, _value in frames]
    assert kinds[0] == START and kinds[-1] == STOP and set(kinds[1:-1]) <= {0}, kinds
    return [value for _kind, value in frames[1:-1]]


# -- collectors ---------------------------------------------------------------------------------


wait_until = wait_for
"""Poll a predicate until it is true (for a test that does not share the reactor)."""


@inlineCallbacks
def wait_on_reactor(predicate: Callable[[], Any], timeout: float = 10.0, what: str = "") -> Any:
    """Poll ``predicate`` until it is true, letting the reactor run in between."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what or predicate}")
        yield deferLater(reactor, 0.02, lambda: None)


def _tcp_listening(port: int) -> bool:
    wanted = f":{port:04X}"
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            if fields[1].endswith(wanted) and fields[3] == "0A":
                return True
    return False


class Captured:
    """One message as the collector got it: our decoding and the dnstap command's JSON."""

    def __init__(self, payload: bytes, cli: dict[str, Any]) -> None:
        self.payload = payload
        self.tap = decode(payload)
        self.message = self.tap["message"]
        self.cli = cli

    def __repr__(self) -> str:
        return f"<Captured {self.tap}>"


class CLICollector:
    """The ``dnstap`` command reading from a unix socket (``-u``) or TCP (``-l``)."""

    def __init__(self, directory: Path, *, unix: Path | None = None, tcp_port: int | None = None) -> None:
        _require_cli()
        self.directory = directory
        self.unix = unix
        self.tcp_port = tcp_port
        name = unix.name if unix is not None else f"tcp{tcp_port}"
        self.out = directory / f"{name}.fstrm"
        self.errors = directory / f"{name}.stderr"
        self.process: subprocess.Popen[bytes] | None = None
        self.messages: list[Captured] = []
        self._parts = 0

    def start(self) -> CLICollector:
        source = ["-u", str(self.unix)] if self.unix is not None else ["-l", f"127.0.0.1:{self.tcp_port}"]
        with open(self.errors, "ab") as errors:
            self.process = subprocess.Popen([DNSTAP, *source, "-w", str(self.out)], stderr=errors)
        wait_until(self.listening, what="the dnstap command to listen")
        return self

    def listening(self) -> bool:
        if self.process is None or self.process.poll() is not None:
            raise AssertionError(f"dnstap exited: {self.errors.read_text()}")
        if not self.out.exists():
            return False
        if self.unix is not None:
            return self.unix.exists() and stat.S_ISSOCK(self.unix.stat().st_mode)
        assert self.tcp_port is not None
        return _tcp_listening(self.tcp_port)

    def capture(self) -> list[Captured]:
        """Every message received so far (see the module's docstring for how)."""
        assert self.process is not None and self.process.poll() is None
        self._parts += 1
        part = self.directory / f"{self.out.name}.{self._parts}"
        os.rename(self.out, part)
        self.process.send_signal(signal.SIGHUP)
        wait_until(self.out.exists, what="the dnstap command to reopen its file")
        payloads = read_stream_file(part)
        cli = read_with_cli(part) if payloads else []
        assert len(cli) == len(payloads), (len(cli), len(payloads))
        self.messages.extend(Captured(p, j) for p, j in zip(payloads, cli, strict=True))
        return self.messages

    def stderr(self) -> str:
        return self.errors.read_text()

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait()
        self.process = None


def _of_port(messages: list[Captured], port: int) -> list[Captured]:
    return [m for m in messages if m.message.get("query_port") == port]


def ask(server_port: int, name: str, rdtype: str = "A", *, tcp: bool = False,
        source_port: int = 0, **kw: Any) -> tuple[bytes, bytes]:
    """One query from a known source port: the query's bytes and the reply's, as sent."""
    query = make_query(name, rdtype, **kw).to_wire()
    family = socket.SOCK_STREAM if tcp else socket.SOCK_DGRAM
    with socket.socket(socket.AF_INET, family) as s:
        s.settimeout(5)
        s.bind(("127.0.0.1", source_port))
        s.connect(("127.0.0.1", server_port))
        if tcp:
            s.sendall(struct.pack(">H", len(query)) + query)
            head = b""
            while len(head) < 2:
                head += s.recv(2 - len(head))
            (size,) = struct.unpack(">H", head)
            reply = b""
            while len(reply) < size:
                reply += s.recv(size - len(reply))
        else:
            s.send(query)
            reply = s.recv(65535)
    return query, reply


def _handler_of(instance: Any) -> Dnstap:
    for handler in instance.blocks[0].handlers:
        if isinstance(handler, Dnstap):
            return handler
    raise AssertionError("no dnstap handler in the chain")


def _tap_of(instance: Any, index: int = 0) -> Tap:
    return _handler_of(instance).taps[index]


def _dropped_metric() -> float:
    return REGISTRY.get_sample_value("coredns_dnstap_dropped_total") or 0.0


# -- setup ----------------------------------------------------------------------------------------


class SetupTests(SynchronousTestCase):
    def test_coredns_rows(self) -> None:
        """CoreDNS's TestConfig and TestMultiDnstap, and rows of ours for every error."""
        rows = load_setup_rows(DATA / "dnstap_setup_cases.json", source_contains="coredns/coredns @4b26cce")
        self.assertEqual(len(rows), 50)

        def same_taps(row: Any, result: SetupResult) -> None:
            handler = result.handler
            assert isinstance(handler, Dnstap)
            got = []
            for tap in handler.taps:
                sink: Any = tap.sink
                listen = isinstance(sink, Listener)
                got.append({
                    "network": sink.network, "address": sink.address, "full": tap.full,
                    "identity": None if tap.identity == HOSTNAME else tap.identity.decode(),
                    "version": None if tap.version == DEFAULT_VERSION.encode() else tap.version.decode(),
                    "extra": tap.extra,
                    "write_buffer": 1 if listen else sink.write_buffer // (1024 * 1024),
                    "queue": 1 if listen else sink.queue_size // 10000,
                    "listen": listen,
                    "cert": sink.cert_file if listen else None,
                    "key": sink.key_file if listen else None,
                    "ca": sink.ca_file if listen else None,
                    "skip_verify": sink.skip_verify,
                })
            self.assertEqual(got, row["taps"])

        self.assertEqual(check_setup_rows(self, rows, check=same_taps, error_prefix="plugin/dnstap: "), 50)

    def test_readme_corefiles_set_up(self) -> None:
        """Every Corefile of docs/plugins/dnstap.md sets up (nothing connects: nothing starts)."""
        text = (Path(__file__).resolve().parents[2] / "docs" / "plugins" / "dnstap.md").read_text()
        corefiles = re.findall(r"~~~ corefile\n(.*?)~~~", text, re.S)
        self.assertEqual(len(corefiles), 6)
        for corefile in corefiles:
            handler = _handler_of(build(corefile, dns_port=0))
            self.assertEqual(len(handler.taps), corefile.count("dnstap "))

    def test_defaults(self) -> None:
        self.assertEqual(DEFAULT_VERSION, "twisted-coredns-0.1.0")

    def test_url_hosts(self) -> None:
        """Go's url.Parse(...).Host, and where it fails."""
        for endpoint, host in [
            ("tcp://127.0.0.1:6000", "127.0.0.1:6000"),
            ("tcp://[::1]:6000/x", "[::1]:6000"),
            ("tls://u:p@example.com:853?q", "example.com:853"),
            ("tcp://example.com", "example.com"),
            ("tcp://example.com:", "example.com:"),
            ("tcp://a%2eb:1", "a%2eb:1"),
        ]:
            self.assertEqual(url_host(endpoint), host)
        for endpoint in ["tcp://[::1:6000", "tcp://[::1]x", "tcp://h:6x", "tcp://a%zz:1", "tcp://a^b:1"]:
            self.assertRaises(ValueError, url_host, endpoint)

    def test_dial_addresses(self) -> None:
        self.assertEqual(split_host_port("[::1]:6000"), ("::1", 6000))
        self.assertEqual(split_host_port("example.com:6000"), ("example.com", 6000))
        for bad, text in [
            ("127.0.0.1", "address 127.0.0.1: missing port in address"),
            ("::1:6000", "address ::1:6000: too many colons in address"),
            ("h:99999", "address h:99999: invalid port"),
        ]:
            with self.assertRaises(ValueError) as caught:
                split_host_port(bad)
            self.assertEqual(str(caught.exception), text)


# -- the encoding ---------------------------------------------------------------------------------


class EncodingTests(SynchronousTestCase):
    def test_varint(self) -> None:
        for n, wire in [(0, b"\x00"), (1, b"\x01"), (127, b"\x7f"), (128, b"\x80\x01"), (300, b"\xac\x02"),
                        (1 << 32, b"\x80\x80\x80\x80\x10")]:
            self.assertEqual(varint(n), wire)
            self.assertEqual(_varint_at(wire, 0), (n, len(wire)))

    def test_query_and_response_fields(self) -> None:
        encoder = PayloadEncoder(b"id", b"ver")
        addresses = address_fields(("127.0.0.1", 40212), "udp", ("127.0.0.1", 53))
        t0 = 1_700_000_000_123_456_789
        query = decode(encoder.payload(client_query(addresses, t0, b"QUERY"), b"extra text"))
        self.assertEqual(query, {
            "identity": b"id", "version": b"ver", "extra": b"extra text", "type": 1,
            "message": {
                "type": CQ, "socket_family": 1, "socket_protocol": 1,
                "query_address": LOCALHOST, "response_address": LOCALHOST,
                "query_port": 40212, "response_port": 53,
                "query_time_sec": 1_700_000_000, "query_time_nsec": 123_456_789, "query_message": b"QUERY",
            },
        })
        response = decode(encoder.payload(client_response(addresses, t0, t0 + 1_000_000_000, None)))
        self.assertIsNone(response["extra"])
        self.assertEqual(response["message"]["type"], CR)
        self.assertEqual(response["message"]["response_time_sec"], 1_700_000_001)
        self.assertEqual(response["message"]["response_time_nsec"], 123_456_789)
        self.assertNotIn("response_message", response["message"])
        self.assertNotIn("query_message", response["message"])

    def test_addresses(self) -> None:
        def message(remote: tuple[str, int], proto: str, local: Any) -> dict[str, Any]:
            addresses = address_fields(remote, proto, local)
            return decode(PayloadEncoder(b"", b"").payload(client_query(addresses, 0, None)))["message"]

        v6 = message(("2001:db8::1", 5353), "tcp", ("2001:db8::53", 53))
        self.assertEqual((v6["socket_family"], v6["socket_protocol"]), (2, 2))
        self.assertEqual(v6["query_address"], socket.inet_pton(socket.AF_INET6, "2001:db8::1"))
        self.assertEqual(v6["response_address"], socket.inet_pton(socket.AF_INET6, "2001:db8::53"))
        mapped = message(("::ffff:192.0.2.1", 1), "udp", None)  # CoreDNS: an IPv4-mapped address is INET
        self.assertEqual((mapped["socket_family"], mapped["query_address"]),
                         (1, socket.inet_aton("192.0.2.1")))
        self.assertNotIn("response_address", mapped)
        zoned = message(("fe80::1%eth0", 1), "udp", None)
        self.assertEqual(zoned["query_address"], socket.inet_pton(socket.AF_INET6, "fe80::1"))
        for wildcard in [("0.0.0.0", 53), ("::", 53), ("::1", 53)]:
            # A wildcard listener does not know the address the query came to; nor is an IPv6
            # server address right for an IPv4 client: leave both out.
            fields = message(("127.0.0.1", 1), "udp", wildcard)
            self.assertNotIn("response_address", fields)
            self.assertNotIn("response_port", fields)

    def test_frames_and_the_real_decoder(self) -> None:
        """A stream file of our payloads, read by ``dnstap -r``."""
        _require_cli()
        encoder = PayloadEncoder(b"host", b"v1")
        addresses = address_fields(("127.0.0.1", 1234), "tcp", ("127.0.0.1", 53))
        query = make_query("example.org.", "MX").to_wire()
        frame = encoder.frame(client_query(addresses, 1_700_000_000_000_000_001, query))
        self.assertEqual(struct.unpack(">I", frame[:4])[0], len(frame) - 4)
        path = Path(self.mktemp())
        path.write_bytes(stream_file([frame[4:]]))
        [got] = read_with_cli(path)
        self.assertEqual(got["identity"], "host")
        self.assertEqual(got["version"], "v1")
        self.assertEqual(got["message"]["type"], "CLIENT_QUERY")
        self.assertEqual(got["message"]["socket_protocol"], "TCP")
        self.assertEqual(got["message"]["query_port"], 1234)
        self.assertEqual(got["message"]["response_port"], 53)
        self.assertIn("example.org.\tIN\t MX", got["message"]["query_message"])

    def test_control_frames(self) -> None:
        ready = control_frame(READY, CONTENT_TYPE)
        self.assertEqual(ready[:12], b"\x00\x00\x00\x00" + struct.pack(">II", 4 + 8 + 22, READY))
        decoder = FrameDecoder()
        whole = ready + control_frame(FINISH) + b"\x00\x00\x00\x03abc"
        got = []
        for i in range(len(whole)):  # one byte at a time
            got.extend(decoder.feed(whole[i : i + 1]))
        self.assertEqual(got, [(READY, [CONTENT_TYPE]), (FINISH, []), (0, b"abc")])
        too_long, unknown_type, bad_field = (
            struct.pack(">II", 0, 600), struct.pack(">III", 0, 4, 9), struct.pack(">IIII", 0, 8, 1, 7))
        for bad in (too_long, unknown_type, bad_field):
            self.assertRaises(FrameError, FrameDecoder().feed, bad + b"\x00" * 600)
        self.assertRaises(FrameError, FrameDecoder(max_data_length=10).feed, b"\x00\x00\x00\x0b")


# -- the handler, without sockets ------------------------------------------------------------------


class _Sink:
    def __init__(self, admit: bool = True) -> None:
        self.admits = admit
        self.frames: list[bytes] = []
        self.refused = 0

    def admit(self) -> bool:
        if not self.admits:
            self.refused += 1
        return self.admits

    def put(self, frame: bytes) -> None:
        self.frames.append(frame)

    def start(self) -> None:
        pass

    def stop(self) -> None:
        pass

    def decoded(self) -> list[dict[str, Any]]:
        return [decode(frame[4:]) for frame in self.frames]


class _Fixed(Handler):
    def __init__(self, result: Callable[[Request], Any]) -> None:
        self.result = result

    def serve(self, request: Request) -> Any:
        return self.result(request)


def _tapped(sink: _Sink, result: Callable[[Request], Any], full: bool = True, extra: str = "") -> Dnstap:
    handler = Dnstap([Tap(sink, full=full, identity=b"i", version=b"v", extra=extra)])
    handler.next = _Fixed(result)
    return handler


class HandlerTests(SynchronousTestCase):
    def test_query_then_response_synchronously(self) -> None:
        sink = _Sink()
        handler = _tapped(sink, lambda request: Response(finish(request, Response.not_written(0))))
        request = make_request("example.org.", "A", edns=True, remote=("192.0.2.7", 5300))
        before = time.time_ns()
        result = handler.serve(request)
        self.assertIs(type(result), Response, "a synchronous chain makes no Deferred")
        query, response = sink.decoded()
        self.assertEqual(query["message"]["type"], CQ)
        self.assertEqual(query["message"]["query_message"], request.wire)
        self.assertEqual(query["message"]["query_address"], socket.inet_aton("192.0.2.7"))
        self.assertEqual(response["message"]["type"], CR)
        self.assertEqual(response["message"]["response_message"], finish(request, result))
        qtime = query["message"]["query_time_sec"] * 10**9 + query["message"]["query_time_nsec"]
        self.assertGreaterEqual(qtime, before)
        self.assertEqual(response["message"]["query_time_sec"], query["message"]["query_time_sec"])

    def test_deferred_chain(self) -> None:
        sink = _Sink()
        later: Deferred[Response] = Deferred()
        handler = _tapped(sink, lambda request: later)
        request = make_request("example.org.")
        result = handler.serve(request)
        self.assertEqual(len(sink.frames), 1)
        later.callback(Response(finish(request, Response.not_written(3))))
        self.assertEqual(self.successResultOf(result).rcode, 3)
        self.assertEqual([d["message"]["type"] for d in sink.decoded()], [CQ, CR])

    def test_not_written_and_crashes_give_no_response_message(self) -> None:
        """As in CoreDNS: the server writes those replies, not through dnstap's writer."""
        sink = _Sink()
        handler = _tapped(sink, lambda request: Response.not_written(2, "no"))
        self.assertFalse(handler.serve(make_request("example.org.")).written)

        def crash(request: Request) -> Response:
            raise RuntimeError("boom")

        crashing = _tapped(sink, crash)
        self.assertRaises(RuntimeError, crashing.serve, make_request("example.org."))
        self.assertEqual([d["message"]["type"] for d in sink.decoded()], [CQ, CQ])

    def test_without_full_no_messages(self) -> None:
        sink = _Sink()
        request = make_request("example.org.")
        _tapped(sink, lambda r: Response(finish(r, Response.not_written(0))), full=False).serve(request)
        for decoded in sink.decoded():
            self.assertNotIn("query_message", decoded["message"])
            self.assertNotIn("response_message", decoded["message"])

    def test_extra_placeholders_per_message(self) -> None:
        """Placeholders are filled per message: metadata set by a later plugin shows in the
        reply's message only (CoreDNS's README example: ``{/forward/upstream}``)."""
        sink = _Sink()

        def answer(request: Request) -> Response:
            request.set_metadata("forward/upstream", "192.0.2.53:53")
            return Response(finish(request, Response.not_written(0)))

        _tapped(sink, answer, extra="{name} {type} {proto} {rcode} up={/forward/upstream}").serve(
            make_request("Example.ORG.", "MX"))
        self.assertEqual([d["extra"] for d in sink.decoded()],
                         [b"example.org. MX udp - up=-", b"example.org. MX udp - up=192.0.2.53:53"])

    def test_nothing_is_encoded_for_a_sink_that_refuses(self) -> None:
        encoded: list[Any] = []
        self.patch(handler_module, "client_query", lambda *a: encoded.append(a))
        self.patch(handler_module, "client_response", lambda *a: encoded.append(a))
        self.patch(handler_module, "address_fields", lambda *a: encoded.append(a))
        self.patch(handler_module, "finish", lambda *a: encoded.append(a))
        sink = _Sink(admit=False)
        result = _tapped(sink, lambda r: Response(b"\x00" * 12)).serve(make_request("example.org."))
        self.assertIs(type(result), Response)
        self.assertEqual((encoded, sink.frames, sink.refused), ([], [], 2))


# -- the output's timers, on a Clock ---------------------------------------------------------------


class OutputTimerTests(TestCase):
    @inlineCallbacks
    def test_no_collector_drops_and_reports_every_ten_seconds(self) -> Any:
        log = LogCapture(self, "dnstap")
        clock = Clock()
        path = _short_directory(self) / "absent.sock"
        output = Output("unix", str(path), reactor, clock=clock)
        before = _dropped_metric()
        output.start()
        self.addCleanup(output.stop)
        yield wait_on_reactor(lambda: log.lines(), what="the connection error")
        self.assertEqual(log.lines(), [
            ("ERROR", f"{PREFIX}No connection to dnstap endpoint: dial unix {path}: connect: "
                      "no such file or directory"),
        ])
        for _ in range(3):
            self.assertFalse(output.admit())
        self.assertEqual(output.queue, type(output.queue)())
        self.assertEqual(_dropped_metric() - before, 3)
        clock.advance(9.9)
        self.assertEqual(len(log.lines()), 1)
        clock.advance(0.1)
        self.assertEqual(log.lines()[1], ("WARNING", f"{PREFIX}Dropped dnstap messages: 3"))
        # A reconnection was tried (silently: CoreDNS logs only the first failure), then nothing
        # more to report.
        yield wait_on_reactor(lambda: not output._connecting, what="the second attempt to fail")
        clock.advance(10)
        self.assertEqual(len(log.lines()), 2)

    @inlineCallbacks
    def test_a_unix_path_too_long(self) -> Any:
        log = LogCapture(self, "dnstap")
        path = "/tmp/" + "x" * 120
        output = Output("unix", path, reactor)
        output.start()
        self.addCleanup(output.stop)
        yield wait_on_reactor(lambda: log.lines(), what="the connection error")
        self.assertEqual(log.texts(), [
            f"{PREFIX}No connection to dnstap endpoint: dial unix {path}: connect: invalid argument"])

    def test_dial_errors(self) -> None:
        from twisted.internet import error
        from twisted.python.failure import Failure

        refused = Failure(error.ConnectionRefusedError())
        self.assertEqual(dial_error("tcp", "127.0.0.1:6000", refused),
                         "dial tcp 127.0.0.1:6000: connect: connection refused")
        timeout = Failure(error.TimeoutError())
        self.assertEqual(dial_error("tcp", "192.0.2.1:6000", timeout), "dial tcp 192.0.2.1:6000: i/o timeout")
        lookup = Failure(error.DNSLookupError("nope"))
        self.assertEqual(dial_error("tcp", "nowhere.invalid:6000", lookup),
                         "dial tcp: lookup nowhere.invalid: no such host")


# -- real servers, the real collector ------------------------------------------------------------


class CollectorTests(SynchronousTestCase):
    """``twisted-coredns`` as a child process, tapping to the ``dnstap`` command."""

    def setUp(self) -> None:
        _require_cli()
        self.directory = _short_directory(self)

    def collector(self, **kw: Any) -> CLICollector:
        collector = CLICollector(self.directory, **kw).start()
        self.addCleanup(collector.stop)
        return collector

    def server(self, corefile: str) -> SubprocessServer:
        server = SubprocessServer(corefile, directory=self.directory)
        server.start()
        self.addCleanup(server.stop)
        return server

    def test_unix_collector_full(self) -> None:
        """Every field of both messages, over UDP and TCP; the stream ends with STOP/FINISH."""
        sock = self.directory / "tap.sock"
        collector = self.collector(unix=sock)
        server = self.server(
            f". {{\n bind 127.0.0.1\n dnstap unix://{sock} full {{\n  identity tap-test\n  version 9.9\n"
            f'  extra "extra {{name}} {{proto}} {{rcode}}"\n }}\n whoami\n}}\n'
        )
        udp_port, tcp_port = free_port(), free_port()
        before = time.time()
        sent = {
            udp_port: ask(server.port, "udp.example.", edns=True, source_port=udp_port),
            tcp_port: ask(server.port, "tcp.example.", "AAAA", tcp=True, source_port=tcp_port),
        }
        after = time.time()
        wait_until(lambda: all(len(_of_port(collector.capture(), p)) == 2 for p in sent), what="4 messages")
        for port, (query, reply) in sent.items():
            proto = 2 if port == tcp_port else 1
            name = "tcp.example." if port == tcp_port else "udp.example."
            cq, cr = _of_port(collector.messages, port)
            for got, kind in [(cq, CQ), (cr, CR)]:
                self.assertEqual(got.tap["identity"], b"tap-test")
                self.assertEqual(got.tap["version"], b"9.9")
                transport = "tcp" if proto == 2 else "udp"
                self.assertEqual(got.tap["extra"], f"extra {name} {transport} -".encode())
                self.assertEqual(got.tap["type"], 1)
                m = got.message
                self.assertEqual(m["type"], kind)
                self.assertEqual((m["socket_family"], m["socket_protocol"]), (1, proto))
                self.assertEqual((m["query_address"], m["query_port"]), (LOCALHOST, port))
                self.assertEqual((m["response_address"], m["response_port"]), (LOCALHOST, server.port))
                self.assertLessEqual(int(before), m["query_time_sec"])
                self.assertLessEqual(m["query_time_sec"], after)
                self.assertLess(m["query_time_nsec"], 10**9)
                # The real decoder agrees.
                cli = got.cli["message"]
                self.assertEqual(cli["type"], "CLIENT_QUERY" if kind == CQ else "CLIENT_RESPONSE")
                self.assertEqual((cli["socket_family"], cli["socket_protocol"]), ("INET", "TCP" if proto == 2
                                                                                   else "UDP"))
                self.assertEqual((cli["query_address"], cli["query_port"]), ("127.0.0.1", port))
                self.assertEqual(got.cli["identity"], "tap-test")
                self.assertEqual(got.cli["version"], "9.9")
            self.assertEqual(cq.message["query_message"], query)
            self.assertNotIn("response_message", cq.message)
            self.assertEqual(cr.message["response_message"], reply)
            self.assertNotIn("query_message", cr.message)
            self.assertIn(name, cq.cli["message"]["query_message"])
            self.assertIn(name, cr.cli["message"]["response_message"])
            response_time = cr.message["response_time_sec"] * 10**9 + cr.message["response_time_nsec"]
            query_time = cr.message["query_time_sec"] * 10**9 + cr.message["query_time_nsec"]
            self.assertEqual(query_time, cq.message["query_time_sec"] * 10**9 + cq.message["query_time_nsec"])
            self.assertGreaterEqual(response_time, query_time)
        # Queries just before the end are written out at shutdown, then STOP, FINISH, close.
        last = [free_port() for _ in range(5)]
        for port in last:
            ask(server.port, "last.example.", source_port=port)
        self.assertEqual(server.stop(), 0)
        wait_until(lambda: "closed connection" in collector.stderr(), what="the stream to end")
        messages = collector.capture()
        for port in last:
            self.assertEqual([m.message["type"] for m in _of_port(messages, port)], [CQ, CR])

    def test_tcp_collector_and_several_taps(self) -> None:
        """``dnstap -l``; without ``full`` no wire messages; the defaults; two taps at once."""
        tcp_collector = self.collector(tcp_port=free_port())
        sock = self.directory / "full.sock"
        unix_collector = self.collector(unix=sock)
        server = self.server(
            f". {{\n bind 127.0.0.1\n dnstap tcp://127.0.0.1:{tcp_collector.tcp_port}\n"
            f" dnstap {sock} full\n whoami\n}}\n"
        )
        ports = [free_port(), free_port()]
        ask(server.port, "a.example.", source_port=ports[0])
        ask(server.port, "b.example.", tcp=True, source_port=ports[1])
        for collector in (tcp_collector, unix_collector):
            wait_until(lambda c=collector: all(len(_of_port(c.capture(), p)) == 2 for p in ports),
                       what="both queries' messages")
        for port in ports:
            for got in _of_port(tcp_collector.messages, port):
                self.assertEqual(got.tap["identity"], HOSTNAME)
                self.assertEqual(got.tap["version"], DEFAULT_VERSION.encode())
                self.assertIsNone(got.tap["extra"])
                self.assertNotIn("query_message", got.message)
                self.assertNotIn("response_message", got.message)
                self.assertNotIn("query_message", got.cli["message"])
                self.assertNotIn("response_message", got.cli["message"])
            full = _of_port(unix_collector.messages, port)
            self.assertIn("query_message", full[0].message)
            self.assertIn("response_message", full[1].message)
        server.stop()
        for collector in (tcp_collector, unix_collector):
            wait_until(lambda c=collector: "closed connection" in c.stderr(), what="STOP/FINISH")


class ServerTests(TestCase):
    """The server in this process (its taps reachable, its timers shortened), real collectors."""

    def setUp(self) -> None:
        self.directory = _short_directory(self)

    @inlineCallbacks
    def serve(self, corefile: str, configure: Callable[[Tap], None] | None = None) -> Any:
        server = InProcessServer(corefile)
        if configure is not None:
            configure(_tap_of(server.instance))
        yield server.start()
        self.addCleanup(lambda: server.stop() if server.service.running else None)
        return server

    def collector(self, **kw: Any) -> CLICollector:
        collector = CLICollector(self.directory, **kw).start()
        self.addCleanup(collector.stop)
        return collector

    @inlineCallbacks
    def test_reconnects_when_the_collector_comes_and_goes(self) -> Any:
        """The server starts first; the collector comes, goes and comes back; every query is
        answered throughout, and messages flow whenever a collector is there."""
        _require_cli()
        log = LogCapture(self, "dnstap")
        sock = self.directory / "late.sock"

        def shorten(tap: Tap) -> None:
            tap.sink.error_check_interval = 0.2  # type: ignore[attr-defined]

        server = yield self.serve(f". {{\n dnstap {sock}\n whoami\n}}\n", shorten)
        output: Any = _tap_of(server.instance).sink
        yield wait_on_reactor(lambda: log.lines(), what="the first connection error")
        self.assertEqual(log.lines()[0], (
            "ERROR", f"{PREFIX}No connection to dnstap endpoint: dial unix {sock}: connect: "
                     "no such file or directory"))
        reply = yield server.query("before.example.")
        self.assertEqual(reply.rcode(), dns.rcode.NOERROR)
        self.assertGreaterEqual(output.dropped_total, 2)

        for round_ in range(2):
            collector = self.collector(unix=sock)
            yield wait_on_reactor(lambda: output.sender is not None, what="a connection")
            port = free_port()
            yield deferToThread(ask, server.port, f"round{round_}.example.", source_port=port)
            yield wait_on_reactor(lambda p=port, c=collector: len(_of_port(c.capture(), p)) == 2,
                                  what="the messages of a query")
            collector.stop()
            yield wait_on_reactor(lambda: output.sender is None, what="the connection to go")
            reply = yield server.query("between.example.")
            self.assertEqual(reply.rcode(), dns.rcode.NOERROR)
            if round_ == 0:
                os.unlink(sock)  # the dead collector's socket file
        self.assertTrue(all(level != "ERROR" for level, _text in log.lines()[1:]), log.lines())

    @inlineCallbacks
    def test_a_stalled_collector_drops_and_queries_stay_fast(self) -> Any:
        """A collector that shakes hands and then never reads: the transport pauses, the queue
        fills, messages are dropped and counted, and queries are answered as before."""
        receiver = Receivers(stall=True)
        port = reactor.listenTCP(0, receiver, interface="127.0.0.1")
        # Small kernel buffers, so that a few hundred messages fill them.
        port.socket.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        self.addCleanup(port.stopListening)

        def small(tap: Tap) -> None:
            output: Any = tap.sink
            output.queue_size = 50
            output.write_buffer = 4096
            output.timeout = 0.5  # the FINISH that will never come, at shutdown

        server = yield self.serve(
            f". {{\n dnstap tcp://127.0.0.1:{port.getHost().port} full\n whoami\n}}\n", small)
        output: Any = _tap_of(server.instance).sink
        yield wait_on_reactor(lambda: output.sender is not None, what="the handshake")
        before = _dropped_metric()

        def timed_queries(count: int) -> list[float]:
            latencies = []
            for i in range(count):
                start = time.monotonic()
                query, reply = ask(server.port, f"q{i}.example.")
                latencies.append(time.monotonic() - start)
                assert reply[:2] == query[:2]
            return latencies

        first = yield deferToThread(timed_queries, 100)
        while not output.dropped_total:
            yield deferToThread(timed_queries, 100)
        self.assertTrue(output.sender.paused, "the transport stopped taking frames")
        self.assertLessEqual(len(output.queue), 50)
        dropped = output.dropped_total
        dropping = yield deferToThread(timed_queries, 200)
        self.assertEqual(output.dropped_total - dropped, 400, "both messages of every query dropped")
        self.assertEqual(_dropped_metric() - before, output.dropped_total)
        # No query waits on the collector: not one slow answer, and no slower on the whole.
        self.assertLess(max(dropping), 0.5)
        self.assertLess(sum(dropping) / len(dropping), 2 * sum(first) / len(first) + 0.002)

    @inlineCallbacks
    def test_tls_collector(self) -> Any:
        """``tls://`` with ``skipverify`` reaches a collector with a self-signed certificate;
        without it the certificate is refused and nothing is sent."""
        cert, key, _ca = _make_certs(self.directory)

        options = _server_options(cert, key)
        receivers = Receivers()
        port = reactor.listenSSL(0, receivers, options, interface="127.0.0.1")
        self.addCleanup(port.stopListening)
        address = f"127.0.0.1:{port.getHost().port}"
        log = LogCapture(self, "dnstap")

        server = yield self.serve(f". {{\n dnstap tls://{address} full {{\n  skipverify\n }}\n whoami\n}}\n")
        yield wait_on_reactor(lambda: receivers.started(), what="the TLS handshake and START")
        reply = yield server.query("tls.example.")
        self.assertEqual(reply.rcode(), dns.rcode.NOERROR)
        yield wait_on_reactor(lambda: len(receivers.payloads()) == 2, what="two messages over TLS")
        self.assertEqual([decode(p)["message"]["type"] for p in receivers.payloads()], [CQ, CR])
        yield server.stop()
        yield wait_on_reactor(lambda: receivers.protocols[0].finished, what="STOP and FINISH")

        verified = yield self.serve(f". {{\n dnstap tls://{address}\n whoami\n}}\n")
        yield wait_on_reactor(lambda: log.lines(), what="the verification failure")
        [(level, text)] = log.lines()
        self.assertEqual(level, "ERROR")
        self.assertTrue(text.startswith(f"{PREFIX}No connection to dnstap endpoint: tls: "), text)
        reply = yield verified.query("verified.example.")
        self.assertEqual(reply.rcode(), dns.rcode.NOERROR)
        self.assertEqual(len(receivers.payloads()), 2, "nothing more arrived")

    @inlineCallbacks
    def test_listen_unix_and_the_real_decoder(self) -> Any:
        """``dnstap listen``: a sink connects, gets every message from then on, and STOP at the
        end; what it got reads back with ``dnstap -r``."""
        _require_cli()
        sock = self.directory / "listen.sock"
        server = yield self.serve(
            f". {{\n dnstap listen unix://{sock} full {{\n  identity lst\n }}\n whoami\n}}\n")
        listener: Any = _tap_of(server.instance).sink
        reply = yield server.query("nobody.example.")  # no sink yet: nothing to send
        self.assertEqual(reply.rcode(), dns.rcode.NOERROR)
        sinks = Receivers()
        yield _connect(reactor.connectUNIX, str(sock), sinks)
        yield wait_on_reactor(lambda: listener.clients, what="the sink's handshake")
        port = free_port()
        yield deferToThread(ask, server.port, "sink.example.", source_port=port, tcp=True)
        yield wait_on_reactor(lambda: len(sinks.payloads()) == 2, what="two messages")
        yield server.stop()
        self.assertTrue(sinks.protocols[0].finished, "STOP, then FINISH")
        self.assertFalse(sock.exists(), "the socket file is removed")
        path = self.directory / "sink.fstrm"
        path.write_bytes(stream_file(sinks.payloads()))
        cq, cr = read_with_cli(path)
        self.assertEqual((cq["identity"], cq["message"]["type"], cq["message"]["query_port"]),
                         ("lst", "CLIENT_QUERY", port))
        self.assertEqual((cr["message"]["type"], cr["message"]["socket_protocol"]),
                         ("CLIENT_RESPONSE", "TCP"))
        self.assertIn("sink.example.", cr["message"]["response_message"])

    @inlineCallbacks
    def test_listen_tls_with_client_certificates(self) -> Any:
        """``listen tls://`` with a CA: a sink must show a certificate the CA signed."""
        cert, key, ca = _make_certs(self.directory)
        from twisted.internet import ssl

        server = yield self.serve(
            f". {{\n dnstap listen tls://127.0.0.1:{free_port()} {{\n  tls {cert} {key} {ca}\n }}\n"
            " whoami\n}\n")
        listener: Any = _tap_of(server.instance).sink
        address = listener.port.getHost()
        authority = ssl.Certificate.loadPEM(Path(ca).read_text())
        client = ssl.PrivateCertificate.loadPEM(Path(cert).read_text() + Path(key).read_text())

        anonymous = Receivers()
        yield _connect(reactor.connectSSL, address.host, address.port, anonymous,
                       ssl.optionsForClientTLS("127.0.0.1", authority))
        yield wait_on_reactor(lambda: anonymous.protocols and anonymous.protocols[0].closed,
                              what="the sink without a certificate to be refused")
        self.assertEqual(listener.clients, [])

        known = Receivers()
        yield _connect(reactor.connectSSL, address.host, address.port, known,
                       ssl.optionsForClientTLS("127.0.0.1", authority, client))
        yield wait_on_reactor(lambda: listener.clients, what="the sink with a certificate")
        yield server.query("mtls.example.")
        yield wait_on_reactor(lambda: len(known.payloads()) == 2, what="two messages")

    @inlineCallbacks
    def test_listen_errors_are_logged(self) -> Any:
        log = LogCapture(self, "dnstap")
        busy = reactor.listenTCP(0, Factory.forProtocol(Protocol), interface="127.0.0.1")
        self.addCleanup(busy.stopListening)
        taken = f"127.0.0.1:{busy.getHost().port}"
        server = yield self.serve(
            f". {{\n dnstap listen tcp://{taken}\n dnstap listen tls://127.0.0.1:{free_port()}\n"
            " whoami\n}\n")
        self.assertEqual(log.lines(), [
            ("ERROR", f"{PREFIX}Failed to start dnstap listener: listen tcp {taken}: bind: "
                      "address already in use"),
            ("WARNING", f"{PREFIX}TLS listener requires cert and key files"),
        ])
        reply = yield server.query("still.example.")
        self.assertEqual(reply.rcode(), dns.rcode.NOERROR)


# -- test-side sinks ---------------------------------------------------------------------------------


class Receiver(Protocol):
    """The receiving side of a bidirectional Frame Streams connection (a collector, or a sink
    connected to a listener). With ``stall`` it stops reading once it has accepted."""

    def __init__(self, stall: bool = False) -> None:
        self.stall = stall
        self.decoder = FrameDecoder()
        self.payloads: list[bytes] = []
        self.started = self.finished = self.closed = False

    def dataReceived(self, data: bytes) -> None:
        for kind, value in self.decoder.feed(data):
            if kind == READY:
                assert CONTENT_TYPE in value
                self.transport.write(control_frame(ACCEPT, CONTENT_TYPE))  # type: ignore[union-attr]
                if self.stall:
                    self.transport.pauseProducing()  # type: ignore[union-attr]
            elif kind == START:
                self.started = True
            elif kind == STOP:
                self.transport.write(control_frame(FINISH))  # type: ignore[union-attr]
                self.finished = True
            elif kind == 0:
                self.payloads.append(value)

    def connectionLost(self, reason: Any = None) -> None:
        self.closed = True


class Receivers(ClientFactory):
    def __init__(self, stall: bool = False) -> None:
        self.stall = stall
        self.protocols: list[Receiver] = []

    def buildProtocol(self, addr: Any) -> Receiver:
        protocol = Receiver(self.stall)
        self.protocols.append(protocol)
        return protocol

    def started(self) -> bool:
        return any(p.started for p in self.protocols)

    def payloads(self) -> list[bytes]:
        return [payload for p in self.protocols for payload in p.payloads]


def _connect(connect: Callable[..., Any], *args: Any) -> Deferred[None]:
    connect(*args)
    return deferLater(reactor, 0, lambda: None)


def _make_certs(directory: Path) -> tuple[str, str, str]:
    """A CA, and a certificate for 127.0.0.1 it signed (for the server and the client alike)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    now = datetime.datetime.now(datetime.UTC)

    def build(subject: x509.Name, issuer: x509.Name, public: Any, signer: Any, *extensions: Any) -> Any:
        builder = (
            x509.CertificateBuilder().subject_name(subject).issuer_name(issuer).public_key(public)
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=2))
        )
        for extension, critical in extensions:
            builder = builder.add_extension(extension, critical=critical)
        return builder.sign(signer, hashes.SHA256())

    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "dnstap test CA")])
    ca = build(ca_name, ca_name, ca_key.public_key(), ca_key,
               (x509.BasicConstraints(ca=True, path_length=None), True))
    key = ec.generate_private_key(ec.SECP256R1())
    import ipaddress

    cert = build(
        x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")]), ca_name, key.public_key(), ca_key,
        (x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False),
        (x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]), False),
    )
    pem = serialization.Encoding.PEM
    paths = directory / "ca.pem", directory / "cert.pem", directory / "key.pem"
    paths[0].write_bytes(ca.public_bytes(pem))
    paths[1].write_bytes(cert.public_bytes(pem))
    paths[2].write_bytes(
        key.private_bytes(pem, serialization.PrivateFormat.TraditionalOpenSSL, serialization.NoEncryption()))
    return str(paths[1]), str(paths[2]), str(paths[0])



def _server_options(cert: str, key: str) -> Any:
    from cryptography import x509
    from cryptography.hazmat.primitives.serialization import load_pem_private_key
    from twisted.internet import ssl

    return ssl.CertificateOptions(
        privateKey=load_pem_private_key(Path(key).read_bytes(), None),
        certificate=x509.load_pem_x509_certificate(Path(cert).read_bytes()),
    )
