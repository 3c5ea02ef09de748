"""header: sets or clears the AA, RA and RD flags of queries and of replies (CoreDNS's
plugin/header).

``query`` rules change the query the rest of the chain sees (a ``Request.replace``, never the
client's own), ``response`` rules the reply's header. Rules apply in the order written.
"""

from __future__ import annotations

from ..corefile import CorefileError
from ..corefile.model import Directive
from ..dns.constants import AA, RA, RD
from ..plugin import Controller, Handler
from ..request import Request
from ..response import HandlerResult, Response

_FLAGS = {"aa": AA, "ra": RA, "rd": RD}


def _masks(rules: list[tuple[int, bool]]) -> tuple[int, int]:
    """The rules folded into (bits to set, bits to keep): the last rule for a flag wins."""
    flags_set, keep = 0, 0xFFFF
    for bit, state in rules:
        if state:
            flags_set |= bit
        else:
            flags_set &= ~bit
            keep &= ~bit
    return flags_set, keep | flags_set


class Header(Handler):
    name = "header"

    def __init__(self, query_rules: list[tuple[int, bool]], response_rules: list[tuple[int, bool]]) -> None:
        self.query_rules = query_rules
        self.response_rules = response_rules
        self._query_set, self._query_keep = _masks(query_rules)
        self._reply_set, self._reply_keep = _masks(response_rules)

    def serve(self, request: Request) -> HandlerResult:
        if self.query_rules:
            flags = (request.flags | self._query_set) & self._query_keep
            if flags != request.flags:
                request = request.replace(flags=flags)
        if not self.response_rules:
            return self.serve_next(request)
        return self.serve_next_then(request, self._set_reply_flags)

    def _set_reply_flags(self, response: Response) -> Response:
        wire = response.wire
        if wire is None or len(wire) < 12:
            return response
        flags = (wire[2] << 8) | wire[3]
        changed = (flags | self._reply_set) & self._reply_keep
        if changed == flags:
            return response
        return Response(wire[:2] + changed.to_bytes(2, "big") + wire[4:], response.rcode, response.error,
                        response.plugin, response.has_opt)


def _rules(action: str, args: list[str]) -> list[tuple[int, bool]]:
    if action == "":
        raise ValueError("no flag action provided")
    if not args:
        raise ValueError("invalid length for flags, at least one should be provided")
    action = action.lower()
    if action not in ("set", "clear"):
        raise ValueError(f"unknown flag action={action}, should be set or clear")
    rules = []
    for arg in args:
        flag = arg.lower()
        if flag not in _FLAGS:
            raise ValueError(f"unknown/unsupported flag={flag}")
        rules.append((_FLAGS[flag], action == "set"))
    return rules


def _parse(directive: Directive) -> tuple[list[tuple[int, bool]], list[tuple[int, bool]]]:
    query: list[tuple[int, bool]] = []
    response: list[tuple[int, bool]] = []
    for line in directive.block or ():
        selector = line.name.lower()
        if selector not in ("query", "response"):
            raise CorefileError(f"setting up rule: invalid selector={selector} should be query or response")
        values = line.values
        try:
            rules = _rules(values[0] if values else "", values[1:])
        except ValueError as exc:
            raise CorefileError(f"setting up rule: {exc}") from None
        (response if selector == "response" else query).extend(rules)
    return query, response


def setup(controller: Controller) -> Header:
    # CoreDNS takes the first header directive of the block that has rules.
    for directive in controller.directives:
        if directive.args:
            raise controller.arg_error(directive)
        query, response = _parse(directive)
        if query or response:
            return Header(query, response)
    last = controller.directives[-1]
    raise controller.arg_error(last.close_brace or last)
