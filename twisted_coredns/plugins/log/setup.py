"""Reading ``log`` lines: ``log [NAMES...] [FORMAT] { class CLASSES... }``, with CoreDNS's rules.

- no argument: every name (``.``), the Common Log Format;
- one argument: always a name, even ``{combined}`` (it becomes the name ``{combined}.``);
- two or more: the last one is the format when it contains ``{``, the others are names.
Names are made fully qualified and matched without regard to case. ``{common}`` and ``{combined}``
inside a format stand for the two standard formats. ``class`` lines (several are OR-ed) choose which
reply classes are logged; without one, all are. Several ``log`` lines in a block add rules, and the
first rule whose name matches a query decides whether and how it is logged.
"""

from __future__ import annotations

from ...dns.classify import ALL, class_from_string
from ...plugin import Controller
from .handler import Logger, Rule
from .replacer import DEFAULT_LOG_FORMAT, expand_shortcuts

__all__ = ["fqdn", "parse_rules", "setup"]


def _is_fqdn(name: str) -> bool:
    """miekg's ``IsFqdn``: ends in a dot that is not escaped."""
    if not name.endswith("."):
        return False
    backslashes = 0
    i = len(name) - 2
    while i >= 0 and name[i] == "\\":
        backslashes += 1
        i -= 1
    return backslashes % 2 == 0


def fqdn(name: str) -> str:
    """miekg's ``Fqdn``: ``name`` with a trailing dot."""
    return name if _is_fqdn(name) else name + "."


def parse_rules(controller: Controller) -> list[Rule]:
    """Every rule of every ``log`` line of the block, in order; CoreDNS's ``logParse``."""
    rules: list[Rule] = []
    for directive in controller.directives:
        args = directive.values
        fmt = DEFAULT_LOG_FORMAT
        if not args:
            names = ["."]
        elif len(args) == 1:
            names = [fqdn(args[0])]
        else:
            if "{" in args[-1]:
                fmt = expand_shortcuts(args[-1])
                args = args[:-1]
            names = [fqdn(a) for a in args]

        classes: set[str] = set()
        for prop in directive.block or ():
            if prop.name != "class":
                raise controller.unknown_property(prop)
            if not prop.args:
                raise controller.arg_error(prop)
            for arg in prop.args:
                # CoreDNS returns this one without a file and line.
                classes.add(class_from_string(arg.text))
            if prop.block is not None and prop.open_brace is not None:
                # caddy reads a '{' after the arguments as the next property.
                raise controller.err(prop.open_brace, "unknown property '{'")
        frozen = frozenset(classes or {ALL})
        rules.extend(Rule(name, fmt, frozen) for name in names)
    return rules


def setup(controller: Controller) -> Logger:
    return Logger(parse_rules(controller))
