"""The rewrite handler: the rules run in order over a copy of the query, the copy goes down the
chain, and the reply comes back with the client's question and whatever the matched rules undo.

A query that no rule matches costs one pass over the rules' tests and no copy. When every rule
depends on the question alone (name, type, class, ttl and rcode rules), what they make of a
question is remembered, so a repeated question skips the rules. The reply is edited in its bytes
(``reverter``); only a ``cname`` rule, which asks the chain again and splices in what it gets, and
the rare reply those edits do not handle are rewritten as a dnspython message.
"""

from __future__ import annotations

from typing import Any

from ...clog import PluginLogger
from ...dns.constants import SERVFAIL
from ...plugin import Handler
from ...request import Request
from ...response import HandlerResult, Response, error_reply, then
from .answers import Reversal, undo_in_message
from .query import Query
from .reverter import Fallback, edit_message_fields, edit_reply
from .rules import STOP, Rule

log = PluginLogger("rewrite")

_PLANS_KEPT = 4096
"""Questions whose outcome a handler remembers (all forgotten when full, as whoami does)."""


class _Plan:
    """What the rules make of one question: nothing (``query`` None), a name that is no name
    (``invalid``), or the query to pass on and, with ``revert``, what to undo in the reply."""

    __slots__ = ("invalid", "inverse", "qclass", "qname", "qtype", "reversal", "revert")

    def __init__(self, query: Query | None, reversal: Reversal | None, revert: bool,
                 invalid: str | None = None) -> None:
        self.invalid = invalid
        self.revert = revert
        self.reversal = reversal
        self.qname = query.qname if query is not None else ""
        self.qtype = query.qtype if query is not None else 0
        self.qclass = query.qclass if query is not None else 0
        # The auto rewriters turn the name asked back into the client's in lower case.
        request = query.request if query is not None else None
        self.inverse = reversal is not None and reversal.inverse and request is not None and (
            not query.renamed or request.qname == request.name  # type: ignore[union-attr]
        )


_UNCHANGED = _Plan(None, None, False)
"""The plan of a question no rule changes."""


class Rewrite(Handler):
    name = "rewrite"

    def __init__(self, rules: list[Rule]) -> None:
        self.rules = rules
        self.by_question = all(rule.by_question for rule in rules)
        self._plans: dict[bytes, _Plan] = {}

    def serve(self, request: Request) -> HandlerResult:
        if not self.by_question:
            return self._serve(request)
        key = request.wire[12 : request.end_of_question]
        plan = self._plans.get(key)
        if plan is None:
            if len(self._plans) >= _PLANS_KEPT:
                self._plans.clear()
            plan = self._plans[key] = self._plan(request)
        if plan is _UNCHANGED:
            return self.serve_next(request)
        if plan.invalid is not None:
            return self._invalid(plan.invalid)
        rewritten = request.with_question(plan.qname, plan.qtype, plan.qclass)
        if not plan.revert:
            return self.serve_next(rewritten)
        reversal = plan.reversal
        assert reversal is not None
        result = self.serve_next(rewritten)
        if type(result) is Response:  # an answer now: no closure, no Deferred
            return _reply(request, key, rewritten, reversal, result, plan.inverse)
        inverse = plan.inverse
        return then(result, lambda response: _reply(request, key, rewritten, reversal, response, inverse))

    def _plan(self, request: Request) -> _Plan:
        """The rules over a question that depends on nothing else (``by_question``)."""
        query = Query(request)
        reversal, stopped = self._run(query)
        if isinstance(stopped, str) or (query.renamed and not query.name_is_valid()):
            return _Plan(None, None, False, query.qname)
        revert = stopped is True or (reversal is not None and not reversal.empty)
        if not revert and not query.changed:
            return _UNCHANGED
        return _Plan(query, reversal, revert)

    def _run(self, query: Query) -> tuple[Reversal | None, bool | str]:
        """The rules in order; what to undo, and whether a stop rule ended them (or the name a
        continue rule made that is no name)."""
        reversal: Reversal | None = None
        for rule in self.rules:
            found = rule.apply(query)
            if found is None:
                continue
            reversal = found if reversal is None else found.after(reversal)
            if rule.mode == STOP:
                return reversal, True
            if query.renamed and not query.name_is_valid():
                return reversal, query.qname
        return reversal, False

    def _serve(self, request: Request) -> HandlerResult:
        """The rules for this query alone (some depend on more than its question)."""
        query = Query(request)
        reversal, stopped = self._run(query)
        if isinstance(stopped, str):
            return self._invalid(stopped)
        # Without a stop rule and with nothing to undo, CoreDNS's reverter is not used: the reply
        # keeps the question the chain saw.
        revert = stopped is True or (reversal is not None and not reversal.empty)
        if not revert and not query.changed:
            return self.serve_next(request)
        try:
            rewritten = query.rewritten()
        except ValueError:
            return self._invalid(query.qname)
        if not revert:
            return self.serve_next(rewritten)
        assert reversal is not None
        inverse = reversal.inverse and (not query.renamed or request.qname == request.name)
        return self._reverted(request, rewritten, reversal, inverse)

    def _reverted(
        self, request: Request, rewritten: Request, reversal: Reversal, inverse: bool
    ) -> HandlerResult:
        question = request.question_wire
        result = self.serve_next(rewritten)
        if type(result) is Response:  # an answer now: no closure, no Deferred
            return _reply(request, question, rewritten, reversal, result, inverse)
        return then(result,
                    lambda response: _reply(request, question, rewritten, reversal, response, inverse))

    def _invalid(self, qname: str) -> Response:
        """CoreDNS's answer to a rule that made the name no name: SERVFAIL, and the error logged."""
        error = f"invalid name after rewrite: {qname}"
        log.error(error)
        return Response.not_written(SERVFAIL, error, self.name)


