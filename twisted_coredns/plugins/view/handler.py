"""The view handler: passes every query on; publishes ``view/name``; holds the compiled filter."""

from __future__ import annotations

from collections.abc import Callable
from operator import attrgetter
from typing import Any

from zope.interface import implementer

from ...plugin import Handler
from ...request import Request
from ..metadata import IMetadataProvider
from .expression import ExprError, Program, Scope

_DECISION_INPUTS: dict[str, Callable[[Request], Any]] = {
    "client_ip": lambda r: r.remote[0],
    "type": attrgetter("qtype"),
    "class": attrgetter("qclass"),
    "name": attrgetter("name"),
    "proto": attrgetter("proto"),
    "server_ip": attrgetter("local"),
    "server_port": attrgetter("local"),
}
"""The query functions whose values few queries tell apart: expressions that read only these
give the same decision for the same values, so it is remembered (``id``, ``port``, ``size`` and
the rest differ query by query; ``metadata`` is set per query)."""

_PURE = frozenset({"incidr"})
"""Functions of the environment whose value depends on their arguments alone."""

_DECISIONS = 4096
"""Decisions a view remembers before it forgets them all (a bound under a flood of new names)."""


def _decision_key(programs: list[Program]) -> Callable[[Request], Any] | None:
    """What a decision depends on, as a function of the request; None when it is not a few
    fields of the query."""
    reads: set[str] = set()
    for program in programs:
        reads |= program.reads
    reads -= _PURE
    if not reads <= _DECISION_INPUTS.keys():
        return None
    getters = list(dict.fromkeys(_DECISION_INPUTS[name] for name in sorted(reads)))
    if not getters:
        return lambda _r: None
    if len(getters) == 1:
        return getters[0]
    if len(getters) == 2:
        first, second = getters
        return lambda r: (first(r), second(r))
    return lambda r: tuple(get(r) for get in getters)


@implementer(IMetadataProvider)
class View(Handler):
    name = "view"

    def __init__(self, view_name: str, programs: list[Program]) -> None:
        self.view_name = view_name
        self.programs = programs
        self._key = _decision_key(programs)
        self._decided: dict[Any, bool] = {}

    def accepts(self, request: Request) -> bool:
        """CoreDNS's ``Filter``: every expression gives true; an error or a non-bool is false."""
        key_of = self._key
        if key_of is None:
            return self._evaluate(request)
        key = key_of(request)
        decided = self._decided.get(key)
        if decided is None:
            decided = self._evaluate(request)
            if len(self._decided) >= _DECISIONS:
                self._decided.clear()
            self._decided[key] = decided
        return decided

    def _evaluate(self, request: Request) -> bool:
        scope = Scope(request)
        for program in self.programs:
            try:
                if program.run(scope) is not True:
                    return False
            except (ExprError, ArithmeticError, TypeError, ValueError, AttributeError):
                return False
        return True

    def provide_metadata(self, request: Request) -> None:
        request.set_metadata("view/name", self.view_name)

    def serve(self, request: Request) -> Any:
        nxt = self.next
        return nxt.serve(request) if nxt is not None else self.serve_next(request)
