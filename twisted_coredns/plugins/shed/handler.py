"""shed's handler.

CoreDNS's shed exists because Go answers each UDP query on its own goroutine and every one of them
writes to the socket: past a million waiting writers the runtime panics. Here one reactor thread
writes every reply as soon as it is ready, so there is never more than one writer; what can pile
up without bound is the queries a listener has taken in and not answered yet (each holding a
Deferred, waiting on an upstream). shed bounds that pile per listener at CoreDNS's stack depth:
while it is full, a new UDP query is dropped before any plugin runs, silently (the client's
resolver retries elsewhere), and counted under ``reason="query"``. A reply that comes after the
listener stopped is counted under ``reason="response"``. TCP passes untouched.
"""

from __future__ import annotations

from typing import Any

from twisted.python.failure import Failure

from ...plugin import Handler
from ...request import Request
from ...response import Response, then
from .metrics import dropped

STACK_DEPTH = 1024
"""CoreDNS's fixed burst budget per listener socket; not a setting."""


class _Listener:
    __slots__ = ("dropped_query", "dropped_response", "in_flight")

    def __init__(self, server: str) -> None:
        self.in_flight = 0
        self.dropped_query = dropped.labels(server, "query")
        self.dropped_response = dropped.labels(server, "response")


class Shed(Handler):
    name = "shed"

    def __init__(self, depth: int = STACK_DEPTH) -> None:
        self.depth = depth
        self.listeners: dict[str, _Listener] = {}
        self.stopped = False

    def serve(self, request: Request) -> Any:
        if request.proto != "udp":
            return self.serve_next(request)
        listener = self.listeners.get(request.server)
        if listener is None:
            listener = self.listeners[request.server] = _Listener(request.server)
        if listener.in_flight >= self.depth:
            listener.dropped_query.inc()
            return Response.no_reply(self.name)
        result = self.serve_next(request)
        if type(result) is Response:
            return result  # answered at once: it never waited
        listener.in_flight += 1
        return then(result, lambda response: self._answered(listener, response),
                    lambda failure: self._failed(listener, failure))

    def _answered(self, listener: _Listener, response: Response) -> Response:
        listener.in_flight -= 1
        if self.stopped:
            listener.dropped_response.inc()
            return Response.no_reply(self.name)
        return response

    @staticmethod
    def _failed(listener: _Listener, failure: Failure) -> Failure:
        listener.in_flight -= 1
        return failure

    def shutdown(self) -> None:
        self.stopped = True
