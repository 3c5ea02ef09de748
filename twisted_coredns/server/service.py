"""The servers of one process as a Twisted service: bind, adopt, serve, stop.

Sockets are bound in ``privilegedStartService`` (before twistd drops privileges, so port 53
works), adopted by the reactor in ``startService``. A worker of the multisocket launcher passes in
sockets it inherited instead of binding its own.
"""

from __future__ import annotations

import platform
import socket
import sys
from collections.abc import Iterable, Mapping
from typing import Any

from twisted.application.service import Service
from twisted.internet.defer import Deferred, DeferredList, inlineCallbacks

from .. import __version__
from ..clog import PluginLogger
from ..config import ListenGroup
from ..instance import Instance
from .router import ZoneRouter
from .sockets import (
    SocketPair,
    adopt_tcp,
    adopt_udp,
    bind_late,
    close_pair,
    leave_group,
    listen_pair,
    pair_port,
    queued,
)
from .transports import ServeContext, load, transport

_log = PluginLogger()

class DNSServer:
    """The listeners of one listen group (one address) in this process, served the way its
    transport says (``transports.py``)."""

    def __init__(self, group: ListenGroup, reactor: Any) -> None:
        self.group = group
        self.reactor = reactor
        self.transport = transport(group.transport)
        self.router = ZoneRouter(group)
        self.ports: list[Any] = []
        self.sockets: list[SocketPair] = []
        self.bound_port = 0

    def bind(self) -> None:
        t = self.transport
        self.sockets.append(listen_pair(self.group.host, self.group.port, udp=t.uses_udp, tcp=t.uses_tcp))
        self.record_port(pair_port(self.sockets[-1]))

    def record_port(self, port: int) -> None:
        self.bound_port = port
        for _address, block in self.group.entries:
            block.bound_ports[self.group.port] = port

    def context(self) -> ServeContext:
        """What the transport's factories get (made when the sockets are adopted: a worker
        replaces the router before that)."""
        return ServeContext.of(self.router, self.group, self.reactor)

    def adopt(self, udp: socket.socket | None, tcp: socket.socket | None) -> None:
        if self.bound_port:
            # Sockets a multisocket master made for a port already served: bound only now.
            for sock in (udp, tcp):
                if sock is not None:
                    bind_late(sock, self.group.host, self.bound_port)
        self.record_port(pair_port((udp, tcp)))
        t = self.transport
        ctx = self.context()
        if udp is not None and t.udp is not None:
            self.ports.append(adopt_udp(self.reactor, udp, load(t.udp)(ctx)))
        if tcp is not None:
            if t.own_listener is not None:
                self.ports.append(load(t.own_listener)(ctx, tcp))
            elif t.tcp is not None:
                self.ports.append(adopt_tcp(self.reactor, tcp, load(t.tcp)(ctx)))

    def start(self) -> None:
        for udp, tcp in self.sockets:
            self.adopt(udp, tcp)
        self.sockets.clear()

    @property
    def port(self) -> int:
        """The port actually bound (useful with port 0)."""
        if self.sockets:
            return pair_port(self.sockets[0])
        if self.bound_port:
            return self.bound_port
        return int(self.ports[0].getHost().port)

    def stop(self) -> Deferred[Any]:
        ds = [p.stopListening() for p in self.ports]
        self.ports = []
        for pair in self.sockets:
            close_pair(pair)
        self.sockets.clear()
        return DeferredList([d for d in ds if isinstance(d, Deferred)])


def startup_banner(instance: Instance, servers: list[DNSServer]) -> str:
    """What CoreDNS prints when it starts: each zone and port, then the version."""
    lines = []
    for server in servers:
        proto = "" if server.group.transport == "dns" else server.group.transport + "://"
        for zone in sorted({a.zone for a, _b in server.group.entries}):
            where = f" on {server.group.host}" if server.group.host else ""
            lines.append(f"{proto}{zone}:{server.port}{where}")
    lines.append(f"twisted-coredns-{__version__}")
    lines.append(
        f"{sys.platform}/{platform.machine()}, {platform.python_implementation()} "
        f"{platform.python_version()}, Twisted {_twisted_version()}"
    )
    return "\n".join(lines)


