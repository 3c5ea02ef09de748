"""A non-blocking etcd v3 client: the gRPC JSON gateway (``POST /v3/kv/range``) over twisted.web's
``Agent``, on the server's reactor.

Why the gateway and not grpcio or an asyncio client: see docs/design.md ("etcd"). The client keeps
one persistent connection pool for all endpoints and sticks to the endpoint that last answered; a
refused connection, a dropped one, or an error etcd itself reports (no leader, a timed-out
request) moves it on to the next endpoint, round and round with a short pause, until the call's
deadline (CoreDNS's 5 s ``etcdTimeout``). Reads are idempotent, so retrying them elsewhere is safe;
the Go client retries them the same way. Nothing here blocks: a dead or slow etcd costs a pending
Deferred per query, never the reactor.
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from twisted.internet import defer, task
from twisted.internet.defer import Deferred
from twisted.internet.error import ConnectingCancelledError
from twisted.python.failure import Failure
from twisted.web.client import Agent, HTTPConnectionPool, readBody
from twisted.web.http_headers import Headers
from twisted.web.iweb import IPolicyForHTTPS
from zope.interface import implementer

from ...httpclient import BytesBody

__all__ = ["DEFAULT_TIMEOUT", "EtcdClient", "EtcdError", "KeyValue", "endpoint_url", "prefix_range_end"]

DEFAULT_TIMEOUT = 5.0
"""CoreDNS's ``etcdTimeout``: how long one read may take, every retry included."""

_ATTEMPT_LIMIT = 2.0  # one endpoint's share of the deadline when there are others to try
_PAUSE = 0.05  # between rounds over every endpoint
_UNAUTHENTICATED = 16  # gRPC's code for a missing or expired token
# gRPC codes no other endpoint would answer differently: a bad request, wrong credentials, no rights.
_FINAL = frozenset({3, 7})


class EtcdError(Exception):
    """A read that did not succeed: unreachable endpoints, the deadline, or etcd's own error."""


@dataclass(frozen=True, slots=True)
class KeyValue:
    key: str
    value: bytes
    lease: int
    mod_revision: int


def endpoint_url(endpoint: str) -> str:
    """An endpoint as the Go client takes it: a URL, or a bare ``host:port`` (plain HTTP)."""
    if "://" not in endpoint:
        endpoint = "http://" + endpoint
    parts = urlsplit(endpoint)
    scheme = "https" if parts.scheme in ("https", "unixs") else "http"
    return f"{scheme}://{parts.netloc}"


@implementer(IPolicyForHTTPS)
class _TLSPolicy:
    """The ``tls`` option's certificates for every https endpoint, TLS 1.2 at least."""

    def __init__(self, client_cert: Any, trust: Any) -> None:
        self.client_cert = client_cert
        self.trust = trust

    def creatorForNetloc(self, hostname: bytes, port: int) -> Any:
        from twisted.internet import ssl

        return ssl.optionsForClientTLS(
            hostname.decode("ascii"),
            trustRoot=self.trust,
            clientCertificate=self.client_cert,
            extraCertificateOptions={"raiseMinimumTo": ssl.TLSVersion.TLSv1_2},
        )


class _Failed(Exception):
    """One attempt at one endpoint failed; ``code`` is etcd's gRPC code when it answered."""

    def __init__(self, text: str, code: int | None = None) -> None:
        super().__init__(text)
        self.code = code


