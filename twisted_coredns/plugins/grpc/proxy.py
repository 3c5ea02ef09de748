"""One gRPC upstream: a grpcio channel, opened in the process that serves, and calls that end on
the reactor.

grpcio's synchronous API runs each call on its own threads; ``Query.future()`` returns at once
and its done-callback, run on a grpcio thread, hands the outcome to the reactor with
``callFromThread``. The reactor never waits on grpcio, and grpcio never touches a Deferred. The
channel is made at start, not at setup: with ``multisocket`` the setup runs before the workers
are forked, and a grpcio channel does not survive a fork.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from twisted.internet.defer import CancelledError, Deferred

from ...server.dnspb import MAX_PACKET, decode_packet, encode_packet


class GRPCError(Exception):
    """A failed call, worded as Go's grpc status error: ``rpc error: code = X desc = Y``."""

    def __init__(self, code: str, details: str) -> None:
        super().__init__(f"rpc error: code = {code} desc = {details}")
        self.code = code


def go_code(name: str) -> str:
    """grpcio's ``StatusCode`` name as Go's ``codes.Code`` prints it (``DEADLINE_EXCEEDED`` is
    ``DeadlineExceeded``; Go spells ``CANCELLED`` with one L)."""
    if name == "CANCELLED":
        return "Canceled"
    return "".join(part.capitalize() for part in name.split("_"))


@dataclass(frozen=True)
class TLSMaterial:
    """What ``tls [CERT KEY CA]`` and ``tls_servername`` give, read at setup: PEM bytes for
    ``grpc.ssl_channel_credentials`` (no CA: grpcio's own roots, the system's in Go)."""

    ca: bytes | None = None
    key: bytes | None = None
    cert: bytes | None = None
    server_name: str = ""


def grpc_target(addr: str) -> tuple[str, str]:
    """The grpcio target for one **TO** address and the host TLS checks the certificate against.

    IP literals get grpcio's ``ipv4:``/``ipv6:`` schemes, so no name resolver ever runs; a
    ``unix://`` path is grpcio's own form."""
    if addr.startswith("unix://"):
        return "unix:" + addr[len("unix://") :], "localhost"
    rest = addr.split("://", 1)[1] if "://" in addr else addr
    if rest.startswith("["):
        host = rest[1 : rest.index("]")]
        return "ipv6:" + rest, host
    host = rest.rpartition(":")[0]
    return "ipv4:" + rest, host


class Proxy:
    """One upstream (CoreDNS's ``Proxy``): ``addr`` is its Corefile form and metrics label."""

    def __init__(self, addr: str, reactor: Any, tls: TLSMaterial | None) -> None:
        self.addr = addr
        self.reactor = reactor
        self.tls = tls
        self.target, self._host = grpc_target(addr)
        self._channel: Any = None
        self._query: Any = None

    def start(self) -> None:
        import grpc

        options: list[tuple[str, Any]] = [
            ("grpc.max_receive_message_length", MAX_PACKET),
            ("grpc.max_send_message_length", MAX_PACKET),
        ]
        if self.tls is None:
            self._channel = grpc.insecure_channel(self.target, options=options)
        else:
            credentials = grpc.ssl_channel_credentials(self.tls.ca, self.tls.key, self.tls.cert)
            # The name the server's certificate must carry: tls_servername, else the address, as
            # Go's crypto/tls checks it.
            options.append(("grpc.ssl_target_name_override", self.tls.server_name or self._host))
            self._channel = grpc.secure_channel(self.target, credentials, options=options)
        self._query = self._channel.unary_unary(
            "/coredns.dns.DnsService/Query",
            request_serializer=encode_packet,
            response_deserializer=decode_packet,
        )

    def stop(self) -> None:
        if self._channel is not None:
            self._channel.close()
            self._channel = None
            self._query = None

    def query(self, wire: bytes, timeout: float) -> Deferred[bytes]:
        """Send ``wire``; the Deferred fires on the reactor with the reply's bytes, or fails with
        ``GRPCError``. Cancelling it cancels the call."""
        if self._query is None:
            self.start()
        future = self._query.future(wire, timeout=timeout)
        d: Deferred[bytes] = Deferred(lambda _: future.cancel())
        future.add_done_callback(lambda f: self.reactor.callFromThread(_complete, d, f))
        return d


def _complete(d: Deferred[bytes], future: Any) -> None:
    """On the reactor: fire ``d`` with the finished call's outcome (unless it was cancelled)."""
    if d.called:
        return
    if future.cancelled():
        d.errback(CancelledError())
        return
    error = future.exception()
    if error is None:
        d.callback(future.result())
        return
    code = getattr(error, "code", None)
    details = getattr(error, "details", None)
    if callable(code) and callable(details):
        d.errback(GRPCError(go_code(code().name), details() or ""))
    else:
        d.errback(GRPCError("Internal", str(error)))
