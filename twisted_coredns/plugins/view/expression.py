"""The expr-lang subset that CoreDNS's ``view`` and ``template`` plugins evaluate, compiled once.

An expression is tokenized, parsed by precedence climbing and turned into a tree of Python
closures: no ``eval``, and nothing but the functions named in the environment can be reached. A
name the environment does not know, a call with the wrong arity, or operands of ``+ - * / %``
whose types are known and do not mix is an error at compile time, as expr-lang's checker makes it.

What is covered: string (single or double quoted), int, float, bool and nil literals; arrays
``[...]``; ``! not - +``; ``* / % **``; ``+ -``; ``== != < > <= >=``, ``in``, ``not in``,
``matches`` (a Go regexp), ``contains``, ``startsWith``, ``endsWith``; ``&& and``, ``|| or``;
``a ? b : c``; ``a ?? b``; calls, ``x[i]`` and ``x.field``; the builtins below, with predicates
using ``#`` (``any(list, incidr(ip, #))``).
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from ...goregexp import GoRegexpError, compile_go

Value = Any
Evaluator = Callable[["Scope"], Value]


class ExprError(ValueError):
    """An expression that does not compile, or fails while it runs."""


class Scope:
    """What one evaluation sees: the query, the extra functions' state, the variables, ``#``."""

    __slots__ = ("data", "pointer", "request", "variables")

    def __init__(self, request: Any, data: Any = None, variables: dict[str, Value] | None = None) -> None:
        self.request = request
        self.data = data
        self.variables = variables if variables is not None else {}
        self.pointer: Value = None


@dataclass(frozen=True)
class Function:
    """A function of the environment: ``impl(scope, *args)``; ``returns`` its static type."""

    impl: Callable[..., Value]
    arity: tuple[int, int]
    returns: str = "any"


@dataclass
class Environment:
    """Names an expression may use: functions, and variables with their static types."""

    functions: dict[str, Function] = field(default_factory=dict)
    variables: dict[str, str] = field(default_factory=dict)

    def copy(self) -> Environment:
        return Environment(dict(self.functions), dict(self.variables))

    def names(self) -> set[str]:
        return set(self.functions) | set(self.variables) | set(BUILTINS) | set(_PREDICATES)


# -- tokens -------------------------------------------------------------------------------

_TOKEN = re.compile(
    r"""\s*(?:
      (?P<float>\d+\.\d+(?:[eE][+-]?\d+)?|\d+[eE][+-]?\d+)
    | (?P<int>0[xX][0-9a-fA-F_]+|\d[\d_]*)
    | (?P<string>"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*')
    | (?P<name>[A-Za-z_$][A-Za-z0-9_$]*)
    | (?P<op>==|!=|<=|>=|&&|\|\||\*\*|\?\?|\.\.|[-+*/%<>!()\[\]{},.?:\#])
    )""",
    re.VERBOSE,
)
_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", "\\": "\\", "'": "'", '"': '"', "0": "\0", "a": "\a",
            "b": "\b", "f": "\f", "v": "\v"}
_WORD_OPS = {"and", "or", "not", "in", "matches", "contains", "startsWith", "endsWith"}
_KEYWORDS = {"true", "false", "nil", "let", *_WORD_OPS}


@dataclass(frozen=True)
class _Token:
    kind: str  # "int" "float" "string" "name" "op" "end"
    text: str
    pos: int


def _unquote(text: str) -> str:
    body, out, i = text[1:-1], [], 0
    while i < len(body):
        ch = body[i]
        if ch == "\\" and i + 1 < len(body):
            nxt = body[i + 1]
            if nxt in _ESCAPES:
                out.append(_ESCAPES[nxt])
                i += 2
                continue
            if nxt in "xuU":
                width = {"x": 2, "u": 4, "U": 8}[nxt]
                digits = body[i + 2 : i + 2 + width]
                try:
                    out.append(chr(int(digits, 16)))
                except ValueError:
                    raise ExprError(f"invalid char escape \\{nxt}{digits}") from None
                i += 2 + width
                continue
            raise ExprError(f"invalid char escape \\{nxt}")
        out.append(ch)
        i += 1
    return "".join(out)


