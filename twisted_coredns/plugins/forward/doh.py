"""DNS-over-HTTPS upstreams (``https://``), on twisted.web's HTTP/1.1 client.

RFC 8484 as CoreDNS speaks it: the query (ID 0) is POSTed to ``/dns-query`` as
``application/dns-message`` (or sent as ``?dns=`` base64url with ``doh_method GET``), over TLS
checked against ``tls_servername``. Connections are kept in a persistent pool. HTTP/2 is not used:
twisted.web speaks it only with the optional ``h2`` package; RFC 8484 servers accept HTTP/1.1.
"""

from __future__ import annotations

import base64
from typing import TYPE_CHECKING, Any

from twisted.internet.defer import Deferred, DeferredList, TimeoutError
from twisted.python.failure import Failure
from twisted.web.client import Agent, HTTPConnectionPool, readBody
from twisted.web.http_headers import Headers
from twisted.web.iweb import IPolicyForHTTPS
from zope.interface import implementer

from ...httpclient import BytesBody
from .connection import UpstreamError

if TYPE_CHECKING:
    from .proxy import Proxy

MIME = b"application/dns-message"
PATH = "/dns-query"


@implementer(IPolicyForHTTPS)
class _FixedPolicy:
    """The same TLS settings whatever the URL says (the URL holds an address, not the name)."""

    def __init__(self, creator: Any) -> None:
        self.creator = creator

    def creatorForNetloc(self, hostname: bytes, port: int) -> Any:
        return self.creator


class DoHClient:
    """Exchanges DNS messages with one DoH upstream."""

    def __init__(self, proxy: Proxy, reactor: Any, *, method: str, tls: Any, server_name: str) -> None:
        self.proxy = proxy
        self.reactor = reactor
        self.method = method
        self.pool = HTTPConnectionPool(reactor, persistent=True)
        self.pool.retryAutomatically = False
        self.agent = Agent(reactor, contextFactory=_FixedPolicy(tls), pool=self.pool, connectTimeout=30)
        hostport = f"[{proxy.host}]:{proxy.port}" if ":" in proxy.host else f"{proxy.host}:{proxy.port}"
        self.url = f"https://{hostport}{PATH}"
        self.host = (server_name or hostport).encode("idna")
        self._inflight: set[Deferred[bytes]] = set()

    def exchange(self, wire: bytes, timeout: float | None = None) -> Deferred[bytes]:
        body = b"\x00\x00" + wire[2:]  # RFC 8484: ID 0, for HTTP caches
        headers = Headers({b"accept": [MIME], b"content-type": [MIME], b"host": [self.host]})
        if self.method == "GET":
            b64 = base64.urlsafe_b64encode(body).rstrip(b"=").decode("ascii")
            sent = self.agent.request(b"GET", f"{self.url}?dns={b64}".encode(), headers)
        else:
            sent = self.agent.request(b"POST", self.url.encode(), headers, BytesBody(body))
        d: Deferred[bytes] = sent.addCallback(self._read)
        d.addTimeout(timeout or self.proxy.read_timeout, self.reactor)
        d.addErrback(self._error)
        self._inflight.add(d)
        d.addBoth(self._forget, d)
        return d

    def _forget(self, result: Any, d: Deferred[bytes]) -> Any:
        self._inflight.discard(d)
        return result

    def _read(self, response: Any) -> Deferred[bytes]:
        if response.code != 200:
            response.deliverBody(_Discard())
            raise UpstreamError(f"DNS-over-HTTPS request failed with status {response.code}")
        return readBody(response)

    def _error(self, failure: Failure) -> Failure:
        if failure.check(UpstreamError):
            return failure
        if failure.check(TimeoutError):
            return Failure(UpstreamError(f"Post \"{self.url}\": context deadline exceeded"))
        return Failure(UpstreamError(f"Post \"{self.url}\": {failure.getErrorMessage()}"))

    def close(self) -> Deferred[Any]:
        for d in list(self._inflight):
            d.cancel()
        return DeferredList([self.pool.closeCachedConnections()], consumeErrors=True)


class _Discard:
    def dataReceived(self, data: bytes) -> None:
        pass

    def connectionLost(self, reason: Any) -> None:
        pass

    def makeConnection(self, transport: Any) -> None:
        pass
