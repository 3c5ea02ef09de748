"""minimal: replies with only the answer section when the answer is a positive one (CoreDNS's
plugin/minimal, the "minimal-responses" of other servers).

A NOERROR reply with answers loses its authority and additional records; denials, errors and
delegations pass as they are, where those sections are the point.
"""

from __future__ import annotations

from ..dns.classify import DELEGATION, DENIAL, ERROR, NO_ERROR, classify, typify_wire
from ..dns.header import HEADER
from ..dns.wire import WireError, records, skip_question
from ..plugin import Controller, Handler
from ..request import Request
from ..response import HandlerResult, Response


class Minimal(Handler):
    name = "minimal"

    def serve(self, request: Request) -> HandlerResult:
        return self.serve_next_then(request, lambda response: self._strip(request, response))

    def _strip(self, request: Request, response: Response) -> Response:
        wire = response.wire
        if wire is None:
            return response
        kind = typify_wire(wire, request.qtype, response.rcode)
        if kind == DELEGATION or classify(kind) in (DENIAL, ERROR) or kind != NO_ERROR:
            # CoreDNS logs an error for the types it does not expect (META, UPDATE) and sends them on.
            return response
        try:
            qid, flags, qd, an, ns, ar = HEADER.unpack_from(wire)
            if not ns and not ar:
                return response
            end = skip_question(wire, qd)
            for _section, _start, _type, _class, _ttl, _rdata, record_end in records(wire, end, an, 0, 0):
                end = record_end
        except (WireError, IndexError, ValueError):
            return response
        # The OPT record goes too; the server adds the client's back (CoreDNS's SizeAndDo).
        stripped = HEADER.pack(qid, flags, qd, an, 0, 0) + wire[12:end]
        return Response(stripped, response.rcode, response.error, response.plugin, False)


def setup(controller: Controller) -> Minimal:
    directive = controller.directives[0]
    controller.no_args(directive)
    return Minimal()