def _tokenize(text: str) -> list[_Token]:
    tokens, pos = [], 0
    while True:
        while pos < len(text) and text[pos].isspace():
            pos += 1
        if pos >= len(text):
            tokens.append(_Token("end", "", pos))
            return tokens
        m = _TOKEN.match(text, pos)
        if m is None or m.end() == pos:
            raise ExprError(f"unexpected token {text[pos]!r} (1:{pos + 1})")
        kind = m.lastgroup or "op"
        tokens.append(_Token(kind, m.group(kind), m.start(kind)))
        pos = m.end()


# -- values -------------------------------------------------------------------------------


def _type_of(value: Value) -> str:
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        return "int"
    if isinstance(value, float):
        return "float"
    if isinstance(value, str):
        return "string"
    if value is None:
        return "nil"
    if isinstance(value, list | tuple):
        return "array"
    return "any"


def _arith(op: str) -> Callable[[Value, Value], Value]:
    def run(a: Value, b: Value) -> Value:
        ta, tb = _type_of(a), _type_of(b)
        if op == "+" and ta == tb == "string":
            return a + b
        if ta in ("int", "float") and tb in ("int", "float"):
            if op == "+":
                return a + b
            if op == "-":
                return a - b
            if op == "*":
                return a * b
            if op == "/":
                if b == 0:
                    raise ExprError("integer divide by zero") if ta == tb == "int" else ZeroDivisionError
                return a / b  # expr-lang's / is a float division
            if op == "%":
                if ta != "int" or tb != "int":
                    raise ExprError(f"invalid operation: % (mismatched types {ta} and {tb})")
                if b == 0:
                    raise ExprError("integer divide by zero")
                return int(a - b * int(a / b))  # Go's truncated remainder
            if op == "**":
                return float(a) ** float(b)
        raise ExprError(f"invalid operation: {op} (mismatched types {ta} and {tb})")

    return run


def _numeric(t: str) -> bool:
    return t in ("int", "float")


def _arith_type(op: str, ta: str, tb: str) -> str:
    if "any" in (ta, tb):
        return "any"
    if op == "+" and ta == tb == "string":
        return "string"
    if _numeric(ta) and _numeric(tb):
        if op in ("/", "**"):
            return "float"
        if op == "%" and (ta != "int" or tb != "int"):
            raise ExprError(f"invalid operation: % (mismatched types {ta} and {tb})")
        return "int" if ta == tb == "int" else "float"
    raise ExprError(f"invalid operation: {op} (mismatched types {ta} and {tb})")


def _equal(a: Value, b: Value) -> bool:
    if _numeric(_type_of(a)) and _numeric(_type_of(b)):
        return bool(a == b)
    if _type_of(a) != _type_of(b):
        return False
    return bool(a == b)


def _order(op: str) -> Callable[[Value, Value], bool]:
    def run(a: Value, b: Value) -> bool:
        ta, tb = _type_of(a), _type_of(b)
        if not ((_numeric(ta) and _numeric(tb)) or ta == tb == "string"):
            raise ExprError(f"invalid operation: {op} (mismatched types {ta} and {tb})")
        if op == "<":
            return bool(a < b)
        if op == ">":
            return bool(a > b)
        if op == "<=":
            return bool(a <= b)
        return bool(a >= b)

    return run


def _truth(value: Value, what: str) -> bool:
    if not isinstance(value, bool):
        raise ExprError(f"invalid operation: {what} (mismatched types {_type_of(value)} and bool)")
    return value


def _contains(a: Value, b: Value) -> bool:
    if isinstance(b, list | tuple):
        return any(_equal(a, item) for item in b)
    if isinstance(b, dict):
        return a in b
    if b is None:
        return False
    raise ExprError(f"invalid operation: in (mismatched types {_type_of(a)} and {_type_of(b)})")


@lru_cache(maxsize=256)
def _go_regexp(pattern: str) -> Any:
    try:
        return compile_go(pattern)
    except GoRegexpError as exc:
        raise ExprError(str(exc)) from None


