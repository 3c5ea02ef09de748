"""Frame Streams (fstrm), the transport dnstap payloads travel in, and its sending side.

A stream is a sequence of frames, each a four-byte big-endian length and that many bytes. A length
of zero escapes a control frame: its own length, its type, then fields (only "content type" is
defined). On a socket the sender and the receiver shake hands first (the "bidirectional" mode):

    sender: READY (content types it can send)   receiver: ACCEPT (the one it takes)
    sender: START (that content type), then data frames, one payload each
    sender: STOP                                 receiver: FINISH, and the sender closes

A file holds the same stream without READY, ACCEPT and FINISH. ``FrameStreamSender`` is the
sender of one connection, to a collector (``output.Output``) or from a sink that connected to us
(``listener.Listener``); it reports to its owner, the ``SenderOwner``.
"""

from __future__ import annotations

import struct
from typing import Any
from typing import Protocol as TypingProtocol

from OpenSSL.SSL import Error as SSLError
from twisted.internet.defer import Deferred, succeed
from twisted.internet.error import ConnectionDone, ConnectionLost
from twisted.internet.interfaces import IPushProducer
from twisted.internet.protocol import Protocol
from twisted.python.failure import Failure
from zope.interface import implementer

__all__ = [
    "ACCEPT",
    "CONTENT_TYPE",
    "FINISH",
    "READY",
    "START",
    "STOP",
    "FrameDecoder",
    "FrameError",
    "FrameStreamSender",
    "SenderOwner",
    "control_frame",
]

CONTENT_TYPE = b"protobuf:dnstap.Dnstap"
"""The content type dnstap payloads are sent as."""

DATA = 0
ACCEPT = 1
START = 2
STOP = 3
READY = 4
FINISH = 5
_CONTROL_NAMES = {ACCEPT: "ACCEPT", START: "START", STOP: "STOP", READY: "READY", FINISH: "FINISH"}
_FIELD_CONTENT_TYPE = 1
MAX_CONTROL_LENGTH = 512
"""The largest control frame the fstrm specification allows."""

_U32 = struct.Struct(">I")
_TWO_U32 = struct.Struct(">II")


class FrameError(Exception):
    """A frame that breaks the protocol: too long, of an unknown kind, or out of turn."""


def control_frame(kind: int, content_type: bytes | None = None) -> bytes:
    """The bytes of a control frame of ``kind``, with a content-type field when one is given."""
    body = _U32.pack(kind)
    if content_type is not None:
        body += _TWO_U32.pack(_FIELD_CONTENT_TYPE, len(content_type)) + content_type
    return _TWO_U32.pack(0, len(body)) + body


class FrameDecoder:
    """Frames from bytes that arrive in pieces: ``feed(data)`` gives the frames completed, each a
    ``(kind, value)``: ``(DATA, payload)`` or ``(CONTROL_TYPE, [content types])``."""

    def __init__(self, max_data_length: int = 1 << 20) -> None:
        self._buffer = b""
        self.max_data_length = max_data_length

    def feed(self, data: bytes) -> list[tuple[int, Any]]:
        buf = self._buffer + data
        frames: list[tuple[int, Any]] = []
        off, end = 0, len(buf)
        while end - off >= 4:
            (length,) = _U32.unpack_from(buf, off)
            if length:
                if length > self.max_data_length:
                    raise FrameError(f"data frame of {length} bytes is too long")
                if end - off - 4 < length:
                    break
                frames.append((DATA, buf[off + 4 : off + 4 + length]))
                off += 4 + length
                continue
            if end - off < 8:
                break
            (length,) = _U32.unpack_from(buf, off + 4)
            if not 4 <= length <= MAX_CONTROL_LENGTH:
                raise FrameError(f"control frame of {length} bytes")
            if end - off - 8 < length:
                break
            frames.append(_control(buf[off + 8 : off + 8 + length]))
            off += 8 + length
        self._buffer = buf[off:]
        return frames


def _control(body: bytes) -> tuple[int, list[bytes]]:
    (kind,) = _U32.unpack_from(body)
    if kind not in _CONTROL_NAMES:
        raise FrameError(f"unknown control frame type {kind}")
    content_types = []
    off = 4
    while off < len(body):
        if len(body) - off < 8:
            raise FrameError("control frame field truncated")
        field, length = _TWO_U32.unpack_from(body, off)
        off += 8
        if field != _FIELD_CONTENT_TYPE or off + length > len(body):
            raise FrameError("bad control frame field")
        content_types.append(body[off : off + length])
        off += length
    return kind, content_types


def lost_reason(reason: Failure | None) -> str:
    """A lost connection's reason, in the words Go's errors would use where we know them."""
    if reason is None or reason.check(ConnectionDone, ConnectionLost):
        return "EOF"
    value: Any = reason.value
    if reason.check(SSLError):
        # pyOpenSSL's error is a list of (library, function, reason) tuples.
        details = [str(part[-1]) for part in (value.args[0] if value.args else []) if part]
        return "tls: " + ("; ".join(details) or "handshake failed")
    return str(value) or type(value).__name__


