"""``template CLASS TYPE [ZONE...] { match, var, expr, answer, additional, authority, rcode,
ederror, fallthrough, upstream }``, with CoreDNS's error texts."""

from __future__ import annotations

import re
from typing import Any

from ...corefile.model import Directive
from ...dns import Zones, class_value, rcode_value, type_name, type_value
from ...goregexp import GoRegexpError, compile_go
from ...plugin import Controller
from ...strconv import go_quote
from ..view.expression import (
    BUILTINS,
    Environment,
    ExprError,
    Function,
    compile_expression,
    default_environment,
    is_identifier,
)
from .gotemplate import Template as GoTemplate
from .gotemplate import TemplateError
from .handler import Rule, TemplateHandler, _group

MAX_REGEXP_LEN = 10000
_VAR_NAME = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")
_RCODES = {"NOERROR": 0, "FORMERR": 1, "SERVFAIL": 2, "NXDOMAIN": 3, "NOTIMP": 4, "REFUSED": 5,
           "YXDOMAIN": 6, "YXRRSET": 7, "NXRRSET": 8, "NOTAUTH": 9, "NOTZONE": 10, "BADSIG": 16,
           "BADVERS": 16, "BADKEY": 17, "BADTIME": 18, "BADMODE": 19, "BADNAME": 20, "BADALG": 21,
           "BADTRUNC": 22, "BADCOOKIE": 23}
"""miekg's ``StringToRcode``."""
_CLASSES = {"IN": 1, "CS": 2, "CH": 3, "HS": 4, "NONE": 254, "ANY": 255}


def _parse_uint(text: str, bits: int) -> int:
    if not text.isdigit():
        raise ValueError(f'strconv.ParseUint: parsing {go_quote(text)}: invalid syntax')
    value = int(text)
    if value >= 1 << bits:
        raise ValueError(f'strconv.ParseUint: parsing {go_quote(text)}: value out of range')
    return value


def subexp_names(pattern: str) -> list[str]:
    """Go's ``SubexpNames`` without the leading "": the name of each capturing group, in order
    ("" for an unnamed one). The translated Python pattern keeps the groups but not their names."""
    names: list[str] = []
    i, in_class = 0, False
    while i < len(pattern):
        ch = pattern[i]
        if ch == "\\":
            i += 2
            continue
        if in_class:
            if ch == "]":
                in_class = False
        elif ch == "[":
            in_class = True
            if pattern[i + 1 : i + 2] == "^":
                i += 1
            if pattern[i + 1 : i + 2] == "]":
                i += 1
        elif ch == "(":
            named = re.match(r"\(\?P?<([A-Za-z0-9_]+)>", pattern[i:])
            if named:
                names.append(named.group(1))
            elif pattern[i + 1 : i + 2] != "?":
                names.append("")
        i += 1
    return names


def _parse_int_func(s: Any, base: Any, bits: Any) -> int:
    """CoreDNS's ``parseInt``: Go's ``strconv.ParseUint(s, base, bitSize)``."""
    text = str(s)
    try:
        value = int(text, int(base)) if text and text[0] not in "+-" else None
    except ValueError:
        value = None
    if value is None:
        raise ValueError(f"strconv.ParseUint: parsing {go_quote(text)}: invalid syntax")
    if value >= 1 << int(bits):
        raise ValueError(f"strconv.ParseUint: parsing {go_quote(text)}: value out of range")
    return value


def _template(controller: Controller, prop: Directive, section: str, text: str) -> GoTemplate:
    try:
        return GoTemplate(section, text, {"parseInt": _parse_int_func})
    except TemplateError as exc:
        raise controller.err(prop.token, f"could not compile template: {prop.name}, {exc}") from None


def _expr_env() -> Environment:
    env = default_environment()
    env.functions["group"] = Function(_group, (1, 1), "string")
    return env


def _rule(controller: Controller, directive: Directive) -> Rule:
    args = directive.args
    if not args:
        raise controller.arg_error(directive)
    qclass = _CLASSES.get(args[0].text)
    if qclass is None:
        raise controller.err(args[0], f"invalid query class {args[0].text}")
    if len(args) < 2:
        raise controller.arg_error(args[0])
    try:
        qtype = type_value(args[1].text)
        if type_name(qtype) != args[1].text:
            raise ValueError(args[1].text)
    except ValueError:
        raise controller.err(args[1], f"invalid RR class {args[1].text}") from None
    zones = controller.origins(list(args[2:]))
    rule = Rule(qclass, qtype, Zones(zones), [])
    env = _expr_env()
    for prop in directive.block or ():
        values = prop.values
        key = prop.name
        if key == "match":
            if not values:
                raise controller.arg_error(prop)
            for regex in values:
                if len(regex) > MAX_REGEXP_LEN:
                    raise controller.err(prop.token,
                                         f"regex pattern too long: {len(regex)} > {MAX_REGEXP_LEN}")
                try:
                    compiled = compile_go(regex)
                except GoRegexpError as exc:
                    raise controller.err(prop.token, f"could not parse regex: {regex}, {exc}") from None
                rule.regexes.append((regex, re.compile(compiled.python), subexp_names(regex)))
        elif key in ("answer", "additional", "authority"):
            if not values:
                raise controller.arg_error(prop)
            getattr(rule, key).extend(_template(controller, prop, key, text) for text in values)
        elif key == "var":
            if len(values) < 2:
                raise controller.arg_error(prop.args[-1] if prop.args else prop)
            name = values[0]
            if not _VAR_NAME.match(name):
                raise controller.err(prop.token, f"invalid variable name {go_quote(name)}")
            if name in env.functions or name in env.variables or name in BUILTINS \
                    or name in ("any", "all", "none", "one", "filter", "map", "count") \
                    or not is_identifier(name):
                raise controller.err(prop.token, f"variable name {go_quote(name)} is reserved")
            try:
                program = compile_expression(" ".join(values[1:]), env)
            except ExprError as exc:
                raise controller.err(prop.token, f"could not compile expression: {name}, {exc}") from None
            env.variables[name] = program.type
            rule.variables.append((name, program))
        elif key == "expr":
            if not values:
                raise controller.arg_error(prop)
            try:
                rule.conditions.append(compile_expression(" ".join(values), env))
            except ExprError as exc:
                raise controller.err(prop.token, f"could not compile expression: {exc}") from None
        elif key == "rcode":
            if not values:
                raise controller.arg_error(prop)
            if values[0] not in _RCODES:
                raise controller.err(prop.args[0], f"unknown rcode {values[0]}")
            rule.rcode = _RCODES[values[0]]
        elif key == "ederror":
            if len(values) not in (1, 2):
                raise controller.arg_error(prop.args[-1] if prop.args else prop)
            try:
                code = _parse_uint(values[0], 16)
            except ValueError as exc:
                message = f"error parsing extended DNS error code {prop.args[-1].text}, {exc}\n"
                raise controller.err(prop.args[-1], message) from None
            rule.ederror = (code, values[1] if len(values) == 2 else "")
        elif key == "fallthrough":
            rule.fall = Zones(controller.origins(list(prop.args))) if prop.args else Zones([])
        elif key == "upstream":
            pass  # CoreDNS ignores its arguments: a CNAME is always resolved through this server
        else:
            raise controller.arg_error(prop)
    if not rule.regexes:
        rule.regexes.append((".*", re.compile(".*"), []))
    return rule


def setup(controller: Controller) -> TemplateHandler:
    rules = [_rule(controller, d) for d in controller.directives]
    return TemplateHandler(rules, controller.config, controller.reactor)


__all__ = ["class_value", "rcode_value", "setup"]