def _string_op(op: str) -> Callable[[Value, Value], bool]:
    def run(a: Value, b: Value) -> bool:
        if not isinstance(a, str) or not isinstance(b, str):
            raise ExprError(f"invalid operation: {op} (mismatched types {_type_of(a)} and {_type_of(b)})")
        if op == "matches":
            return bool(_go_regexp(b).match_string(a))
        if op == "contains":
            return b in a
        if op == "startsWith":
            return a.startswith(b)
        return a.endswith(b)

    return run


# -- builtins -----------------------------------------------------------------------------


def _len(_s: Scope, v: Value) -> int:
    if isinstance(v, str):
        return len(v.encode())
    if isinstance(v, list | tuple | dict):
        return len(v)
    raise ExprError(f"invalid argument for len (type {_type_of(v)})")


def _str_args(name: str, *values: Value) -> None:
    for v in values:
        if not isinstance(v, str):
            raise ExprError(f"invalid argument for {name} (type {_type_of(v)})")


def _checked(name: str, value: Value) -> str:
    _str_args(name, value)
    return str(value)


def _replace(_s: Scope, s: Value, old: Value, new: Value) -> str:
    _str_args("replace", s, old, new)
    return str(s).replace(old, new)


def _split(_s: Scope, s: Value, sep: Value) -> list[str]:
    _str_args("split", s, sep)
    return str(s).split(sep) if sep else list(s)


def _join(_s: Scope, items: Value, sep: Value = "") -> str:
    return str(sep).join(str(i) for i in items)


def _to_int(_s: Scope, v: Value) -> int:
    try:
        return int(v)
    except (TypeError, ValueError):
        raise ExprError(f"invalid operation: int({_type_of(v)})") from None


def _to_float(_s: Scope, v: Value) -> float:
    try:
        return float(v)
    except (TypeError, ValueError):
        raise ExprError(f"invalid operation: float({_type_of(v)})") from None


def _to_string(_s: Scope, v: Value) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    return "nil" if v is None else str(v)


BUILTINS: dict[str, Function] = {
    "len": Function(_len, (1, 1), "int"),
    "replace": Function(_replace, (3, 3), "string"),
    "upper": Function(lambda _s, v: _checked("upper", v).upper(), (1, 1), "string"),
    "lower": Function(lambda _s, v: _checked("lower", v).lower(), (1, 1), "string"),
    "trim": Function(lambda _s, v, cut=None: _checked("trim", v).strip(cut), (1, 2), "string"),
    "trimPrefix": Function(lambda _s, v, p: v[len(p):] if v.startswith(p) else v, (2, 2), "string"),
    "trimSuffix": Function(lambda _s, v, p: v[: -len(p)] if p and v.endswith(p) else v, (2, 2), "string"),
    "hasPrefix": Function(lambda _s, v, p: v.startswith(p), (2, 2), "bool"),
    "hasSuffix": Function(lambda _s, v, p: v.endswith(p), (2, 2), "bool"),
    "indexOf": Function(lambda _s, v, p: v.find(p), (2, 2), "int"),
    "split": Function(_split, (2, 2), "array"),
    "join": Function(_join, (1, 2), "string"),
    "int": Function(_to_int, (1, 1), "int"),
    "float": Function(_to_float, (1, 1), "float"),
    "string": Function(_to_string, (1, 1), "string"),
    "abs": Function(lambda _s, v: abs(v), (1, 1), "any"),
}

_PREDICATES = {"any": "bool", "all": "bool", "none": "bool", "one": "bool", "filter": "array",
               "map": "array", "count": "int"}


