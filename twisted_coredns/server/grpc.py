"""DNS over gRPC (``grpc://``, CoreDNS's ``DnsService/Query``): accepted by Twisted, answered
through grpcio.

grpcio cannot serve a socket it did not open, and the listening socket here is the one the
multisocket master made and hands to each worker (that is what makes reloads lossless). So the
worker's reactor accepts on it, as for DoT (TLS, with ALPN ``h2``, ends here, so mutual TLS is
the ``tls`` plugin's own), and relays each connection's bytes to a grpcio server that listens on
a loopback port of its own in the same process. That server sees the relay's address as its peer;
the relay notes which client each of its loopback ports stands for, and the servicer reads the
client's address back from that note, so plugins see the real client.

A call runs on a grpcio thread. It hands the query to the reactor with ``callFromThread`` and
waits, on a ``concurrent.futures.Future`` the reactor completes, no longer than the call's
deadline: the reactor never waits on grpcio, and a grpcio thread never waits on a stopped reactor.
A message that is not a ``DnsPacket``, or whose bytes are no DNS query, ends the call with a gRPC
error status; the connection and the server go on.
"""

from __future__ import annotations

import concurrent.futures
from typing import TYPE_CHECKING, Any

from twisted.internet.protocol import Factory
from twisted.protocols import portforward

from ..clog import PluginLogger
from .answer import NotAQuery, answer
from .dnspb import MAX_PACKET, PacketError, decode_packet, encode_packet

if TYPE_CHECKING:
    from .router import ZoneRouter
    from .transports import ServeContext

_log = PluginLogger()

MAX_DNS_MESSAGE = 65535
_WAIT_CAP = 30.0
"""The longest a call waits for the chain when the client gave no deadline."""
_THREADS = 32
"""grpcio threads per process: each waits on one query at a time, none of them computes."""

Peers = dict[int, tuple[tuple[str, int], tuple[str, int]]]
"""A relay's loopback port -> (client address, local address) of the connection it relays."""


class _Servicer:
    """``DnsService/Query``, run on grpcio's threads."""

    def __init__(self, router: ZoneRouter, reactor: Any, peers: Peers) -> None:
        self.router = router
        self.reactor = reactor
        self.peers = peers

    def query(self, data: bytes, context: Any) -> bytes:
        import grpc

        try:
            wire = decode_packet(data)
        except PacketError as exc:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"not a DnsPacket: {exc}")
        if len(wire) > MAX_DNS_MESSAGE:
            context.abort(grpc.StatusCode.UNKNOWN, f"dns message exceeds size limit: {len(wire)}")
        remote, local = self._addresses(context.peer())
        done: concurrent.futures.Future[bytes] = concurrent.futures.Future()
        self.reactor.callFromThread(self._answer, wire, remote, local, done)
        left = context.time_remaining()
        try:
            reply = done.result(timeout=min(left, _WAIT_CAP) if left is not None else _WAIT_CAP)
        except NotAQuery as exc:
            context.abort(grpc.StatusCode.UNKNOWN, f"dns: {exc}")
        except concurrent.futures.TimeoutError:
            context.abort(grpc.StatusCode.DEADLINE_EXCEEDED, "no reply in time")
        if not reply:
            context.abort(grpc.StatusCode.UNKNOWN, "no reply")
        return encode_packet(reply)

    def _addresses(self, peer: str) -> tuple[tuple[str, int], tuple[str, int]]:
        host, _, port = peer.partition(":")[2].rpartition(":")
        found = self.peers.get(int(port)) if port.isdigit() else None
        if found is not None:
            return found
        return (host.strip("[]"), int(port) if port.isdigit() else 0), ("127.0.0.1", 0)

    def _answer(
        self,
        wire: bytes,
        remote: tuple[str, int],
        local: tuple[str, int],
        done: concurrent.futures.Future[bytes],
    ) -> None:
        """On the reactor: route the query; complete ``done`` now or when the chain answers."""
        try:
            result = answer(self.router, wire, remote, local, "tcp")
        except NotAQuery as exc:
            done.set_exception(exc)
            return
        if isinstance(result, bytes):
            done.set_result(result)
            return
        result.addCallbacks(done.set_result, lambda f: done.set_exception(f.value))


