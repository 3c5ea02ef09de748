"""The grpc handler: which queries it takes and CoreDNS's loop over the upstreams.

A query under **FROM** (the name **FROM** itself always, names under an ``except`` name never)
is sent as the client sent it to the upstreams in policy order, until one replies or the 5 s
deadline passes. A failed call moves on to the next upstream; a ``NotFound`` status is an
NXDOMAIN reply (the upstream's way of saying "no such name"). A reply to another question is a
FORMERR; an NXDOMAIN under ``fallthrough`` goes to the next plugin, and so does a query no
upstream answered. Otherwise the client gets SERVFAIL with the last error, which ``errors`` logs.
"""

from __future__ import annotations

from typing import Any

from twisted.internet.defer import CancelledError

from ...clog import PluginLogger
from ...dns import FORMERR, NXDOMAIN, RCODE_MASK, SERVFAIL, Zones, is_subdomain, rcode_name
from ...plugin import Handler
from ...request import Request
from ...response import Response, error_reply
from ..debug import log_hexdump
from ..forward.forward import matches
from ..forward.policy import Policy, Random
from . import metrics
from .proxy import GRPCError, Proxy

DEFAULT_TIMEOUT = 5.0
"""CoreDNS's ``defaultTimeout``: how long one query may go on trying upstreams."""
MAX_DNS_MESSAGE = 65535

_log = PluginLogger("grpc")


class NoHealthy(Exception):
    def __init__(self) -> None:
        super().__init__("no healthy gRPC proxies")


class MessageTooLarge(Exception):
    def __init__(self, size: int) -> None:
        super().__init__(f"dns message exceeds size limit: {size} bytes (limit {MAX_DNS_MESSAGE})")


class GRPC(Handler):
    name = "grpc"

    def __init__(self, reactor: Any) -> None:
        self.reactor = reactor
        self.from_zone = "."
        self.ignored = Zones(())
        self.proxies: list[Proxy] = []
        self.policy: Policy[Proxy] = Random()
        self.fall = Zones(())
        self.timeout = DEFAULT_TIMEOUT

    def on_startup(self) -> None:
        for proxy in self.proxies:
            proxy.start()

    def on_shutdown(self) -> None:
        for proxy in self.proxies:
            proxy.stop()

    def match(self, name: str) -> bool:
        if not is_subdomain(name, self.from_zone):
            return False
        return name == self.from_zone or not self.ignored.covers(name)

    def serve(self, request: Request) -> Any:
        if not self.match(request.name):
            return self.serve_next(request)
        return self._relay(request)

    async def _relay(self, request: Request) -> Response:
        seconds = self.reactor.seconds
        deadline = seconds() + self.timeout
        error: BaseException | None = None
        wire = request.wire
        for proxy in self.policy.order(self.proxies):
            left = deadline - seconds()
            if left <= 0:
                break
            try:
                reply = await self._ask(proxy, wire, request, left)
            except (GRPCError, MessageTooLarge, CancelledError) as exc:
                error = exc
                continue
            if not matches(request, reply):
                text = (
                    f"Wrong reply for id: {int.from_bytes(reply[:2], 'big')}, {request.qname} {request.qtype}"
                )
                log_hexdump(_log, text, reply)
                return error_reply(request, FORMERR)
            if reply[3] & RCODE_MASK == NXDOMAIN and self.fall.covers(request.name) and self.next is not None:
                return await self.serve_next(request)
            return Response(reply, plugin=self.name)
        if self.fall.covers(request.name) and self.next is not None:
            return await self.serve_next(request)
        return Response.not_written(SERVFAIL, error if error is not None else NoHealthy(), self.name)

    async def _ask(self, proxy: Proxy, wire: bytes, request: Request, timeout: float) -> bytes:
        if len(wire) > MAX_DNS_MESSAGE:
            raise MessageTooLarge(len(wire))
        start = self.reactor.seconds()
        try:
            reply = await proxy.query(wire, timeout)
        except GRPCError as exc:
            if exc.code != "NotFound":
                raise
            # CoreDNS's answer to a NotFound status: NXDOMAIN for the question asked.
            reply = error_reply(request, NXDOMAIN).wire or b""
        if len(reply) > MAX_DNS_MESSAGE:
            raise MessageTooLarge(len(reply))
        if len(reply) < 12:
            raise GRPCError("Internal", "dns: overflow unpacking uint16")
        metrics.requests.labels(proxy.addr).inc()
        metrics.responses.labels(rcode_name(reply[3] & RCODE_MASK), proxy.addr).inc()
        metrics.request_duration.labels(proxy.addr).observe(self.reactor.seconds() - start)
        return reply