def _predicate(name: str, items: Evaluator, body: Evaluator) -> Evaluator:
    def run(scope: Scope) -> Value:
        values = items(scope)
        if not isinstance(values, list | tuple):
            raise ExprError(f"cannot iterate over {_type_of(values)}")
        saved = scope.pointer
        try:
            results = []
            for item in values:
                scope.pointer = item
                results.append((item, body(scope)))
        finally:
            scope.pointer = saved
        if name == "map":
            return [r for _i, r in results]
        flags = [_truth(r, name) for _i, r in results]
        if name == "any":
            return any(flags)
        if name == "all":
            return all(flags)
        if name == "none":
            return not any(flags)
        if name == "one":
            return sum(flags) == 1
        if name == "count":
            return sum(flags)
        return [i for (i, _r), f in zip(results, flags, strict=True) if f]

    return run


# -- parser -------------------------------------------------------------------------------

_BINARY = {
    "||": 10, "or": 10, "&&": 15, "and": 15,
    "==": 20, "!=": 20, "<": 20, ">": 20, "<=": 20, ">=": 20, "in": 20, "not": 20,
    "matches": 20, "contains": 20, "startsWith": 20, "endsWith": 20,
    "??": 500 - 450,  # between the comparisons and the arithmetic, as expr-lang has it
    "+": 30, "-": 30, "*": 60, "/": 60, "%": 60, "**": 100,
}


@dataclass
class _Node:
    run: Evaluator
    type: str = "any"
    const: Value = None
    is_const: bool = False


