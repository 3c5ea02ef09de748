"""The log plugin's handler: one INFO line per query, after the rest of the chain has answered.

The line is formatted only for queries a rule logs, from the reply the chain returned; a chain that
answers synchronously is observed without a Deferred (``Handler.serve_next_then``). When nothing was
written (CoreDNS's SERVFAIL/REFUSED/FORMERR/NOTIMP "not written" results, or a handler that raised),
the line shows the bare error reply CoreDNS would have made for it.
"""

from __future__ import annotations

from typing import Any

from twisted.python.failure import Failure

from ...clog import PluginLogger
from ...dns import FORMERR, NOTIMP, REFUSED, SERVFAIL, flags_of, is_subdomain, normalize, reply_flags
from ...dns.classify import ALL, OTHER_ERROR, classify, typify_rcode_only, typify_wire
from ...plugin import Handler
from ...request import Request
from ...response import Response
from .replacer import Recorded, Replacer

__all__ = ["Logger", "Rule"]

# plugin.ClientWrite is false for these: the server writes the reply itself, and the log line shows
# that reply. Any other rcode without a message logs "-" for the rcode and flags.
_SERVER_WRITES = frozenset({FORMERR, SERVFAIL, NOTIMP, REFUSED})


class Rule:
    """One name scope of a ``log`` line: which names, which reply classes, which format."""

    __slots__ = ("_scope_lower", "classes", "everything", "log_all", "replacer", "scope")

    def __init__(self, scope: str, fmt: str, classes: frozenset[str]) -> None:
        self.scope = scope
        self.classes = classes
        self.replacer = Replacer(fmt)
        self.log_all = ALL in classes
        self.everything = scope == "."
        self._scope_lower = normalize(scope)

    @property
    def format(self) -> str:
        return self.replacer.format

    def matches(self, name: str) -> bool:
        return self.everything or is_subdomain(name, self._scope_lower)

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
        return self.serve_next_then(
            request,
            lambda response: self._observed(rule, request, response),
            lambda failure: self._failed(failure, rule, request),
        )

    def _observed(self, rule: Rule, request: Request, response: Any) -> Any:
        if isinstance(response, Response):
            self.observe(rule, request, response)
        return response

    def _failed(self, failure: Failure, rule: Rule, request: Request) -> Failure:
        # A crash is the chain's SERVFAIL: log it, and let the server (or errors) report it.
        self.observe(rule, request, Response.not_written(SERVFAIL))
        return failure

    def observe(self, rule: Rule, request: Request, response: Response) -> None:
        """Log ``response`` to ``request`` if ``rule``'s classes take it."""
        if request.metadata is not None:
            self._publish(request, response)
        if not rule.log_all and classify(self.typify(request, response)) not in rule.classes:
            return
        wire = response.wire
        if wire is not None:
            recorded = Recorded(response.rcode, flags_of(wire), len(wire), request.start)
        elif response.rcode in _SERVER_WRITES:
            # The bare reply the server writes for it: the question, and the flags every reply gets.
            flags = reply_flags(request.flags, response.rcode)
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
