"""The seam between a listen address's scheme and the servers that serve it.

Every ``transport://`` of a Corefile key names a ``Transport``: which sockets the multisocket
master binds for it (a UDP one, a TCP one, or both) and which callable serves each. The master
and the workers know nothing else about a transport: they bind the kinds it uses, hand them to
``DNSServer.adopt``, and that calls the factory named here with a ``ServeContext``. The callables
are dotted paths imported only when a Corefile uses the transport, so a heavy library (aioquic,
grpcio) costs nothing to a Corefile that serves plain DNS. docs/transports.md tells how to add one.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ..config import ListenGroup
    from .router import ZoneRouter
    from .tlsconfig import TLSSettings


@dataclass(frozen=True)
class Transport:
    """How one scheme is served."""

    name: str
    """``dns``, ``tls``, ``https``, ``quic``, ``https3``, ``grpc``."""
    udp: str | None
    """``module:callable``, called as ``f(ctx)``: the DatagramProtocol serving the UDP socket;
    None: this transport binds no UDP socket."""
    tcp: str | None
    """``module:callable``, called as ``f(ctx)``: the twisted ServerFactory of the TCP listening
    socket; None: no TCP socket (unless ``own_listener`` takes one)."""
    own_listener: str | None = None
    """``module:callable``, called as ``f(ctx, sock)`` with the bound TCP socket the master made:
    an object with ``stopListening() -> Deferred`` (and ``getHost()``), for a library that must
    accept on the socket itself (grpcio)."""
    needs_tls: bool = False
    """A block without the ``tls`` plugin is a Corefile error (``no_tls_error``)."""
    no_tls_error: str = ""
    """The error for a block without ``tls`` when ``needs_tls`` (CoreDNS's wording)."""

    @property
    def uses_udp(self) -> bool:
        return self.udp is not None

    @property
    def uses_tcp(self) -> bool:
        return self.tcp is not None or self.own_listener is not None


@dataclass
class ServeContext:
    """What a transport's factory gets: everything about the listen address it serves."""

    router: ZoneRouter
    """The group's router: ``router.dispatch(request) -> Response | Deferred[Response]``."""
    group: ListenGroup
    reactor: Any
    tls: TLSSettings | None
    """From the first block of the group that has the ``tls`` plugin; None: plain text."""
    settings: dict[str, Any]
    """The first block's ``BlockConfig.settings`` (transport options, timeouts, proxyproto...)."""

    @classmethod
    def of(cls, router: ZoneRouter, group: ListenGroup, reactor: Any) -> ServeContext:
        blocks = [block for _address, block in group.entries]
        tls = next((b.settings["tls"] for b in blocks if b.settings.get("tls") is not None), None)
        return cls(router, group, reactor, tls, blocks[0].settings if blocks else {})


TRANSPORTS: dict[str, Transport] = {
    "dns": Transport(
        "dns",
        udp="twisted_coredns.server.protocols:serve_udp",
        tcp="twisted_coredns.server.protocols:serve_tcp",
    ),
    "tls": Transport("tls", udp=None, tcp="twisted_coredns.server.dot:serve_dot"),
    "https": Transport("https", udp=None, tcp="twisted_coredns.server.doh:serve_doh"),
    # quic, https3 and grpc are registered here by their own modules' authors.
}


def transport(name: str) -> Transport:
    """The transport called ``name``; KeyError for one not served here."""
    return TRANSPORTS[name]


def load(path: str) -> Any:
    """The callable a dotted ``module:name`` path names, imported now."""
    module, _, name = path.partition(":")
    return getattr(importlib.import_module(module), name)


__all__ = ["TRANSPORTS", "ServeContext", "Transport", "load", "transport"]

# T2's transports: DoQ and DoH3 serve the UDP socket (aioquic, sans-I/O, on the reactor); gRPC is
# accepted on the TCP socket by the reactor and relayed to an in-process grpcio server.
TRANSPORTS["grpc"] = Transport("grpc", udp=None, tcp="twisted_coredns.server.grpc:serve_grpc")
TRANSPORTS["quic"] = Transport(
    "quic", udp="twisted_coredns.server.quic:serve_doq", tcp=None,
    needs_tls=True, no_tls_error="DoQ requires TLS, no TLS config found",
)
TRANSPORTS["https3"] = Transport(
    "https3", udp="twisted_coredns.server.doh3:serve_doh3", tcp=None,
    needs_tls=True, no_tls_error="DoH3 requires TLS, no TLS config found",
)