class _Parser:
    def __init__(self, text: str, env: Environment) -> None:
        self.text = text
        self.tokens = _tokenize(text)
        self.i = 0
        self.env = env
        self.in_predicate = 0
        self.reads: set[str] = set()
        """The environment's functions and variables the expression uses: what its value can
        depend on, besides constants and pure builtins."""

    @property
    def tok(self) -> _Token:
        return self.tokens[self.i]

    def _where(self, tok: _Token) -> str:
        return f"(1:{tok.pos + 1})"

    def error(self, message: str, tok: _Token | None = None) -> ExprError:
        return ExprError(f"{message} {self._where(tok or self.tok)}")

    def take(self) -> _Token:
        tok = self.tok
        self.i += 1
        return tok

    def expect(self, text: str) -> None:
        if self.tok.kind != "op" or self.tok.text != text:
            raise self.error(f"unexpected token {self._shown(self.tok)}")
        self.i += 1

    @staticmethod
    def _shown(tok: _Token) -> str:
        if tok.kind == "end":
            return "EOF"
        kind = {"op": "Operator", "name": "Identifier", "string": "String", "int": "Number",
                "float": "Number"}[tok.kind]
        return f'{kind}("{tok.text}")'

    def parse(self) -> _Node:
        if self.tok.kind == "end":
            raise self.error("unexpected token EOF")
        node = self.expression(0)
        if self.tok.kind != "end":
            raise self.error(f"unexpected token {self._shown(self.tok)}")
        return node

    def expression(self, min_prec: int) -> _Node:
        left = self.unary()
        while True:
            tok = self.tok
            if tok.kind == "op" and tok.text == "?" and min_prec == 0:
                self.take()
                yes = self.expression(0)
                self.expect(":")
                no = self.expression(0)
                left = self._ternary(left, yes, no)
                continue
            op = tok.text if tok.kind in ("op", "name") else ""
            prec = _BINARY.get(op)
            if prec is None or prec < min_prec or (tok.kind == "name" and op not in _WORD_OPS):
                return left
            self.take()
            if op == "not":
                if not (self.tok.kind == "name" and self.tok.text == "in"):
                    raise self.error(f"unexpected token {self._shown(self.tok)}")
                self.take()
                right = self.expression(prec + 1)
                inner = self._binary("in", left, right)
                run = inner.run
                left = _Node(_negated(run), "bool")
                continue
            right = self.expression(prec if op == "**" else prec + 1)
            left = self._binary(op, left, right)

    def _ternary(self, cond: _Node, yes: _Node, no: _Node) -> _Node:
        c, y, n = cond.run, yes.run, no.run
        kind = yes.type if yes.type == no.type else "any"
        return _Node(lambda s: y(s) if _truth(c(s), "?:") else n(s), kind)

    def _binary(self, op: str, left: _Node, right: _Node) -> _Node:
        a, b = left.run, right.run
        if op in ("||", "or"):
            return _Node(lambda s: _truth(a(s), op) or _truth(b(s), op), "bool")
        if op in ("&&", "and"):
            return _Node(lambda s: _truth(a(s), op) and _truth(b(s), op), "bool")
        if op == "??":
            def coalesce(s: Scope) -> Value:
                v = a(s)
                return b(s) if v is None else v

            return _Node(coalesce, "any")
        if op in ("==", "!="):
            if op == "==":
                return _Node(lambda s: _equal(a(s), b(s)), "bool")
            return _Node(lambda s: not _equal(a(s), b(s)), "bool")
        if op in ("<", ">", "<=", ">="):
            compare = _order(op)
            return _Node(lambda s: compare(a(s), b(s)), "bool")
        if op == "in":
            if right.is_const and isinstance(right.const, list):
                members = right.const
                if all(isinstance(m, str) for m in members) and left.type == "string":
                    frozen = frozenset(members)
                    return _Node(lambda s: a(s) in frozen, "bool")
            return _Node(lambda s: _contains(a(s), b(s)), "bool")
        if op in ("matches", "contains", "startsWith", "endsWith"):
            for side in (left, right):
                if side.type not in ("string", "any"):
                    mismatch = f"mismatched types {left.type} and {right.type}"
                    raise self.error(f"invalid operation: {op} ({mismatch})")
            if op == "matches" and right.is_const:
                regexp = self._regexp(right.const)
                return _Node(lambda s: _search(regexp, a(s)), "bool")
            test = _string_op(op)
            return _Node(lambda s: test(a(s), b(s)), "bool")
        try:
            kind = _arith_type(op, left.type, right.type)
        except ExprError as exc:
            raise self.error(str(exc)) from None
        run = _arith(op)
        return _Node(lambda s: run(a(s), b(s)), kind)

    def _regexp(self, pattern: Value) -> Any:
        if not isinstance(pattern, str):
            raise self.error("invalid operation: matches (a regexp must be a string)")
        try:
            return compile_go(pattern)
        except GoRegexpError as exc:
            raise self.error(str(exc)) from None

    def unary(self) -> _Node:
        tok = self.tok
        if (tok.kind == "op" and tok.text == "!") or (tok.kind == "name" and tok.text == "not"):
            self.take()
            inner = self.expression(50)
            run = inner.run
            return _Node(lambda s: not _truth(run(s), "!"), "bool")
        if tok.kind == "op" and tok.text in ("-", "+"):
            self.take()
            inner = self.expression(90)
            if inner.type not in ("int", "float", "any"):
                raise self.error(f"invalid operation: {tok.text} (mismatched types {inner.type})", tok)
            run = inner.run
            if tok.text == "+":
                return inner
            if inner.is_const:
                value = -inner.const
                return _Node(lambda s: value, inner.type, value, True)
            return _Node(lambda s: -run(s), inner.type)
        return self.postfix(self.primary())

    def primary(self) -> _Node:
        tok = self.take()
        if tok.kind == "int":
            value = int(tok.text.replace("_", ""), 0)
            return _Node(lambda s: value, "int", value, True)
        if tok.kind == "float":
            fvalue = float(tok.text)
            return _Node(lambda s: fvalue, "float", fvalue, True)
        if tok.kind == "string":
            try:
                text = _unquote(tok.text)
            except ExprError as exc:
                raise self.error(str(exc), tok) from None
            return _Node(lambda s: text, "string", text, True)
        if tok.kind == "op" and tok.text == "(":
            node = self.expression(0)
            self.expect(")")
            return node
        if tok.kind == "op" and tok.text == "[":
            items: list[_Node] = []
            while not (self.tok.kind == "op" and self.tok.text == "]"):
                items.append(self.expression(0))
                if self.tok.kind == "op" and self.tok.text == ",":
                    self.take()
                    continue
                if not (self.tok.kind == "op" and self.tok.text == "]"):
                    raise self.error(f"unexpected token {self._shown(self.tok)}")
            self.take()
            if all(item.is_const for item in items):
                values = [item.const for item in items]
                return _Node(lambda s: values, "array", values, True)
            runs = [item.run for item in items]
            return _Node(lambda s: [r(s) for r in runs], "array")
        if tok.kind == "op" and tok.text == "#":
            if not self.in_predicate:
                raise self.error("cannot use pointer accessor outside predicate", tok)
            return _Node(lambda s: s.pointer, "any")
        if tok.kind == "name":
            return self.name(tok)
        raise self.error(f"unexpected token {self._shown(tok)}", tok)

    def name(self, tok: _Token) -> _Node:
        name = tok.text
        if name == "true":
            return _Node(lambda s: True, "bool", True, True)
        if name == "false":
            return _Node(lambda s: False, "bool", False, True)
        if name == "nil":
            return _Node(lambda s: None, "nil", None, True)
        calling = self.tok.kind == "op" and self.tok.text == "("
        if calling and name in _PREDICATES:
            return self.predicate(name, tok)
        if calling:
            function = self.env.functions.get(name) or BUILTINS.get(name)
            if function is None:
                if name in self.env.variables:
                    raise self.error(f"{name} is not callable", tok)
                raise self.error(f"unknown func {name}", tok)
            if name in self.env.functions:
                self.reads.add(name)
            return self.call(name, function, tok)
        if name in self.env.variables:
            self.reads.add(name)
            kind = self.env.variables[name]
            return _Node(lambda s: s.variables.get(name), kind)
        if name in self.env.functions or name in BUILTINS:
            raise self.error(f"function {name} must be called", tok)
        raise self.error(f"unknown name {name}", tok)

    def arguments(self) -> list[_Node]:
        self.expect("(")
        args: list[_Node] = []
        while not (self.tok.kind == "op" and self.tok.text == ")"):
            args.append(self.expression(0))
            if self.tok.kind == "op" and self.tok.text == ",":
                self.take()
            elif not (self.tok.kind == "op" and self.tok.text == ")"):
                raise self.error(f"unexpected token {self._shown(self.tok)}")
        self.take()
        return args

    def call(self, name: str, function: Function, tok: _Token) -> _Node:
        args = self.arguments()
        low, high = function.arity
        if not low <= len(args) <= high:
            few = "not enough" if len(args) < low else "too many"
            raise self.error(f"{few} arguments to call {name}", tok)
        impl = function.impl
        runs = [a.run for a in args]
        if len(runs) == 0:
            return _Node(lambda s: impl(s), function.returns)
        if len(runs) == 1:
            r0 = runs[0]
            return _Node(lambda s: impl(s, r0(s)), function.returns)
        if len(runs) == 2:
            r0, r1 = runs
            return _Node(lambda s: impl(s, r0(s), r1(s)), function.returns)
        return _Node(lambda s: impl(s, *[r(s) for r in runs]), function.returns)

    def predicate(self, name: str, tok: _Token) -> _Node:
        self.expect("(")
        items = self.expression(0)
        self.expect(",")
        self.in_predicate += 1
        try:
            body = self.expression(0)
        finally:
            self.in_predicate -= 1
        self.expect(")")
        return _Node(_predicate(name, items.run, body.run), _PREDICATES[name])

    def postfix(self, node: _Node) -> _Node:
        while self.tok.kind == "op" and self.tok.text in ("[", "."):
            tok = self.take()
            base = node.run
            if tok.text == "[":
                index = self.expression(0)
                self.expect("]")

                node = _Node(_indexed(base, index.run), "any")
            else:
                member = self.take()
                if member.kind != "name":
                    raise self.error(f"unexpected token {self._shown(member)}", member)
                attr = member.text
                node = _Node(_indexed(base, _constant(attr)), "any")
        return node


