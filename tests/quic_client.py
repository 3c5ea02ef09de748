"""A blocking QUIC client on aioquic for the DoQ tests: it does what dnspython's client will not
(hold a stream open without its end, send half a message, read the code a connection was closed
with) and shows the events the server caused. Run it in a thread (``deferToThread``) when the
server is in the test's reactor."""

from __future__ import annotations

import socket
import time
from collections.abc import Callable
from typing import Any

from aioquic.quic import events
from aioquic.quic.configuration import QuicConfiguration
from aioquic.quic.connection import QuicConnection

from twisted_coredns.testing.certs import certificates


class RawQuicClient:
    """One QUIC connection to ``127.0.0.1:port``, driven by ``run_until``."""

    def __init__(
        self, port: int, alpn: tuple[str, ...] = ("doq",), cert: str | None = None, key: str | None = None,
        source_port: int = 0,
    ) -> None:
        c = certificates()
        conf = QuicConfiguration(is_client=True, alpn_protocols=list(alpn), server_name="localhost")
        conf.load_verify_locations(c.ca_file)
        if cert is not None:
            conf.load_cert_chain(cert, key)
        self.addr = ("127.0.0.1", port)
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", source_port))
        self.sock.connect(self.addr)
        self.conn = QuicConnection(configuration=conf)
        self.conn.connect(self.addr, now=time.monotonic())
        self.seen: list[events.QuicEvent] = []

    def close(self) -> None:
        """Say goodbye (CONNECTION_CLOSE), so the server forgets the connection now."""
        try:
            self.conn.close()
            self._flush()
        except OSError:
            pass
        self.sock.close()

    def __enter__(self) -> RawQuicClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _flush(self) -> None:
        for data, _addr in self.conn.datagrams_to_send(now=time.monotonic()):
            self.sock.send(data)

    def run_until(self, done: Callable[[events.QuicEvent], bool], timeout: float) -> events.QuicEvent | None:
        """Exchange datagrams until an event ``done`` accepts arrives (returned) or ``timeout``
        passes (None). Every event is also kept in ``seen``."""
        deadline = time.monotonic() + timeout
        while True:
            event = self.conn.next_event()
            while event is not None:
                self.seen.append(event)
                if done(event):
                    self._flush()
                    return event
                event = self.conn.next_event()
            self._flush()
            now = time.monotonic()
            if now >= deadline:
                return None
            timer = self.conn.get_timer()
            wait = deadline - now if timer is None else min(deadline, timer) - now
            self.sock.settimeout(max(wait, 0.001))
            try:
                data = self.sock.recv(65536)
            except TimeoutError:
                if timer is not None and time.monotonic() >= timer:
                    self.conn.handle_timer(now=time.monotonic())
                continue
            except ConnectionRefusedError:
                continue
            self.conn.receive_datagram(data, self.addr, now=time.monotonic())

    def handshake(self, timeout: float = 3.0) -> bool:
        return self.run_until(lambda e: isinstance(e, events.HandshakeCompleted), timeout) is not None

    def terminated(self, timeout: float) -> events.ConnectionTerminated | None:
        found: Any = self.run_until(lambda e: isinstance(e, events.ConnectionTerminated), timeout)
        return found

    def send(self, data: bytes, end: bool = True) -> int:
        """``data`` on a new bidirectional stream; the stream's ID."""
        stream_id = self.conn.get_next_available_stream_id()
        self.conn.send_stream_data(stream_id, data, end_stream=end)
        self._flush()
        return stream_id

    def reply(self, stream_id: int, timeout: float = 3.0) -> bytes | None:
        """The bytes the server sent on ``stream_id`` up to its end (None: no end in time)."""
        got = bytearray()

        def ended(event: events.QuicEvent) -> bool:
            if isinstance(event, events.StreamDataReceived) and event.stream_id == stream_id:
                got.extend(event.data)
                return event.end_stream
            return isinstance(event, events.ConnectionTerminated)

        last = self.run_until(ended, timeout)
        if isinstance(last, events.StreamDataReceived):
            return bytes(got)
        return None


def doq_frame(wire: bytes) -> bytes:
    """A DoQ message: its 2-byte length, then the message."""
    return len(wire).to_bytes(2, "big") + wire


__all__ = ["RawQuicClient", "doq_frame"]
