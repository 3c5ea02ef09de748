"""any: the RFC 8482 answer to ANY queries (CoreDNS's plugin/any).

Answering ANY with everything a name holds makes a server a good amplifier; RFC 8482 lets it answer
with one small synthesized HINFO record instead. The record never changes except for its owner,
which is the question name, so it is encoded once with the owner as a pointer to the question.
"""

from __future__ import annotations

from typing import Any

from ..dns import ANY, QNAME, records
from ..plugin import Controller, Handler
from ..request import Request
from ..response import reply

CPU = "ANY obsoleted"
OS = "See RFC 8482"
TTL = 8482

# CoreDNS writes class IN whatever the query's class, and leaves AA unset.
_HINFO = records.hinfo(QNAME, TTL, CPU, OS)


class AnyHandler(Handler):
    name = "any"

    def serve(self, request: Request) -> Any:
        if request.qtype != ANY:
            return self.serve_next(request)
        return reply(request, answer=(_HINFO,), plugin="any")


def setup(controller: Controller) -> AnyHandler:
    for directive in controller.directives:
        controller.no_args(directive)
    return AnyHandler()