def _negated(run: Evaluator) -> Evaluator:
    return lambda s: not run(s)


def _constant(value: Value) -> Evaluator:
    return lambda s: value


def _indexed(base: Evaluator, key: Evaluator) -> Evaluator:
    return lambda s: _index(base(s), key(s))


def _search(regexp: Any, value: Value) -> bool:
    if not isinstance(value, str):
        raise ExprError(f"invalid operation: matches (mismatched types {_type_of(value)} and string)")
    return bool(regexp.match_string(value))


def _index(base: Value, key: Value) -> Value:
    if isinstance(base, dict):
        return base.get(key)
    if isinstance(base, list | tuple | str) and isinstance(key, int) and not isinstance(key, bool):
        if key < 0:
            key += len(base)
        if 0 <= key < len(base):
            return base[key]
        raise ExprError(f"index out of range: {key} (array length is {len(base)})")
    raise ExprError(f"cannot fetch {key} from {_type_of(base)}")


@dataclass(frozen=True)
class Program:
    """A compiled expression: ``run(scope)`` gives its value; ``type`` its static type."""

    source: str
    run: Evaluator
    type: str
    reads: frozenset[str] = frozenset()
    """The environment's functions and variables it uses (``client_ip``, ``type``, ...)."""


def compile_expression(text: str, env: Environment) -> Program:
    """Compile ``text`` against ``env``; an ``ExprError`` says why it does not compile."""
    parser = _Parser(text, env)
    node = parser.parse()
    return Program(text, node.run, node.type, frozenset(parser.reads))


