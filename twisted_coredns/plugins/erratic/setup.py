"""erratic's setup: ``erratic { drop [AMOUNT]; truncate [AMOUNT]; delay [AMOUNT [DURATION]] }``."""

from __future__ import annotations

from ...corefile.model import Directive
from ...duration import parse_duration
from ...plugin import Controller
from ...strconv import go_quote, parse_int
from .handler import Erratic


def _amount(text: str) -> int:
    amount = parse_int(text, 32)
    if amount < 0:
        raise ValueError(f"illegal amount value given {go_quote(text)}")
    return amount


def setup(controller: Controller) -> Erratic:
    drop, delay, truncate, duration, large = 2, 0, 0, 0.1, False
    drop_seen = False
    for directive in controller.directives:
        for prop in directive.block or ():
            args = prop.values
            if prop.name == "drop":
                _at_most(controller, prop, 1)
                if args:
                    drop = _amount(args[0])
                    drop_seen = True
            elif prop.name == "delay":
                _at_most(controller, prop, 2)
                delay, duration = 2, 0.1
                if args:
                    delay = _amount(args[0])
                    if len(args) > 1:
                        duration = parse_duration(args[1])
            elif prop.name == "truncate":
                _at_most(controller, prop, 1)
                truncate = 2
                if args:
                    truncate = _amount(args[0])
            elif prop.name == "large":
                large = True
            else:
                raise controller.unknown_property(prop)
    if (delay > 0 or truncate > 0) and not drop_seen:
        drop = 0  # delay or truncate without an explicit drop: no dropping
    return Erratic(drop=drop, delay=delay, truncate=truncate, duration=duration, large=large,
                   reactor=controller.reactor)


def _at_most(controller: Controller, prop: Directive, count: int) -> None:
    if len(prop.args) > count:
        raise controller.arg_error(prop)
