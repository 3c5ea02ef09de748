"""DoH over HTTP/2: the streams of one connection, on the h2 library, each answered when it ends.

twisted.web's own HTTP/2 sends one frame per reactor turn (the HEADERS now, the DATA and the
END_STREAM each a ``callLater(0)`` later), so a reply took three turns and three TLS records, and
a client with a hundred queries in flight got a hundred HEADERS before the first body: dnsperf
lost those replies, and served about 600 queries a second. Here a reply is HEADERS and
DATA(END_STREAM) together, and whatever the queries of one read produced goes out in one write.

What a connection may hold (``limits.StreamLimits`` of the block, as Go's HTTP/2 server has it):
- 250 streams open at once (SETTINGS_MAX_CONCURRENT_STREAMS, Go's default); a client that opens
  more breaks the protocol and the connection is closed;
- a request's body must arrive whole within ``timeouts read`` of its HEADERS, or it gets 400;
- replies the client will not take, because its socket is full or its flow-control window is
  shut, abort the connection after ``timeouts write``; while its socket is full the connection
  is not read, so a client that does not read cannot make us queue more;
- a connection with no stream open and nothing owed is closed (GOAWAY) after ``timeouts idle``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from h2.config import H2Configuration
from h2.connection import H2Connection
from h2.errors import ErrorCodes
from h2.events import (
    ConnectionTerminated,
    DataReceived,
    RequestReceived,
    StreamEnded,
    StreamReset,
    WindowUpdated,
)
from h2.exceptions import H2Error, ProtocolError
from h2.settings import SettingCodes, Settings
from twisted.internet.protocol import Protocol

from ..request import MalformedQuery, Request
from ..response import Response, finish
from .doh import INVALID, MAX_QUERY, Refused, answer_headers, dns_query, error_headers, peer_of

if TYPE_CHECKING:
    from .doh import DoHSite

MAX_STREAMS = 250
"""Go's HTTP/2 server default for SETTINGS_MAX_CONCURRENT_STREAMS."""
MAX_HEADER_LIST = 1 << 20
"""Go's ``http.DefaultMaxHeaderBytes``: room for a GET of the largest query (87 KB of base64)."""

_CONFIG = H2Configuration(
    client_side=False,
    header_encoding=None,
    # Our reply headers are built here, lower case and valid: checking them again costs per reply.
    validate_outbound_headers=False,
    normalize_outbound_headers=False,
    # Of a request only :method, :path and the body are read, as bytes, and anything odd in them
    # is a 400 or a 404: h2's header checks were a third of the server's time under load.
    validate_inbound_headers=False,
    normalize_inbound_headers=False,
)
_STATUS = {status: (b":status", str(status).encode()) for status in (200, 400, 404, 500)}


class _Stream:
    """A request whose body is still arriving."""

    __slots__ = ("body", "deadline", "method", "target")

    def __init__(self, method: bytes, target: bytes) -> None:
        self.method = method
        self.target = target
        self.body = bytearray()
        self.deadline: Any = None


