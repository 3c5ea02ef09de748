"""The connection to a dnstap collector: a bounded queue, drained by the reactor, never waited on.

This is CoreDNS's ``dio`` (plugin/dnstap/io.go), on the reactor instead of a goroutine:

- ``admit()`` says whether a message would be queued, and counts it dropped when not: when no
  connection is up or being made, or when the queue holds ``queue_size`` frames (CoreDNS: a
  channel of 10000 times the ``queue`` argument). Only then does the handler encode the message
  and ``put()`` it, so a server with no collector spends no time encoding.
- The queue is drained once per reactor turn into the transport, and only while the transport
  takes it: the sender is the transport's producer, paused when more than its buffer's worth is
  unsent. A collector that stops reading fills our queue, and messages are dropped from then on;
  queries never wait.
- Every 10 seconds the drops since the last look are logged (``Dropped dnstap messages: N``) and,
  when there is no connection, one is made. A connection that goes away is made again at once,
  as CoreDNS redials after a failed write; if that fails too, the 10-second check tries again.
- At shutdown the queue is written out, then STOP, and the connection closes on FINISH (or after
  ``timeout``).
"""

from __future__ import annotations

import errno
import os
import socket
from collections import deque
from typing import Any

from twisted.internet import error
from twisted.internet.defer import Deferred, succeed
from twisted.internet.endpoints import HostnameEndpoint, UNIXClientEndpoint, wrapClientTLS
from twisted.internet.protocol import Factory
from twisted.internet.task import LoopingCall
from twisted.python.failure import Failure

from ...clog import PluginLogger
from ...metrics import counter
from .framestream import FrameStreamSender

__all__ = [
    "DROPPED",
    "ERROR_CHECK_INTERVAL",
    "QUEUE_SIZE",
    "TCP_TIMEOUT",
    "TCP_WRITE_BUFFER",
    "Output",
    "dial_error",
    "split_host_port",
]

log = PluginLogger("dnstap")

QUEUE_SIZE = 10000
"""Frames queued per unit of the ``queue`` argument (CoreDNS's ``queueSize``)."""
TCP_WRITE_BUFFER = 1024 * 1024
"""Socket send buffer per unit of the ``writebuffer`` argument, in bytes (CoreDNS's
``tcpWriteBufSize``)."""
TCP_TIMEOUT = 4.0
"""Seconds to connect, to shake hands, and to wait for FINISH (CoreDNS's ``tcpTimeout``)."""
ERROR_CHECK_INTERVAL = 10.0
"""Seconds between drop reports and reconnection attempts (CoreDNS's ``errorCheckInterval``)."""
UNIX_PATH_MAX = 108
"""The longest unix socket path (``sun_path``)."""
DRAIN_CHUNK = 1 << 16
"""The bytes written to the transport in one write, at most, before looking at its pause."""

DROPPED = counter(
    "dnstap",
    "dropped_total",
    "Counter of dnstap messages dropped: no connection to the collector, or its queue was full.",
)


def split_host_port(address: str) -> tuple[str, int]:
    """Go's ``net.SplitHostPort`` for a dial address (``host:port``, ``[v6]:port``), with the
    port as a number; ValueError with Go's wording otherwise."""
    if address.startswith("["):
        end = address.find("]")
        if end < 0:
            raise ValueError(f"address {address}: missing ']' in address")
        host, rest = address[1:end], address[end + 1 :]
        if not rest.startswith(":"):
            raise ValueError(f"address {address}: missing port in address")
        port = rest[1:]
    else:
        host, colon, port = address.rpartition(":")
        if not colon:
            raise ValueError(f"address {address}: missing port in address")
        if ":" in host:
            raise ValueError(f"address {address}: too many colons in address")
    if not port.isdigit() or int(port) > 65535:
        raise ValueError(f"address {address}: invalid port")
    return host, int(port)


