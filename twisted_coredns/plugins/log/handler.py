"""The log plugin's handler: one INFO line per query, after the rest of the chain has answered.

The line is formatted only for queries a rule logs, from the reply the chain returned; a chain that
answers synchronously is observed without a Deferred (``server.router.then``). When nothing was
written (CoreDNS's SERVFAIL/REFUSED/FORMERR/NOTIMP "not written" results, or a handler that raised),
the line shows the bare error reply CoreDNS would have made for it.
"""

from __future__ import annotations

from typing import Any

from twisted.python.failure import Failure

from ...clog import PluginLogger
from ...plugin import Handler
from ...request import FLAG_CD, FLAG_QR, FLAG_RD, Request
from ...response import Response
from ...response_type import ALL, OTHER_ERROR, classify, typify_rcode_only, typify_wire
from ...server.router import then
from .replacer import Recorded, Replacer

__all__ = ["Logger", "Rule"]

_SERVFAIL = 2
# plugin.ClientWrite is false for these: the server writes the reply itself, and the log line shows
# that reply. Any other rcode without a message logs "-" for the rcode and flags.
_SERVER_WRITES = frozenset({1, 2, 4, 5})


def _is_subdomain(scope: str, name: str) -> bool:
    """CoreDNS's ``plugin.Name(scope).Matches(name)`` for lower-case names: the same name, or a
    name below it (an escaped dot is part of a label, not a label boundary)."""
    if name == scope:
        return True
    if scope == ".":
        return True
    cut = len(name) - len(scope) - 1
    if cut < 0 or not name.endswith(scope) or name[cut] != ".":
        return False
    backslashes = 0
    i = cut - 1
    while i >= 0 and name[i] == "\\":
        backslashes += 1
        i -= 1
    return backslashes % 2 == 0


class Rule:
    """One name scope of a ``log`` line: which names, which reply classes, which format."""

    __slots__ = ("_scope_lower", "classes", "everything", "log_all", "replacer", "scope")

    def __init__(self, scope: str, fmt: str, classes: frozenset[str]) -> None:
        self.scope = scope
        self.classes = classes
        self.replacer = Replacer(fmt)
        self.log_all = ALL in classes
        self.everything = scope == "."
        self._scope_lower = scope.lower()

    @property
    def format(self) -> str:
        return self.replacer.format

    def matches(self, name: str) -> bool:
        return self.everything or _is_subdomain(self._scope_lower, name)

    def __repr__(self) -> str:
        return f"Rule({self.scope!r}, {self.format!r}, {sorted(self.classes)})"


class Logger(Handler):
    """Logs each query that a rule matches, with that rule's format; the first matching rule
    decides, as in CoreDNS."""

    name = "log"

    def __init__(self, rules: list[Rule]) -> None:
        self.rules = tuple(rules)
        self._log = PluginLogger("log")
        self._log.prefix = ""  # query lines are printed bare, as CoreDNS's clog.Info prints them
        # The common case (a bare ``log``): every name, so no rule search per query.
        self._only = rules[0] if len(rules) == 1 and rules[0].everything else None

    def _rule_for(self, name: str) -> Rule | None:
        for rule in self.rules:
            if rule.matches(name):
                return rule
        return None

    def serve(self, request: Request) -> Any:
        rule = self._only
        if rule is None:
            rule = self._rule_for(request.name)
            if rule is None:
                return self.serve_next(request)
        try:
            result = self.serve_next(request)
        except Exception:
            # A crash is the chain's SERVFAIL: log it, and let the server (or errors) report it.
            self.observe(rule, request, Response.not_written(_SERVFAIL))
            raise
        if type(result) is Response:
            self.observe(rule, request, result)
            return result
        out = then(result, lambda response: self._observed(rule, request, response))
        if hasattr(out, "addErrback"):
            out.addErrback(self._failed, rule, request)
        return out

    def _observed(self, rule: Rule, request: Request, response: Any) -> Any:
        if isinstance(response, Response):
            self.observe(rule, request, response)
        return response

    def _failed(self, failure: Failure, rule: Rule, request: Request) -> Failure:
        self.observe(rule, request, Response.not_written(_SERVFAIL))
        return failure

    def observe(self, rule: Rule, request: Request, response: Response) -> None:
        """Log ``response`` to ``request`` if ``rule``'s classes take it."""
        if request.metadata is not None:
            self._publish(request, response)
        if not rule.log_all and classify(self.typify(request, response)) not in rule.classes:
            return
        wire = response.wire
        if wire is not None:
            recorded = Recorded(response.rcode, (wire[2] << 8) | wire[3], len(wire), request.start)
        elif response.rcode in _SERVER_WRITES:
            # The reply the server writes for it: the question, QR, opcode, RD and CD copied.
            flags = FLAG_QR | (request.flags & 0x7800) | (response.rcode & 0xF)
            if not request.flags & 0x7800:
                flags |= request.flags & (FLAG_RD | FLAG_CD)
            recorded = Recorded(response.rcode, flags, request.end_of_question, request.start)
        else:
            recorded = Recorded(None, None, 0, request.start)
        self._log.info(rule.replacer.replace(request, recorded))

    @staticmethod
    def typify(request: Request, response: Response) -> str:
        """The response type (``NOERROR``, ``NXDOMAIN``, ``NODATA``, ...) of what the chain
        returned, as CoreDNS's ``response.Typify`` sees the recorded message."""
        if response.wire is not None:
            return typify_wire(response.wire, request.qtype, response.rcode)
        if response.rcode in _SERVER_WRITES:
            return typify_rcode_only(request.opcode, request.qtype, response.rcode)
        return OTHER_ERROR

    def _publish(self, request: Request, response: Response) -> None:
        # CoreDNS's log/type and log/class metadata, for plugins and formats that read metadata
        # once the reply is known; computed only if someone reads them.
        cache: list[str] = []

        def rtype() -> str:
            if not cache:
                cache.append(self.typify(request, response))
            return cache[0]

        request.set_metadata("log/type", rtype)
        request.set_metadata("log/class", lambda: classify(rtype()))
