"""DNS over TLS (``tls://``, RFC 7858): the TCP server inside TLS.

The stream server (``protocols.DNSStreamFactory``) is used as it is: length-prefixed, pipelined
queries answered in any order, with TCP's limits. TLS sits between it and the socket, and the
PROXY protocol (``proxyproto``) between TLS and the socket. The read timeout starts when the TCP
connection is accepted, so a handshake that never finishes is cut off like a query that never
arrives. Without the ``tls`` plugin the block is served as plain TCP, as CoreDNS does.
"""

from __future__ import annotations

from typing import Any

from twisted.protocols.tls import TLSMemoryBIOFactory, TLSMemoryBIOProtocol

from .protocols import DNSStreamFactory
from .transports import ServeContext

DOT_ALPN = [b"dot"]


class _TLSFactory(TLSMemoryBIOFactory):
    """TLS around a factory that may refuse a connection (``buildProtocol`` returns None)."""

    noisy = False

    def buildProtocol(self, addr: Any) -> Any:
        inner = self.wrappedFactory.buildProtocol(addr)
        if inner is None:
            return None
        return self.protocol(self, inner)


class _RecordPerWriteTLSFactory(_TLSFactory):
    """TLS where each ``write`` is sealed into its own records at once, in order.

    Twisted's default transport gathers the writes of a reactor turn into one record. DoH wants
    one reply per record: clients such as dnsperf hand one TLS read at a time to their HTTP/2
    parser and take one reply from it, so replies that share a record are lost to them."""

    protocol = TLSMemoryBIOProtocol


def secure(ctx: ServeContext, factory: Any, alpn: list[bytes], *, record_per_write: bool = False) -> Any:
    """``factory`` behind TLS (when the block has ``tls``) and the PROXY protocol (when it has
    ``proxyproto``): the layers every stream transport shares. ``record_per_write``: no
    gathering of small writes into one TLS record (``_RecordPerWriteTLSFactory``)."""
    wrapped: Any = factory
    if ctx.tls is not None:
        kind = _RecordPerWriteTLSFactory if record_per_write else _TLSFactory
        wrapped = kind(ctx.tls.server_context(alpn), False, factory)
    policy = ctx.settings.get("proxyproto")
    if policy is not None:
        from .limits import StreamLimits
        from .proxyheader import ProxyHeaderFactory

        timeout = StreamLimits.of(dict.fromkeys(ctx.router.table.values())).read_timeout
        wrapped = ProxyHeaderFactory(policy, wrapped, ctx.reactor, timeout)
    return wrapped


def serve_dot(ctx: ServeContext) -> Any:
    """The ``tls://`` transport's TCP server (``transports.py``)."""
    return secure(ctx, DNSStreamFactory(ctx.router, reactor=ctx.reactor), DOT_ALPN)
