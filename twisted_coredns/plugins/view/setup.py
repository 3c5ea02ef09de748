"""``view NAME { expr EXPRESSION }``: the block's filter, compiled once."""

from __future__ import annotations

from ...plugin import Controller
from .expression import ExprError, compile_expression, default_environment
from .handler import View


def setup(controller: Controller) -> View:
    directive = controller.once()
    if len(directive.args) != 1:
        raise controller.arg_error(directive)
    env = default_environment()
    programs = []
    for prop in directive.block or ():
        if prop.name != "expr":
            raise controller.unknown_property(prop)
        text = " ".join(prop.values)
        try:
            programs.append(compile_expression(text, env))
        except ExprError as exc:
            raise controller.err(prop.token, str(exc)) from None
    view = View(directive.values[0], programs)
    config = controller.config
    config.view_name = view.view_name
    config.settings["view"] = view.view_name
    config.filters.append(view.accepts)
    return view