def _twisted_version() -> str:
    import twisted

    return str(twisted.__version__)


class CoreDNSService(Service):
    """All servers of one Corefile instance in this reactor."""

    name = "coredns"

    def __init__(
        self,
        instance: Instance,
        reactor: Any = None,
        quiet: bool = False,
        sockets: Mapping[str, list[SocketPair]] | None = None,
        ports: Mapping[str, int] | None = None,
    ) -> None:
        if reactor is None:
            from twisted.internet import reactor as default_reactor

            reactor = default_reactor
        self.instance = instance
        self.reactor = reactor
        self.quiet = quiet
        self.servers = [DNSServer(group, reactor) for group in instance.groups]
        if sockets is not None:
            # A multisocket worker: it serves only the addresses it was given, on the sockets it
            # inherited from the master (keyed by ListenGroup.address), and binds nothing.
            self.servers = [s for s in self.servers if s.group.address in sockets]
            for server in self.servers:
                server.sockets.extend(sockets[server.group.address])
                # Known now, before the startup hooks run (loop probes its own port); a socket
                # still to be bound takes the port its address is served on.
                known = (ports or {}).get(server.group.address)
                server.record_port(known if known else pair_port(server.sockets[0]))
        self.banner = ""

    def privilegedStartService(self) -> None:
        for server in self.servers:
            if not server.sockets and not server.ports:
                server.bind()
        super().privilegedStartService()

    @inlineCallbacks
    def startService(self) -> Any:
        super().startService()
        for server in self.servers:
            if not server.sockets and not server.ports:
                server.bind()
        yield self.instance.start()
        for server in self.servers:
            server.start()
        self.banner = startup_banner(self.instance, self.servers)
        if not self.quiet:
            print(self.banner, flush=True)

    @inlineCallbacks
    def stopService(self) -> Any:
        super().stopService()
        yield DeferredList([s.stop() for s in self.servers])
        yield self.instance.stop()

    @inlineCallbacks
    def drain(self, grace: float, keep_reading: Iterable[str] = ()) -> Any:
        """Stop taking queries, let those in flight finish (``grace`` seconds at most), stop.

        UDP sockets stop being read but stay open, to send the replies still to come; whoever
        shares the socket (the master, a successor) reads what is queued, so nothing is lost.
        The sockets of the addresses in ``keep_reading`` have no successor: this service holds
        their last copy, so it reads them until it stops, and what the kernel queued in them
        meanwhile is answered rather than dropped when they close."""
        from twisted.internet import tcp, udp
        from twisted.internet.task import deferLater

        keep = set(keep_reading)
        stopping = []
        emptying: list[Any] = []
        for server in self.servers:
            if server.group.address in keep:
                emptying.extend(p.socket for p in server.ports if isinstance(p, udp.Port))
                continue
            for port in server.ports:
                if isinstance(port, udp.Port):
                    port.stopReading()
                else:
                    stopping.append(port.stopListening())
        for d in stopping:
            if isinstance(d, Deferred):
                yield d
        deadline = self.reactor.seconds() + grace

        routers = [server.router for server in self.servers]

        for sock in emptying:
            leave_group(sock)

        def busy() -> bool:
            if any(router.pending for router in routers):
                return True
            if any(queued(sock) for sock in emptying):
                return True
            # A TCP reply of ours still in the send buffer.
            return any(
                isinstance(w, tcp.Server) and getattr(w.protocol, "router", None) in routers
                for w in self.reactor.getWriters()
            )

        while self.reactor.seconds() < deadline and busy():
            yield deferLater(self.reactor, 0.02, lambda: None)
        if self.running:
            yield self.stopService()