class GRPCBackend:
    """The process's grpcio server for one listen address, on a loopback port of its own."""

    def __init__(self, router: ZoneRouter, reactor: Any, max_streams: int) -> None:
        import grpc

        self.peers: Peers = {}
        servicer = _Servicer(router, reactor, self.peers)
        options: list[tuple[str, Any]] = [
            ("grpc.max_receive_message_length", MAX_PACKET),
            ("grpc.max_send_message_length", MAX_PACKET),
            ("grpc.so_reuseport", 0),
        ]
        if max_streams > 0:
            options.append(("grpc.max_concurrent_streams", max_streams))
        self.server = grpc.server(
            concurrent.futures.ThreadPoolExecutor(max_workers=_THREADS, thread_name_prefix="grpc"),
            options=options,
        )
        handler = grpc.unary_unary_rpc_method_handler(servicer.query)
        self.server.add_generic_rpc_handlers(
            (grpc.method_handlers_generic_handler("coredns.dns.DnsService", {"Query": handler}),)
        )
        self.port = self.server.add_insecure_port("127.0.0.1:0")
        self.server.start()

    def stop(self) -> None:
        # Calls in progress get a second to finish; stop() does not block on them.
        self.server.stop(grace=1.0)


class _BackendSide(portforward.ProxyClient):
    def connectionMade(self) -> None:
        server: _ClientSide = self.peer  # type: ignore[assignment]
        self.port = self.transport.getHost().port  # type: ignore[union-attr]
        server.factory.backend.peers[self.port] = (server.remote, server.local)
        super().connectionMade()

    def connectionLost(self, reason: Any = None) -> None:
        server: _ClientSide = self.peer  # type: ignore[assignment]
        server.factory.backend.peers.pop(getattr(self, "port", -1), None)
        super().connectionLost(reason)


class _BackendSideFactory(portforward.ProxyClientFactory):
    protocol = _BackendSide
    noisy = False


class _ClientSide(portforward.ProxyServer):
    """One client connection, relayed to the process's grpcio server."""

    clientProtocolFactory = _BackendSideFactory
    factory: Any

    def connectionMade(self) -> None:
        transport: Any = self.transport
        peer = transport.getPeer()
        host = transport.getHost()
        self.remote = (_unmapped(peer.host), peer.port)
        self.local = (host.host, host.port)
        self.reactor = self.factory.reactor
        self.factory.connections += 1
        self.factory.open.add(self)
        # portforward.ProxyServer pauses the client and dials the factory's host and port.
        super().connectionMade()

    def connectionLost(self, reason: Any = None) -> None:
        self.factory.connections -= 1
        self.factory.open.discard(self)
        super().connectionLost(reason)

    def abort(self) -> None:
        """Drop both sides now (the server is stopping)."""
        peer: Any = self.peer
        if peer is not None and peer.transport is not None:
            peer.transport.abortConnection()
        transport: Any = self.transport
        transport.abortConnection()


def _unmapped(host: str) -> str:
    return host[7:] if host.startswith("::ffff:") and "." in host else host


class GRPCFactory(Factory):
    """The listening socket's factory; ``max_connections`` (0: none) refuses more clients."""

    protocol: Any = _ClientSide
    noisy = False

    def __init__(self, backend: GRPCBackend, reactor: Any, max_connections: int) -> None:
        self.backend = backend
        self.reactor = reactor
        self.host = "127.0.0.1"
        self.port = backend.port
        self.max_connections = max_connections
        self.connections = 0
        self.open: set[_ClientSide] = set()

    def buildProtocol(self, addr: Any) -> Any:
        if self.max_connections and self.connections >= self.max_connections:
            return None  # Twisted closes the connection at once
        return super().buildProtocol(addr)

    def doStop(self) -> None:
        super().doStop()
        if self.numPorts == 0:
            # A stopped listener ends its clients too, as CoreDNS's grpc Stop ends its streams.
            for proto in list(self.open):
                proto.abort()
            self.backend.stop()


def serve_grpc(ctx: ServeContext) -> Any:
    """The ``grpc`` transport's TCP factory (server/transports.py)."""
    from ..plugins.grpc_server import GRPCServerLimits

    limits = ctx.settings.get("grpc_server") or GRPCServerLimits()
    backend = GRPCBackend(ctx.router, ctx.reactor, limits.max_streams)
    factory: Any = GRPCFactory(backend, ctx.reactor, limits.max_connections)
    if ctx.tls is not None:
        from twisted.protocols.tls import TLSMemoryBIOFactory

        factory = TLSMemoryBIOFactory(ctx.tls.server_context([b"h2"]), False, factory)
    return factory
