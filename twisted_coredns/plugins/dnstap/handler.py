"""The dnstap handler: a CLIENT_QUERY message when a query comes in, a CLIENT_RESPONSE when the
rest of the chain has answered it.

Each ``Tap`` is one ``dnstap`` line: where its messages go (an ``Output`` to a collector, or a
``Listener`` for sinks that connect), whether they carry the wire messages (``full``), and the
identity, version and extra text they are stamped with. A message is encoded only after its sink
said it would take it, so a tap whose collector is away costs a check and a count per message.

As in CoreDNS, a reply the chain did not write (a bare rcode, which the server writes itself) and a
chain that raised give no CLIENT_RESPONSE. The reply's bytes in a ``full`` message are the ones
the client gets: the query's ID, the OPT record and the truncation the server applies.
"""

from __future__ import annotations

import time
from typing import Any, Protocol

from twisted.internet.defer import DeferredList

from ...plugin import Handler
from ...request import Request
from ...response import Response, finish
from ..log.replacer import Replacer
from .message import PayloadEncoder, address_fields, client_query, client_response

__all__ = ["Dnstap", "Sink", "Tap"]


class Sink(Protocol):
    """Where a tap's frames go: ``output.Output`` or ``listener.Listener``."""

    def admit(self) -> bool: ...

    def put(self, frame: bytes) -> None: ...

    def start(self) -> None: ...

    def stop(self) -> Any: ...


class Tap:
    """One ``dnstap`` line, set up."""

    __slots__ = ("_encoder", "_extra", "_replacer", "extra", "full", "identity", "sink", "version")

    def __init__(self, sink: Sink, *, full: bool, identity: bytes, version: bytes, extra: str = "") -> None:
        self.sink = sink
        self.full = full
        self.identity = identity
        self.version = version
        self.extra = extra
        self._encoder = PayloadEncoder(identity, version)
        # CoreDNS fills placeholders in the extra text per message (metadata set further down the
        # chain shows in the reply's message); a text without braces is the same every time.
        self._replacer = Replacer(extra) if "{" in extra else None
        self._extra = extra.encode() if extra else None

    def frame(self, message: bytes, request: Request) -> bytes:
        """The data frame carrying ``message``, with this tap's identity, version and extra."""
        replacer = self._replacer
        if replacer is None:
            return self._encoder.frame(message, self._extra)
        return self._encoder.frame(message, replacer.replace(request, None).encode())

    def __repr__(self) -> str:
        return f"<Tap {self.sink!r} full={self.full}>"


class Dnstap(Handler):
    """Taps every query and reply that passes, to every ``Tap`` of the block, in order."""

    name = "dnstap"

    def __init__(self, taps: list[Tap]) -> None:
        self.taps = tuple(taps)

    def serve(self, request: Request) -> Any:
        query_time = time.time_ns()
        addresses = None
        for tap in self.taps:
            sink = tap.sink
            if sink.admit():
                if addresses is None:
                    addresses = address_fields(request.remote, request.proto, request.local)
                message = client_query(addresses, query_time, request.wire if tap.full else None)
                sink.put(tap.frame(message, request))
        return self.serve_next_then(request, lambda response: self._responded(request, query_time, response))

    def _responded(self, request: Request, query_time: int, response: Response) -> Response:
        if response.wire is None:
            return response
        response_time = 0
        addresses = wire = None
        for tap in self.taps:
            sink = tap.sink
            if not sink.admit():
                continue
            if addresses is None:
                response_time = time.time_ns()
                addresses = address_fields(request.remote, request.proto, request.local)
            if tap.full and wire is None:
                wire = finish(request, response)
            message = client_response(addresses, query_time, response_time, wire if tap.full else None)
            sink.put(tap.frame(message, request))
        return response

    def start(self) -> None:
        for tap in self.taps:
            tap.sink.start()

    def stop(self) -> Any:
        return DeferredList([tap.sink.stop() for tap in self.taps], consumeErrors=True)
