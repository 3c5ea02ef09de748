"""``rewrite [continue|stop] FIELD ...``, or the same words spread over a block: the rules of a
server block, in the order written (CoreDNS's ``rewriteParse`` and ``newRule``)."""

from __future__ import annotations

from collections.abc import Callable

from ...corefile import CorefileError
from ...corefile.model import Directive
from ...plugin import Controller
from .edns0 import new_edns0_rule
from .handler import Rewrite
from .rules import (
    CONTINUE,
    STOP,
    CnameRule,
    Rule,
    new_class_rule,
    new_cname_rule,
    new_name_rule,
    new_rcode_rule,
    new_ttl_rule,
    new_type_rule,
)

_MAKERS: dict[str, Callable[[str, list[str]], Rule]] = {
    "name": new_name_rule,
    "class": new_class_rule,
    "type": new_type_rule,
    "edns0": new_edns0_rule,
    "ttl": new_ttl_rule,
    "cname": new_cname_rule,
    "rcode": new_rcode_rule,
}


def new_rule(args: list[str]) -> Rule:
    """One rule from its words; ``ValueError`` with CoreDNS's text."""
    if not args:
        raise ValueError("no rule type specified for rewrite")
    first = args[0].lower()
    mode, start = STOP, 1
    if first in (CONTINUE, STOP):
        if len(args) < 2:
            raise ValueError(f"{first} rule must begin with a rule type")
        mode, start = first, 2
    kind = args[start - 1].lower()
    rest = args[start:]
    if kind == "answer":
        raise ValueError("response rewrites must begin with a name rule")
    maker = _MAKERS.get(kind)
    if maker is None:
        raise ValueError(f'invalid rule type "{args[0]}"')
    if kind in ("class", "type") and len(rest) != 2:
        raise ValueError(f"{kind} rules must have exactly two arguments")
    return maker(mode, rest)


def _words(directive: Directive) -> list[str]:
    words = list(directive.values)
    if len(words) < 2:
        # The rule's words may go in a block, any number to a line.
        for line in directive.block or ():
            words.append(line.name)
            words.extend(line.values)
    return words


def setup(controller: Controller) -> Rewrite:
    rules = []
    for directive in controller.directives:
        try:
            rules.append(new_rule(_words(directive)))
        except ValueError as exc:
            raise CorefileError(str(exc)) from None
    rewrite = Rewrite(rules)
    config = controller.config
    for rule in rules:
        if isinstance(rule, CnameRule):
            # Asked when a reply comes back, once the block's chain exists.
            rule.lookup = lambda request: config.chain.serve(request)  # type: ignore[union-attr]
    return rewrite
