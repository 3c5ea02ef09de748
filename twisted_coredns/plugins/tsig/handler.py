"""The ``tsig`` handler: checks signed queries, refuses unsigned ones where a signature is
required, and signs the replies.

Unsigned queries pay one look at the header's additional count: a query with no additional
record, or only its OPT record, cannot carry a TSIG record.
"""

from __future__ import annotations

from typing import Any

from ...clog import PluginLogger
from ...dns.constants import NOTAUTH, REFUSED, type_name
from ...dns.names import Zones
from ...dns.wire import WireError
from ...plugin import Handler
from ...request import MalformedQuery, Request
from ...response import Response, error_reply, finish, truncate
from .session import TsigSession, strip, tsig_record, verify

log = PluginLogger("tsig")

SESSION = "tsig/session"
"""The request metadata key under which a verified query's ``TsigSession`` is found."""


class TsigServer(Handler):
    name = "tsig"

    def __init__(
        self,
        zones: list[str],
        secrets: dict[str, str],
        qtypes: frozenset[int] | None,
        opcodes: frozenset[int] | None,
        clock: Any,
    ) -> None:
        self.zones = Zones(zones)
        self.secrets = secrets
        self.qtypes = qtypes
        """The query types that must be signed; None for all of them."""
        self.opcodes = opcodes
        """The opcodes that must be signed; None for all of them."""
        self.clock = clock

    def required(self, qtype: int, opcode: int) -> bool:
        return (
            self.qtypes is None or qtype in self.qtypes or self.opcodes is None or opcode in self.opcodes
        )

    def serve(self, request: Request) -> Any:
        wire = request.wire
        additional = (wire[10] << 8) | wire[11]
        where = None
        if additional > 1 or (additional == 1 and request.edns_version < 0):
            where = tsig_record(wire)
        if where is None and not self.required(request.qtype, request.opcode):
            return self.serve_next(request)
        if self.zones.matches(request.name) is None:
            return self.serve_next(request)
        if where is None:
            log.debug(f"rejecting '{type_name(request.qtype)}' request without TSIG")
            return error_reply(request, REFUSED)
        try:
            session = verify(wire, where, self.secrets, int(self.clock.seconds()))
            inner = self._stripped(request, strip(wire, where[0]))
        except (WireError, MalformedQuery) as exc:
            return Response.not_written(1, f"plugin/tsig: {exc}", self.name)
        inner.set_metadata(SESSION, session)
        if not session.ok:
            log.debug(f"TSIG validation failed: {type_name(request.qtype)} {_ERRORS.get(session.error)}")
            return self._signed(inner, session, error_reply(inner, NOTAUTH))
        return self.serve_next_then(inner, lambda response: self._signed(inner, session, response))

    @staticmethod
    def _stripped(request: Request, wire: bytes) -> Request:
        inner = Request(wire, request.remote, request.proto, request.local, request.server)
        inner.start = request.start
        inner.zone = request.zone
        inner.metadata = dict(request.metadata) if request.metadata else None
        return inner

    def _signed(self, request: Request, session: TsigSession, response: Response) -> Response:
        if session.signed_by_chain:
            return response  # a zone transfer, signed message by message by ``transfer``
        wire = finish(request, response)
        room = request.size - session.record_size
        if len(wire) > room:
            wire = truncate(wire, room)
        return Response(session.sign(wire), response.rcode, response.error, response.plugin, True)


_ERRORS = {16: "dns: bad signature", 17: "dns: bad secret", 18: "dns: bad time"}
"""miekg/dns's texts for the TSIG errors, as CoreDNS's debug line prints them."""