class EtcdClient:
    def __init__(
        self,
        endpoints: list[str],
        reactor: Any,
        *,
        username: str = "",
        password: str = "",
        tls: tuple[Any, Any] | None = None,
        timeout: float = DEFAULT_TIMEOUT,
        clock: Any = None,
    ) -> None:
        self.endpoints = [endpoint_url(e) for e in endpoints]
        self.reactor = reactor
        self.clock = reactor if clock is None else clock
        self.username = username
        self.password = password
        self.timeout = timeout
        self._current = 0
        self._closed = False
        self._token: str | None = None
        self._pool = HTTPConnectionPool(reactor, persistent=True)
        self._pool.maxPersistentPerHost = 64
        self._pool.retryAutomatically = False
        policy = _TLSPolicy(*tls) if tls is not None else None
        self._agent = Agent(reactor, contextFactory=policy, pool=self._pool) if policy else Agent(
            reactor, pool=self._pool
        )

    # -- reads ----------------------------------------------------------------------------------

    async def get(self, key: str, *, prefix: bool = False, limit: int = 0) -> list[KeyValue]:
        """The key, or every key under ``key`` with ``prefix``; a linearizable read, as the Go
        client's ``Get`` is."""
        raw = key.encode("utf-8")
        body: dict[str, Any] = {"key": _b64(raw)}
        if prefix:
            body["range_end"] = _b64(prefix_range_end(raw))
        if limit:
            body["limit"] = limit
        reply = await self._call("/v3/kv/range", body)
        return [
            KeyValue(
                base64.b64decode(kv["key"]).decode("utf-8", "replace"),
                base64.b64decode(kv.get("value", "")),
                int(kv.get("lease", 0)),
                int(kv.get("mod_revision", 0)),
            )
            for kv in reply.get("kvs", ())
        ]

    async def lease_ttl(self, lease: int) -> int:
        """The seconds left on a lease (-1 when it has expired)."""
        reply = await self._call("/v3/lease/timetolive", {"ID": lease})
        return int(reply.get("TTL", -1))

    async def probe(self) -> None:
        """One cheap read (nothing is returned but the count), to tell whether etcd answers."""
        await self._call("/v3/kv/range", {"key": _b64(b"\0"), "count_only": True}, timeout=1.0)

    def close(self) -> Deferred[None]:
        self._closed = True
        return self._pool.closeCachedConnections()

    # -- the calls ------------------------------------------------------------------------------

    async def _call(self, path: str, body: dict[str, Any], timeout: float | None = None) -> dict[str, Any]:
        data = json.dumps(body).encode("ascii")
        deadline = self.clock.seconds() + (self.timeout if timeout is None else timeout)
        failures = 0
        last = "no endpoint tried"
        while True:
            remaining = deadline - self.clock.seconds()
            if remaining <= 0:
                raise EtcdError(f"context deadline exceeded ({last})")
            url = self.endpoints[self._current]
            share = remaining if len(self.endpoints) == 1 else min(remaining, _ATTEMPT_LIMIT)
            try:
                return await self._post(url, path, data, share)
            except _Failed as exc:
                last = f"{url}: {exc}"
                if exc.code == _UNAUTHENTICATED and self._token is not None:
                    self._token = None  # expired: authenticate again, at the same endpoint
                    continue
                if exc.code in _FINAL:
                    raise EtcdError(last) from None
            failures += 1
            self._current = (self._current + 1) % len(self.endpoints)
            left = deadline - self.clock.seconds()
            if self._closed:
                raise EtcdError(f"client closed ({last})")
            if left <= 0:
                raise EtcdError(f"context deadline exceeded ({last})")
            if failures % len(self.endpoints) == 0:
                rounds = failures // len(self.endpoints)
                await task.deferLater(self.clock, min(_PAUSE * rounds, 0.5, left), lambda: None)

    async def _post(self, url: str, path: str, data: bytes, limit: float) -> dict[str, Any]:
        headers = Headers({b"Content-Type": [b"application/json"]})
        if self.username and self.password:
            if self._token is None:
                self._token = await self._authenticate(url, limit)
            headers.addRawHeader(b"Authorization", self._token.encode("ascii"))
        return await self._request(url + path, headers, data, limit)

    async def _authenticate(self, url: str, limit: float) -> str:
        body = json.dumps({"name": self.username, "password": self.password}).encode("utf-8")
        headers = Headers({b"Content-Type": [b"application/json"]})
        reply = await self._request(url + "/v3/auth/authenticate", headers, body, limit)
        token = reply.get("token")
        if not isinstance(token, str):
            raise _Failed("authentication gave no token")
        return token

    async def _request(self, url: str, headers: Headers, data: bytes, limit: float) -> dict[str, Any]:
        async def fetch() -> tuple[int, bytes]:
            response = await self._agent.request(b"POST", url.encode("ascii"), headers, BytesBody(data))
            return response.code, await readBody(response)

        def timed_out(result: Any, timeout: float) -> Failure:
            # Our own deadline, told apart from a caller's cancel (a cancelled connection attempt
            # fails with ConnectingCancelledError either way).
            return Failure(_Failed(f"no answer in {limit:.3g}s"))

        try:
            status, payload = await defer.ensureDeferred(fetch()).addTimeout(
                limit, self.clock, onTimeoutCancel=timed_out
            )
        except _Failed:
            raise
        except (defer.CancelledError, ConnectingCancelledError):
            raise defer.CancelledError() from None  # the caller gave up (the server stops): no retry
        except Exception as exc:
            raise _Failed(_describe(exc)) from None
        try:
            reply = json.loads(payload)
        except ValueError:
            raise _Failed(f"HTTP {status}: not JSON") from None
        if not isinstance(reply, dict):
            raise _Failed(f"HTTP {status}: not a JSON object")
        if status != 200 or ("error" in reply and "header" not in reply):
            message = reply.get("message") or reply.get("error") or "no message"
            code = reply.get("code")
            raise _Failed(f"HTTP {status}: {message}", code if isinstance(code, int) else None)
        return reply


def _describe(exc: BaseException) -> str:
    """A failure's reason in a few words (twisted.web wraps the socket's own in lists)."""
    reasons = getattr(exc, "reasons", None)
    if reasons:
        inner = reasons[0]
        return _describe(getattr(inner, "value", inner))
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0]


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode("ascii")


def prefix_range_end(key: bytes) -> bytes:
    """etcd's ``GetPrefixRangeEnd``: the key with its last byte below 0xff incremented."""
    end = bytearray(key)
    for i in range(len(end) - 1, -1, -1):
        if end[i] < 0xFF:
            end[i] += 1
            return bytes(end[: i + 1])
    return b"\0"  # every key
