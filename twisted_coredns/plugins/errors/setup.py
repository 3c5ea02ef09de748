"""Reading ``errors [stdout] { stacktrace; consolidate DURATION REGEXP [LEVEL] [show_first] }``.

Once per server block. Every error is worded as CoreDNS words it, including its quirks: an
unknown block property is caddy's syntax error (``Unexpected token 'x', expecting 'Unknown field
x'``), and block words are read one at a time as caddy reads them, so ``stacktrace consolidate 1m
x`` on one line is two properties.
"""

from __future__ import annotations

from ...corefile.errors import syntax_error
from ...corefile.model import Token
from ...duration import parse_duration_ns
from ...goregexp import GoRegexpError, compile_go
from ...plugin import Controller
from .handler import ErrorHandler, Pattern

__all__ = ["MAX_REGEXP_LEN", "parse", "setup"]

MAX_REGEXP_LEN = 10000
"""CoreDNS refuses longer patterns (they could take much memory to compile)."""

_LEVELS = ("warning", "error", "info", "debug")


def _consolidate(controller: Controller, word: Token, args: list[Token]) -> Pattern:
    if len(args) < 2 or len(args) > 4:
        raise controller.arg_error(args[-1] if args else word)
    last = args[-1]  # caddy's current token once the arguments are read: errors point at its line
    try:
        period = parse_duration_ns(args[0].text)
    except ValueError as exc:
        raise controller.err(last, str(exc)) from None
    source = args[1].text
    size = len(source.encode("utf-8"))
    if size > MAX_REGEXP_LEN:
        raise controller.err(last, f"regex pattern too long: {size} > {MAX_REGEXP_LEN}")
    try:
        regexp = compile_go(source)
    except GoRegexpError as exc:
        raise controller.err(last, str(exc)) from None
    level = ""
    show_first = False
    for arg in args[2:]:
        if arg.text in _LEVELS:
            if level:
                raise controller.err(last, "multiple log levels specified in consolidate")
            if show_first:
                raise controller.err(last, "log level must come before show_first in consolidate")
            level = arg.text
        elif arg.text == "show_first":
            show_first = True
        else:
            raise controller.err(last, f"unknown option in consolidate: {arg.text}")
    return Pattern(period, regexp, level or "error", show_first)


def parse(controller: Controller) -> tuple[list[Pattern], bool]:
    """The consolidation patterns and whether ``stacktrace`` is on (CoreDNS's ``errorsParse``)."""
    patterns: list[Pattern] = []
    stacktrace = False
    for index, directive in enumerate(controller.directives):
        if index > 0:
            controller.once()  # raises CoreDNS's ErrOnce
        args = directive.args
        if len(args) == 1 and args[0].text != "stdout":
            raise controller.err(args[0], f"invalid log file: {args[0].text}")
        if len(args) > 1:
            raise controller.arg_error(directive)
        for prop in directive.block or ():
            # caddy hands the block over one word at a time; consolidate takes the rest of its line.
            words = [prop.token, *prop.args]
            i = 0
            while i < len(words):
                word = words[i]
                if word.text == "stacktrace":
                    stacktrace = True
                    i += 1
                elif word.text == "consolidate":
                    patterns.append(_consolidate(controller, word, words[i + 1 :]))
                    i = len(words)
                else:
                    raise syntax_error(word, word.text, f"Unknown field {word.text}")
            if prop.block is not None and prop.open_brace is not None:
                brace = prop.open_brace
                raise syntax_error(brace, brace.text, f"Unknown field {brace.text}")
    return patterns, stacktrace


def setup(controller: Controller) -> ErrorHandler:
    patterns, stacktrace = parse(controller)
    if stacktrace:
        # CoreDNS's Config.Stacktrace, for anything else that reports crashes of this block.
        controller.config.settings["stacktrace"] = True
    handler = ErrorHandler(patterns, controller.reactor, stacktrace)
    controller.on_shutdown(handler.stop)
    return handler