def dial_error(network: str, address: str, failure: Failure) -> str:
    """What Go's ``net.Dial`` would say for this failure: ``dial unix /tmp/dnstap.sock: connect:
    no such file or directory``, ``dial tcp 127.0.0.1:6000: connect: connection refused``."""
    value = failure.value
    if isinstance(value, error.TimeoutError):
        return f"dial {network} {address}: i/o timeout"
    if isinstance(value, error.DNSLookupError | error.UnknownHostError):
        return f"dial {network}: lookup {address.rpartition(':')[0].strip('[]')}: no such host"
    if isinstance(value, error.ConnectError):
        number = value.osError
        if isinstance(number, int) or (isinstance(number, str) and number.isdigit()):
            return f"dial {network} {address}: connect: {os.strerror(int(number)).lower()}"
        if isinstance(value, error.ConnectionRefusedError):
            return f"dial {network} {address}: connect: {os.strerror(errno.ECONNREFUSED).lower()}"
    return f"dial {network} {address}: {value}"


class _SenderFactory(Factory):
    noisy = False

    def __init__(self, output: Output) -> None:
        self.output = output

    def buildProtocol(self, addr: Any) -> FrameStreamSender:
        return FrameStreamSender(self.output, self.output.clock, self.output.timeout)


class Output:
    """One outgoing dnstap connection: to ``address`` over ``network`` (``unix``, ``tcp`` or
    ``tls``), its queue, its reconnections and its drop count.

    ``reactor`` makes the connections; ``clock`` (the reactor unless given) runs the timers, so a
    test can turn time with a ``Clock``.
    """

    timeout = TCP_TIMEOUT
    error_check_interval = ERROR_CHECK_INTERVAL

    def __init__(
        self,
        network: str,
        address: str,
        reactor: Any,
        *,
        clock: Any = None,
        queue_size: int = QUEUE_SIZE,
        write_buffer: int = TCP_WRITE_BUFFER,
        skip_verify: bool = False,
    ) -> None:
        self.network = network
        self.address = address
        self.reactor = reactor
        self.clock = reactor if clock is None else clock
        self.queue_size = queue_size
        self.write_buffer = write_buffer
        self.skip_verify = skip_verify
        self.queue: deque[bytes] = deque()
        self.dropped = 0
        """Messages dropped since the last report (CoreDNS logs and resets it every 10 s)."""
        self.dropped_total = 0
        self.sender: FrameStreamSender | None = None
        self._attempt: FrameStreamSender | None = None
        self._connecting = False
        self._accepting = False
        self._drain_call: Any = None
        self._check: LoopingCall | None = None
        self._stopped = False
        self._first = True
        self._dialing: Deferred[FrameStreamSender] | None = None

    # -- the hot path -----------------------------------------------------------------------------

    def admit(self) -> bool:
        """True when a message put now will be queued; otherwise it counts as dropped."""
        if self._accepting and len(self.queue) < self.queue_size:
            return True
        self.dropped += 1
        self.dropped_total += 1
        DROPPED.inc()
        return False

    def put(self, frame: bytes) -> None:
        """Queue one data frame (after ``admit()`` said yes); it is written on the next turn."""
        self.queue.append(frame)
        if self._drain_call is None and self.sender is not None and not self.sender.paused:
            self._drain_call = self.clock.callLater(0, self._drain)

    def _drain(self) -> None:
        self._drain_call = None
        sender, queue = self.sender, self.queue
        if sender is None:
            return
        while queue and not sender.paused:
            chunk: list[bytes] = []
            size = 0
            while queue and size < DRAIN_CHUNK:
                frame = queue.popleft()
                chunk.append(frame)
                size += len(frame)
            sender.write(b"".join(chunk))

    # -- connecting -------------------------------------------------------------------------------

    def start(self) -> None:
        """Connect, and check every ``error_check_interval`` seconds (CoreDNS's OnStartup)."""
        self._stopped = False
        self._check = LoopingCall(self._error_check)
        self._check.clock = self.clock
        self._check.start(self.error_check_interval, now=False)
        self.connect()

    def _endpoint(self) -> Any:
        if self.network == "unix":
            if len(os.fsencode(self.address)) > UNIX_PATH_MAX:
                # Twisted would only time out on it; the kernel's (and Go's) answer is EINVAL.
                raise ValueError(f"dial unix {self.address}: connect: {os.strerror(errno.EINVAL).lower()}")
            return UNIXClientEndpoint(self.reactor, self.address, timeout=self.timeout)
        host, port = split_host_port(self.address)
        endpoint = HostnameEndpoint(self.reactor, host, port, timeout=self.timeout)
        if self.network != "tls":
            return endpoint
        from twisted.internet import ssl

        if self.skip_verify:
            creator: Any = ssl.CertificateOptions()  # no verification at all: `skipverify`
        else:
            creator = ssl.optionsForClientTLS(host)
        return wrapClientTLS(creator, endpoint)

    def connect(self) -> None:
        """Dial and shake hands, unless a connection is up or on its way. Messages are queued
        meanwhile; if it fails, they are dropped."""
        if self._stopped or self._connecting or self.sender is not None:
            return
        self._connecting = True
        self._accepting = True
        try:
            endpoint = self._endpoint()
        except ValueError as exc:
            text = str(exc)
            self._failed(text if text.startswith("dial ") else f"dial {self._dial_network}: {text}")
            return
        self._dialing = endpoint.connect(_SenderFactory(self))
        self._dialing.addCallbacks(self._connected, self._dial_failed)

    @property
    def _dial_network(self) -> str:
        return "tcp" if self.network == "tls" else self.network

    def _connected(self, sender: FrameStreamSender) -> None:
        self._dialing = None
        self._attempt = sender
        if self._stopped:
            sender.stop()
            return
        self._set_write_buffer(sender)

    def _set_write_buffer(self, sender: FrameStreamSender) -> None:
        # CoreDNS's SetWriteBuffer on TCP connections (the `writebuffer` argument); under TLS the
        # socket is the wrapped transport's.
        transport: Any = sender.transport
        inner = getattr(transport, "transport", None)
        if self.network == "tls" and inner is not None:
            transport = inner
        handle = getattr(transport, "getHandle", lambda: None)()
        if self.network != "unix" and isinstance(handle, socket.socket):
            try:
                handle.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, self.write_buffer)
            except OSError:
                pass

    def _dial_failed(self, failure: Failure) -> None:
        self._dialing = None
        self._failed(dial_error(self._dial_network, self.address, failure))

    def _failed(self, reason: str) -> None:
        self._connecting = False
        self._accepting = False
        self._attempt = None
        # What was queued for the connection that did not come is lost (CoreDNS's writes fail).
        lost = len(self.queue)
        if lost:
            self.queue.clear()
            self.dropped += lost
            self.dropped_total += lost
            DROPPED.inc(lost)
        if self._first and not self._stopped:
            self._first = False
            log.error(f"No connection to dnstap endpoint: {reason}")

    # -- what the sender reports ------------------------------------------------------------------

    def sender_ready(self, sender: FrameStreamSender) -> None:
        self._first = False
        self._connecting = False
        self._attempt = None
        self.sender = sender
        if self.queue and self._drain_call is None:
            self._drain_call = self.clock.callLater(0, self._drain)

    def sender_failed(self, sender: FrameStreamSender, reason: str) -> None:
        if sender is self._attempt:
            self._failed(reason)

    def sender_resumed(self, sender: FrameStreamSender) -> None:
        if sender is self.sender and self.queue and self._drain_call is None:
            self._drain_call = self.clock.callLater(0, self._drain)

    def sender_lost(self, sender: FrameStreamSender) -> None:
        if sender is not self.sender:
            return
        self.sender = None
        self._accepting = False
        if self._drain_call is not None:
            self._drain_call.cancel()
            self._drain_call = None
        if not self._stopped:
            self.connect()  # at once, as CoreDNS redials after a failed write

    # -- the 10-second check, and the end -----------------------------------------------------------

    def _error_check(self) -> None:
        if self.dropped:
            log.warning(f"Dropped dnstap messages: {self.dropped}")
            self.dropped = 0
        if self.sender is None:
            self.connect()

    def stop(self) -> Deferred[None]:
        """Write out the queue, send STOP, and close on FINISH (CoreDNS's close at shutdown).
        Fires when the connection is closed."""
        self._stopped = True
        self._accepting = False
        if self._check is not None and self._check.running:
            self._check.stop()
        self._check = None
        if self._drain_call is not None:
            self._drain_call.cancel()
            self._drain_call = None
        sender = self.sender
        if sender is None:
            self.queue.clear()
            if self._dialing is not None:
                self._dialing.cancel()
            if self._attempt is not None:
                return self._attempt.stop()
            return succeed(None)
        if self.queue:
            sender.write(b"".join(self.queue))
            self.queue.clear()
        return sender.stop()

    def __repr__(self) -> str:
        return f"<Output {self.network}://{self.address} queued={len(self.queue)}>"