def is_identifier(name: str) -> bool:
    """A name an expression can refer to: not a keyword or an operator word."""
    return re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name) is not None and name not in _KEYWORDS


# -- the query functions of CoreDNS's plugin/pkg/expression -----------------------------------


def _incidr(_s: Scope, ip: Value, cidr: Value) -> bool:
    try:
        address = _address(str(ip))
    except ValueError:
        raise ExprError("first argument is not an IP address") from None
    try:
        network = _network(str(cidr))
    except ValueError:
        raise ExprError(f"invalid CIDR address: {cidr}") from None
    return address in network


@lru_cache(maxsize=4096)
def _address(ip: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    # Remembered: parsing an address costs microseconds, and the same clients ask again and again.
    return ipaddress.ip_address(ip.split("%", 1)[0])


@lru_cache(maxsize=1024)
def _network(cidr: str) -> ipaddress.IPv4Network | ipaddress.IPv6Network:
    if "/" not in cidr:
        raise ValueError(cidr)
    return ipaddress.ip_network(cidr, strict=False)


def _metadata(scope: Scope, label: Value) -> str:
    found = scope.request.get_metadata(str(label))
    if found is None:
        return ""
    return str(found() if callable(found) else found)


def _local(scope: Scope, part: int) -> Value:
    local = scope.request.local
    if local is None:
        return ""
    return str(local[part])


def query_functions() -> dict[str, Function]:
    """CoreDNS's ``expression.DefaultEnv``: the query as functions of the request."""
    return {
        "incidr": Function(_incidr, (2, 2), "bool"),
        "metadata": Function(_metadata, (1, 1), "string"),
        "type": Function(lambda s: s.request.type_name, (0, 0), "string"),
        "name": Function(lambda s: s.request.name, (0, 0), "string"),
        "class": Function(lambda s: s.request.class_name, (0, 0), "string"),
        "proto": Function(lambda s: s.request.proto, (0, 0), "string"),
        "size": Function(lambda s: len(s.request.wire), (0, 0), "int"),
        "client_ip": Function(lambda s: s.request.remote[0], (0, 0), "string"),
        "port": Function(lambda s: str(s.request.remote[1]), (0, 0), "string"),
        "id": Function(lambda s: s.request.id, (0, 0), "int"),
        "opcode": Function(lambda s: s.request.opcode, (0, 0), "int"),
        "do": Function(lambda s: s.request.do, (0, 0), "bool"),
        "bufsize": Function(lambda s: s.request.size, (0, 0), "int"),
        "server_ip": Function(lambda s: _local(s, 0), (0, 0), "string"),
        "server_port": Function(lambda s: _local(s, 1), (0, 0), "string"),
    }


def default_environment() -> Environment:
    return Environment(query_functions())


__all__: Sequence[str] = (
    "BUILTINS", "Environment", "ExprError", "Function", "Program", "Scope", "compile_expression",
    "default_environment", "is_identifier", "query_functions",
)