class DoH2Connection(Protocol):
    """One HTTP/2 connection of a DoH listener."""

    def __init__(self, site: DoHSite, served: Callable[[], None] | None) -> None:
        self.site = site
        self.limits = site.limits
        self.reactor: Any = site.reactor
        self._served = served
        self.conn = H2Connection(config=_CONFIG)
        self.streams: dict[int, _Stream] = {}
        """Streams whose request has begun and not ended."""
        self.in_flight = 0
        """Queries being answered (a Deferred from the router)."""
        self._pending: dict[int, memoryview] = {}
        """Reply bytes flow control holds back, per stream."""
        self._remote: tuple[str, int] = ("", 0)
        self._local: tuple[str, int] = ("", 0)
        self._lost = False
        self._blocked = False  # the transport's buffer is full: the client does not read
        self._in_read = False  # inside dataReceived: the write waits for its end
        self._timer: Any = None
        self._timing: str | None = None  # "idle" or "write"
        self._progressed = False  # a request was answered since the timer was last set

    # -- the connection's life -------------------------------------------------------------------

    def connectionMade(self) -> None:
        transport: Any = self.transport
        self._remote, self._local = peer_of(transport)
        conn = self.conn
        conn.local_settings = Settings(client=False, initial_values={
            SettingCodes.MAX_CONCURRENT_STREAMS: MAX_STREAMS,
            SettingCodes.MAX_HEADER_LIST_SIZE: MAX_HEADER_LIST,
        })
        conn.decoder.max_header_list_size = MAX_HEADER_LIST
        conn.initiate_connection()
        transport.registerProducer(self, True)
        transport.write(conn.data_to_send())
        self._settle()

    def connectionLost(self, reason: Any = None) -> None:
        self._lost = True
        self._timing = None
        if self._timer is not None and self._timer.active():
            self._timer.cancel()
        self._timer = None
        for stream in self.streams.values():
            if stream.deadline is not None and stream.deadline.active():
                stream.deadline.cancel()
        self.streams.clear()
        self._pending.clear()

    def dataReceived(self, data: bytes) -> None:
        self._in_read = True
        try:
            events = self.conn.receive_data(data)
        except ProtocolError:
            self._in_read = False
            self._fail(ErrorCodes.PROTOCOL_ERROR)
            return
        try:
            for event in events:
                if isinstance(event, RequestReceived):
                    self._request(event)
                elif isinstance(event, DataReceived):
                    self._data(event)
                elif isinstance(event, StreamEnded):
                    self._ended(event.stream_id)
                elif isinstance(event, StreamReset):
                    self._forget(event.stream_id)
                elif isinstance(event, WindowUpdated):
                    self._window(event.stream_id)
                elif isinstance(event, ConnectionTerminated):
                    self._close()
                    return
        finally:
            self._in_read = False
        self._flush()
        self._settle()

    def _fail(self, code: ErrorCodes) -> None:
        """Close after a GOAWAY, for a client that broke the protocol."""
        try:
            self.conn.close_connection(code)
        except H2Error:
            pass
        self._close()

    def _close(self) -> None:
        """Send what is pending and close; TLS closes only once no producer is registered."""
        self._flush()
        transport: Any = self.transport
        transport.unregisterProducer()
        transport.loseConnection()

    # -- requests ---------------------------------------------------------------------------------

    def _request(self, event: RequestReceived) -> None:
        method = target = b""
        for name, value in event.headers:
            if name == b":method":
                method = value
            elif name == b":path":
                target = value
        stream = _Stream(method, target)
        self.streams[event.stream_id] = stream
        if event.stream_ended is None:  # a body follows: it has the read timeout to arrive
            stream.deadline = self.reactor.callLater(
                self.limits.read_timeout, self._read_expired, event.stream_id
            )

    def _data(self, event: DataReceived) -> None:
        self.conn.acknowledge_received_data(event.flow_controlled_length, event.stream_id)
        stream = self.streams.get(event.stream_id)
        if stream is None:
            return
        stream.body += event.data
        if len(stream.body) > MAX_QUERY:
            # CoreDNS's MaxBytesReader: 400, and the stream is reset so the client stops sending.
            self._forget(event.stream_id)
            self._respond(event.stream_id, 400, None, INVALID + b"\n")
            self._reset(event.stream_id)

    def _read_expired(self, stream_id: int) -> None:
        stream = self.streams.get(stream_id)
        if stream is None or self._lost:
            return
        stream.deadline = None
        self._forget(stream_id)
        self._respond(stream_id, 400, None, INVALID + b"\n")
        self._reset(stream_id)
        self._flush()
        self._settle()

    def _ended(self, stream_id: int) -> None:
        stream = self.streams.pop(stream_id, None)
        if stream is None:
            return
        if stream.deadline is not None:
            if stream.deadline.active():
                stream.deadline.cancel()
            stream.deadline = None
        self._progressed = True
        if self._served is not None:
            self._served()
            self._served = None
        try:
            wire = dns_query(stream.method, stream.target, bytes(stream.body))
            request = Request(wire, self._remote, "tcp", self._local, self.site.router.address)
        except Refused as refused:
            self._respond(stream_id, refused.status, None, refused.text + b"\n")
            return
        except MalformedQuery:
            self._respond(stream_id, 400, None, INVALID + b"\n")
            return
        result = self.site.router.dispatch(request)
        if type(result) is Response:
            self._answer(finish(request, result), stream_id, request.qtype)
        else:
            self.in_flight += 1
            result.addCallback(self._answered, request, stream_id)  # type: ignore[union-attr]

    def _answered(self, response: Response, request: Request, stream_id: int) -> None:
        self.in_flight -= 1
        if self._lost:
            return
        self._answer(finish(request, response), stream_id, request.qtype)
        if not self._in_read:
            self._flush()
            self._settle()

    def _answer(self, wire: bytes, stream_id: int, qtype: int) -> None:
        if not wire:
            self._respond(stream_id, 500, None, b"No response\n")  # RFC 8484 4.2.1, as CoreDNS
            return
        self._respond(stream_id, 200, answer_headers(wire, qtype), wire)

    def _forget(self, stream_id: int) -> None:
        stream = self.streams.pop(stream_id, None)
        if stream is not None and stream.deadline is not None and stream.deadline.active():
            stream.deadline.cancel()
        self._pending.pop(stream_id, None)

    # -- replies ----------------------------------------------------------------------------------

    def _respond(
        self, stream_id: int, status: int, headers: list[tuple[bytes, bytes]] | None, body: bytes
    ) -> None:
        head = [_STATUS[status], *(headers if headers is not None else error_headers(body))]
        try:
            self.conn.send_headers(stream_id, head)
        except H2Error:
            return  # the client reset the stream meanwhile
        self.site.responses.count(status)
        self._send(stream_id, memoryview(body))
        self._flush()  # a record of its own (see dot._RecordPerWriteTLSFactory)

    def _send(self, stream_id: int, body: memoryview) -> None:
        """As much of ``body`` as flow control allows, the stream ended with its last byte; the
        rest waits for a WINDOW_UPDATE."""
        conn = self.conn
        try:
            while True:
                room = min(conn.local_flow_control_window(stream_id), conn.max_outbound_frame_size)
                if room <= 0:
                    self._pending[stream_id] = body
                    return
                chunk = body[:room]
                body = body[room:]
                conn.send_data(stream_id, chunk.tobytes(), end_stream=not body)
                if not body:
                    return
        except H2Error:
            self._pending.pop(stream_id, None)

    def _window(self, stream_id: int) -> None:
        if not self._pending:
            return
        ids = list(self._pending) if stream_id == 0 else [stream_id]
        for sid in ids:
            body = self._pending.pop(sid, None)
            if body is not None:
                self._send(sid, body)

    def _reset(self, stream_id: int) -> None:
        try:
            self.conn.reset_stream(stream_id, ErrorCodes.NO_ERROR)
        except H2Error:
            pass

    def _flush(self) -> None:
        data = self.conn.data_to_send()
        if data and not self._lost:
            transport: Any = self.transport
            transport.write(data)

    # -- IPushProducer: the transport says when our replies back up --------------------------------

    def pauseProducing(self) -> None:
        self._blocked = True
        transport: Any = self.transport
        transport.pauseProducing()  # read no more requests from a client that does not read
        self._settle()

    def resumeProducing(self) -> None:
        self._blocked = False
        transport: Any = self.transport
        transport.resumeProducing()
        self._settle()

    def stopProducing(self) -> None:
        pass

    # -- timers -----------------------------------------------------------------------------------

    def _settle(self) -> None:
        """The one timer the state calls for: write while replies are held back, idle while
        nothing is open or owed, none while queries are being answered or requests arrive."""
        if self._lost:
            return
        if self._blocked or self._pending:
            timing, seconds = "write", self.limits.write_timeout
        elif not self.streams and not self.in_flight:
            timing, seconds = "idle", self.limits.idle_timeout
        else:
            timing, seconds = None, 0.0
        progressed, self._progressed = self._progressed, False
        if timing == self._timing and not (progressed and timing == "idle"):
            # A running write timer is not extended by more replies held back, nor an idle one
            # by frames that open no stream (PINGs, SETTINGS), as in Go's HTTP/2 server.
            return
        self._timing = timing
        timer = self._timer
        if timing is None:
            if timer is not None and timer.active():
                timer.cancel()
            self._timer = None
        elif timer is not None and timer.active():
            timer.reset(seconds)
        else:
            self._timer = self.reactor.callLater(seconds, self._expired)

    def _expired(self) -> None:
        self._timer = None
        timing, self._timing = self._timing, None
        transport: Any = self.transport
        if timing == "write":
            transport.abortConnection()
        elif timing == "idle":
            try:
                self.conn.close_connection(ErrorCodes.NO_ERROR)
            except H2Error:
                pass
            self._close()


__all__ = ["MAX_STREAMS", "DoH2Connection"]