def _reply(
    request: Request, question: bytes, rewritten: Request, reversal: Reversal, response: Response,
    inverse: bool,
) -> Any:
    """The reply for the client: ``question`` is the question it asked (type and class included)."""
    if response.wire is None:
        # A bare rcode: CoreDNS writes it through the reverter, so the rules see it too.
        response = error_reply(rewritten, response.rcode, response.error)
    wire = response.wire
    if not wire:
        return response  # nothing is sent at all (Response.no_reply)
    if reversal.cnames:
        return _rewrite_message(request, reversal, response)
    asked = rewritten.wire[12 : rewritten.end_of_question]
    if reversal.empty and request.qname == rewritten.qname and wire.startswith(asked, 12):
        # A type or class rewrite: the question's name, and all that points at it, is the same.
        end = rewritten.end_of_question
        return Response(wire[: end - 4] + question[-4:] + wire[end:], response.rcode,
                        response.error, response.plugin, response.has_opt)
    try:
        wire = edit_reply(wire, question, request.qname, asked, rewritten.qname, reversal, inverse)
    except Fallback:
        return _rewrite_message(request, reversal, response)
    if not reversal.fields:
        return Response(wire, response.rcode, response.error, response.plugin, response.has_opt)
    return _with_fields(wire, reversal, response)


def _with_fields(wire: bytes, reversal: Reversal, response: Response) -> Response:
    try:
        wire, rcode = edit_message_fields(wire, reversal.fields)
    except (IndexError, ValueError):
        return Response(wire, None, response.error, response.plugin)  # not ours to read: as it is
    return Response(wire, rcode, response.error, response.plugin)


def _rewrite_message(request: Request, reversal: Reversal, response: Response) -> Any:
    """The slow way: the reply as a dnspython message, for a ``cname`` rule and for what the
    byte-level edits do not handle."""
    import dns.exception

    try:
        message = response.message()
    except dns.exception.DNSException:
        return response  # not ours to read: sent on as it is
    for cname in reversal.cnames:
        pending = cname.resolve(message)
        if pending is not None:
            return pending.addCallback(lambda _: _finish(request, reversal, response, message))
    return _finish(request, reversal, response, message)


def _finish(request: Request, reversal: Reversal, response: Response, message: Any) -> Response:
    import dns.exception
    import dns.name
    import dns.rrset

    question = dns.rrset.RRset(dns.name.from_text(request.qname), request.qclass, request.qtype)
    message.question = [question]
    try:
        undo_in_message(message, reversal)
        wire = message.to_wire(max_size=65535, want_shuffle=False)  # CoreDNS keeps the order
    except dns.exception.DNSException as exc:
        # An answer rule made something that is no name: CoreDNS cannot write such a reply.
        error = f"invalid name after rewrite of the reply: {exc}"
        log.error(error)
        return error_reply(request, SERVFAIL, error)
    done = Response(wire, message.rcode(), response.error, response.plugin, message.edns >= 0)
    return _with_fields(wire, reversal, done) if reversal.fields else done