class SenderOwner(TypingProtocol):
    """What a ``FrameStreamSender`` reports to."""

    def sender_ready(self, sender: FrameStreamSender) -> None:
        """The handshake is done: data frames may be written."""

    def sender_failed(self, sender: FrameStreamSender, reason: str) -> None:
        """The handshake failed, timed out, or the connection went before it was done;
        ``sender_lost`` follows."""

    def sender_resumed(self, sender: FrameStreamSender) -> None:
        """The transport's buffer drained after a pause: write again."""

    def sender_lost(self, sender: FrameStreamSender) -> None:
        """The connection is gone, whatever the state."""


@implementer(IPushProducer)
class FrameStreamSender(Protocol):
    """The sending side of a bidirectional Frame Streams connection.

    It is the transport's producer once the handshake is done, so ``paused`` says when the
    transport holds more than its buffer's worth: the owner then stops writing (and drops).
    """

    HANDSHAKING, RUNNING, STOPPING, CLOSED = "handshaking", "running", "stopping", "closed"
    # A TCP, UNIX or TLS connection: typed loosely, as Twisted's interfaces confuse mypy here.
    transport: Any = None

    def __init__(self, owner: SenderOwner, clock: Any, timeout: float) -> None:
        self.owner = owner
        self.clock = clock
        self.timeout = timeout
        self.state = self.HANDSHAKING
        self.paused = False
        self._decoder = FrameDecoder(max_data_length=0)
        self._timer: Any = None
        self._closed: list[Deferred[None]] = []

    # -- the handshake ------------------------------------------------------------------------------

    def connectionMade(self) -> None:
        self.transport.write(control_frame(READY, CONTENT_TYPE))
        self._timer = self.clock.callLater(self.timeout, self._timed_out, "i/o timeout")

    def dataReceived(self, data: bytes) -> None:
        try:
            frames = self._decoder.feed(data)
        except FrameError as exc:
            self._fail(str(exc))
            return
        for kind, value in frames:
            if self.state == self.HANDSHAKING and kind == ACCEPT:
                if value and CONTENT_TYPE not in value:  # no content type at all accepts any
                    self._fail("content type mismatch")
                    return
                self._cancel_timer()
                self.transport.write(control_frame(START, CONTENT_TYPE))
                self.state = self.RUNNING
                self.transport.registerProducer(self, True)
                self.owner.sender_ready(self)
            elif self.state == self.STOPPING and kind == FINISH:
                self._close()
                return
            elif self.state != self.CLOSED:
                self._fail(f"unexpected {_CONTROL_NAMES.get(kind, 'data')} frame")
                return

    def _fail(self, reason: str) -> None:
        handshaking = self.state == self.HANDSHAKING
        self._close(abort=True)
        if handshaking:
            self.owner.sender_failed(self, reason)

    def _timed_out(self, reason: str) -> None:
        self._timer = None
        if self.state == self.HANDSHAKING:
            self._fail(reason)
        else:
            self._close(abort=True)  # no FINISH in time: close anyway

    def _cancel_timer(self) -> None:
        if self._timer is not None and self._timer.active():
            self._timer.cancel()
        self._timer = None

    # -- writing --------------------------------------------------------------------------------

    def write(self, data: bytes) -> None:
        self.transport.write(data)

    def pauseProducing(self) -> None:
        self.paused = True

    def resumeProducing(self) -> None:
        self.paused = False
        if self.state == self.RUNNING:
            self.owner.sender_resumed(self)

    def stopProducing(self) -> None:
        self.paused = True

    # -- the end --------------------------------------------------------------------------------

    def stop(self) -> Deferred[None]:
        """End the stream: STOP, wait for FINISH (``timeout`` at most), close. Fires when the
        connection is closed. A connection still shaking hands is just closed."""
        if self.state == self.CLOSED or self.transport is None:
            self.state = self.CLOSED
            return succeed(None)
        done: Deferred[None] = Deferred()
        self._closed.append(done)
        if self.state == self.RUNNING:
            self.state = self.STOPPING
            self.transport.write(control_frame(STOP))
            self._timer = self.clock.callLater(self.timeout, self._timed_out, "i/o timeout")
        elif self.state == self.HANDSHAKING:
            self._close(abort=True)
        return done

    def _close(self, abort: bool = False) -> None:
        self._cancel_timer()
        if self.state == self.CLOSED:
            return
        registered = self.state in (self.RUNNING, self.STOPPING)
        self.state = self.CLOSED
        transport = self.transport
        if transport is None:
            return
        if registered:
            # A transport (TLS's) closes only once its producer is gone.
            transport.unregisterProducer()
        if abort:
            transport.abortConnection()
        else:
            transport.loseConnection()
            # What is still unsent gets `timeout` seconds, as Go's write deadline gives it.
            self._timer = self.clock.callLater(self.timeout, transport.abortConnection)

    def connectionLost(self, reason: Failure | None = None) -> None:
        self._cancel_timer()
        if self.state == self.HANDSHAKING:
            self.state = self.CLOSED
            self.owner.sender_failed(self, lost_reason(reason))
        self.state = self.CLOSED
        self.owner.sender_lost(self)
        waiting, self._closed = self._closed, []
        for d in waiting:
            d.callback(None)
