"""The part of Go's text/template that CoreDNS's template README uses, parsed once, run safely.

Text and ``{{ }}`` actions (``{{-``/``-}}`` trim spaces); an action is a pipeline, commands joined
by ``|``, the value on the left passed as the last argument of the command on the right. Operands:
``.``, ``.Field.Key`` (struct fields, map keys; ``.Meta "label"`` calls a method), ``$``, string
(``"..."``, raw ```...```), number, ``true``/``false``/``nil``, ``( pipeline )``. Functions: Go's
``index len print printf println eq ne lt le gt ge and or not`` and the ``FuncMap`` given (CoreDNS
gives ``parseInt``). Control: ``if``/``else if``/``else``/``end``, ``with``, ``range`` over a list.
A function that is not known is a parse error; a field that does not exist an execution error,
both with Go's texts. Nothing is ``eval``-ed: names resolve only to the data and the functions.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any


class TemplateError(ValueError):
    """A template that does not parse (Go's ``template: NAME:LINE: ...``), or fails to run."""


_NO_VALUE = "<no value>"
_CHAINED = -1
"""The position of an ``{{else if}}`` block: the ``{{end}}`` of its outer block closes it."""
_MISSING = object()


class GoStruct:
    """Data with fixed fields, as a Go struct: a missing field is an execution error. Methods are
    the callables in ``methods``."""

    go_type = "struct"

    def __init__(self, fields: Mapping[str, Any],
                 methods: Mapping[str, Callable[..., Any]] | None = None) -> None:
        self.fields = fields
        self.methods = methods or {}


@dataclass
class _Op:
    kind: str  # "field" "dot" "root" "var" "const" "func" "pipe"
    value: Any = None
    args: tuple[Any, ...] = ()


@dataclass
class _Action:
    pipeline: list[list[_Op]]
    pos: int


@dataclass
class _Block:
    kind: str  # "if" "with" "range"
    pipeline: list[list[_Op]]
    body: list[Any]
    otherwise: list[Any]
    pos: int


_ACTION = re.compile(r"\{\{(-\s)?(.*?)(\s-)?\}\}", re.DOTALL)
_TOKEN = re.compile(
    r"""\s*(?:(?P<string>"(?:[^"\\]|\\.)*")|(?P<raw>`[^`]*`)|(?P<number>-?\d+(?:\.\d+)?)
    |(?P<field>(?:\.[A-Za-z_][A-Za-z0-9_]*)+|\.)|(?P<var>\$[A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*)
    |(?P<ident>[A-Za-z_][A-Za-z0-9_]*)|(?P<punct>[|()]))""",
    re.VERBOSE,
)
_ESCAPES = {"n": "\n", "t": "\t", "\\": "\\", '"': '"', "r": "\r", "'": "'"}


def _unquote(text: str) -> str:
    return re.sub(r"\\(.)", lambda m: _ESCAPES.get(m.group(1), m.group(1)), text[1:-1])


def _go_repr(value: Any) -> str:
    if value is None:
        return _NO_VALUE
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list | tuple):
        return "[" + " ".join(_go_repr(v) for v in value) + "]"
    if isinstance(value, GoStruct):
        return "{" + " ".join(_go_repr(v) for v in value.fields.values()) + "}"
    if isinstance(value, dict):
        return "map[" + " ".join(f"{k}:{_go_repr(v)}" for k, v in sorted(value.items())) + "]"
    return str(value)


def _truth(value: Any) -> bool:
    if value is None or value is False:
        return False
    if isinstance(value, int | float | str | list | tuple | dict):
        return bool(value)
    return True


def _index(item: Any, *keys: Any) -> Any:
    for key in keys:
        if isinstance(item, dict):
            item = item.get(key)
        elif isinstance(item, list | tuple | str):
            if not isinstance(key, int) or not 0 <= key < len(item):
                raise TemplateError(f"error calling index: index out of range: {key}")
            item = item[key]
        else:
            raise TemplateError(f"error calling index: can't index item of type {type(item).__name__}")
    return item


def _printf(fmt: str, *args: Any) -> str:
    out, i, n = [], 0, 0
    while i < len(fmt):
        ch = fmt[i]
        if ch != "%" or i + 1 >= len(fmt):
            out.append(ch)
            i += 1
            continue
        verb = fmt[i + 1]
        i += 2
        if verb == "%":
            out.append("%")
            continue
        if n >= len(args):
            out.append(f"%!{verb}(MISSING)")
            continue
        arg = args[n]
        n += 1
        if verb == "d" and isinstance(arg, int):
            out.append(str(arg))
        elif verb == "x" and isinstance(arg, int):
            out.append(f"{arg:x}")
        elif verb == "q":
            out.append('"' + str(arg).replace("\\", "\\\\").replace('"', '\\"') + '"')
        else:
            out.append(_go_repr(arg))
    return "".join(out)


def _compare(op: str) -> Callable[..., bool]:
    def run(a: Any, *others: Any) -> bool:
        if op == "eq":
            return any(a == b for b in others)
        b = others[0]
        if type(a) is not type(b) and not (isinstance(a, int | float) and isinstance(b, int | float)):
            raise TemplateError(f"error calling {op}: incompatible types for comparison")
        return {"ne": a != b, "lt": a < b, "le": a <= b, "gt": a > b, "ge": a >= b}[op]

    return run


BUILTINS: dict[str, Callable[..., Any]] = {
    "index": _index,
    "len": lambda v: len(v),
    "print": lambda *a: "".join(_go_repr(v) for v in a),
    "println": lambda *a: " ".join(_go_repr(v) for v in a) + "\n",
    "printf": _printf,
    "eq": _compare("eq"), "ne": _compare("ne"), "lt": _compare("lt"),
    "le": _compare("le"), "gt": _compare("gt"), "ge": _compare("ge"),
    "not": lambda v: not _truth(v),
}


class Template:
    """One parsed template: ``execute(data)`` gives its text, or raises ``TemplateError``."""

    def __init__(self, name: str, text: str, funcs: Mapping[str, Callable[..., Any]] | None = None) -> None:
        self.name = name
        self.text = text
        self.funcs = {**BUILTINS, **(funcs or {})}
        self.nodes = self._parse()

    def root_fields(self) -> frozenset[str] | None:
        """The fields of the data this template reads (``.Name``, ``$.Group.x``, ``.Meta "l"``),
        or None when it reads the data whole (``{{ . }}``, ``{{ printf "%v" $ }}``): what its
        output can depend on, besides its functions (which are pure)."""
        found: set[str] = set()
        return frozenset(found) if self._collect(self.nodes, True, found) else None

    def _collect(self, nodes: list[Any], dot_is_root: bool, found: set[str]) -> bool:
        for node in nodes:
            if isinstance(node, str):
                continue
            if not self._collect_pipeline(node.pipeline, dot_is_root, found):
                return False
            if isinstance(node, _Block):
                # with and range move dot to the value of their pipeline, already collected.
                inner = dot_is_root if node.kind == "if" else False
                if not (self._collect(node.body, inner, found)
                        and self._collect(node.otherwise, dot_is_root, found)):
                    return False
        return True

    def _collect_pipeline(self, pipeline: list[list[_Op]], dot_is_root: bool, found: set[str]) -> bool:
        for command in pipeline:
            for op in command:
                if op.kind == "pipe":
                    if not self._collect_pipeline(op.value, dot_is_root, found):
                        return False
                elif op.kind == "root":
                    if not op.value:
                        return False
                    found.add(op.value[0])
                elif op.kind == "field" and dot_is_root:
                    found.add(op.value[0])
                elif op.kind == "dot" and dot_is_root:
                    return False
        return True

    # -- parsing ------------------------------------------------------------------------------

    def _line(self, pos: int) -> int:
        return self.text.count("\n", 0, pos) + 1

    def _error(self, pos: int, message: str) -> TemplateError:
        return TemplateError(f"template: {self.name}:{self._line(pos)}: {message}")

    def _parse(self) -> list[Any]:
        text = self.text
        root: list[Any] = []
        stack: list[tuple[_Block, list[Any]]] = []
        current = root
        pos = 0
        trim_next = False
        while True:
            start = text.find("{{", pos)
            if start < 0:
                chunk = text[pos:]
                current.append(chunk.lstrip() if trim_next else chunk)
                break
            m = _ACTION.match(text, start)
            if m is None:
                raise self._error(start, "unclosed action")
            chunk = text[pos:start]
            if trim_next:
                chunk = chunk.lstrip()
            if m.group(1):
                chunk = chunk.rstrip()
            current.append(chunk)
            trim_next = bool(m.group(3))
            pos = m.end()
            body = m.group(2).strip()
            if body.startswith("/*"):
                continue
            word = body.split(None, 1)[0] if body else ""
            rest = body[len(word):].strip()
            if word in ("if", "with", "range"):
                block = _Block(word, self._pipeline(rest, start), [], [], start)
                current.append(block)
                stack.append((block, current))
                current = block.body
            elif word == "else":
                if not stack:
                    raise self._error(start, "unexpected {{else}}")
                block, _parent = stack[-1]
                if current is block.otherwise:
                    raise self._error(start, "expected end; found {{else}}")
                current = block.otherwise
                if rest.startswith("if ") or rest.startswith("with "):
                    inner_word, inner_rest = rest.split(None, 1)
                    # {{else if X}} is {{else}}{{if X}}, closed by the same {{end}}
                    inner = _Block(inner_word, self._pipeline(inner_rest, start), [], [], _CHAINED)
                    current.append(inner)
                    stack.append((inner, current))
                    current = inner.body
            elif word == "end":
                if not stack:
                    raise self._error(start, "unexpected {{end}}")
                block, parent = stack.pop()
                while block.pos == _CHAINED and stack:
                    block, parent = stack.pop()
                current = parent
            elif word in ("define", "template", "block", "break", "continue"):
                raise self._error(start, f"{{{{{word}}}}} is not supported by twisted-coredns")
            elif not body:
                raise self._error(start, "missing value for command")
            else:
                current.append(_Action(self._pipeline(body, start), start))
        if stack:
            raise self._error(len(text), "unexpected EOF")
        return root

    def _pipeline(self, text: str, pos: int) -> list[list[_Op]]:
        tokens = self._tokens(text, pos)
        pipeline, i = self._parse_pipeline(tokens, 0, pos)
        if i != len(tokens):
            raise self._error(pos, f"unexpected {tokens[i][1]!r} in command")
        if not pipeline or any(not c for c in pipeline):
            raise self._error(pos, "missing value for command")
        return pipeline

    def _tokens(self, text: str, pos: int) -> list[tuple[str, str]]:
        out, i = [], 0
        while i < len(text):
            if text[i].isspace():
                i += 1
                continue
            m = _TOKEN.match(text, i)
            if m is None or m.end() == i:
                raise self._error(pos, f"unexpected {text[i]!r} in command")
            kind = m.lastgroup or "punct"
            out.append((kind, m.group(kind)))
            i = m.end()
        return out

    def _parse_pipeline(self, tokens: list[tuple[str, str]], i: int, pos: int) -> tuple[list[list[_Op]], int]:
        pipeline: list[list[_Op]] = [[]]
        while i < len(tokens):
            kind, text = tokens[i]
            if kind == "punct" and text == "|":
                pipeline.append([])
                i += 1
                continue
            if kind == "punct" and text == ")":
                break
            if kind == "punct" and text == "(":
                inner, i = self._parse_pipeline(tokens, i + 1, pos)
                if i >= len(tokens) or tokens[i][1] != ")":
                    raise self._error(pos, "unclosed left paren")
                pipeline[-1].append(_Op("pipe", inner))
                i += 1
                continue
            pipeline[-1].append(self._operand(kind, text, pos))
            i += 1
        return pipeline, i

    def _operand(self, kind: str, text: str, pos: int) -> _Op:
        if kind == "string":
            return _Op("const", _unquote(text))
        if kind == "raw":
            return _Op("const", text[1:-1])
        if kind == "number":
            return _Op("const", float(text) if "." in text else int(text))
        if kind == "field":
            return _Op("dot") if text == "." else _Op("field", tuple(text[1:].split(".")))
        if kind == "var":
            head, *fields = text.split(".")
            if head != "$":
                raise self._error(pos, f'undefined variable "{head}"')
            return _Op("root", tuple(fields))
        if text in ("true", "false"):
            return _Op("const", text == "true")
        if text == "nil":
            return _Op("const", None)
        if text in ("and", "or"):
            return _Op("func", text)
        if text not in self.funcs:
            raise self._error(pos, f'function "{text}" not defined')
        return _Op("func", text)

    # -- running ------------------------------------------------------------------------------

    def execute(self, data: Any) -> str:
        out: list[str] = []
        self._run(self.nodes, data, data, out)
        return "".join(out)

    def _run(self, nodes: list[Any], dot: Any, root: Any, out: list[str]) -> None:
        for node in nodes:
            if isinstance(node, str):
                out.append(node)
            elif isinstance(node, _Action):
                value = self._eval_pipeline(node.pipeline, dot, root, node.pos)
                out.append(_go_repr(value))
            else:
                value = self._eval_pipeline(node.pipeline, dot, root, node.pos)
                if node.kind == "range":
                    items = list(value.values()) if isinstance(value, dict) else value or []
                    if items:
                        for item in items:
                            self._run(node.body, item, root, out)
                    else:
                        self._run(node.otherwise, dot, root, out)
                elif _truth(value):
                    self._run(node.body, value if node.kind == "with" else dot, root, out)
                else:
                    self._run(node.otherwise, dot, root, out)

    def _exec_error(self, pos: int, what: str, message: str) -> TemplateError:
        column = pos + 1
        return TemplateError(
            f'template: {self.name}:{self._line(pos)}:{column}: '
            f'executing "{self.name}" at <{what}>: {message}'
        )

    def _eval_pipeline(self, pipeline: list[list[_Op]], dot: Any, root: Any, pos: int) -> Any:
        value: Any = _MISSING
        for command in pipeline:
            value = self._eval_command(command, dot, root, pos, value)
        return value

    def _eval_command(self, command: list[_Op], dot: Any, root: Any, pos: int, piped: Any) -> Any:
        head, args = command[0], command[1:]
        if head.kind == "func":
            name = head.value
            values = [self._eval_arg(a, dot, root, pos) for a in args]
            if piped is not _MISSING:
                values.append(piped)
            if name in ("and", "or"):
                if not values:
                    raise self._exec_error(pos, name,
                                           f"wrong number of args for {name}: want at least 1 got 0")
                result = values[0]
                for v in values:
                    result = v
                    if (name == "and") != _truth(v):
                        break
                return result
            try:
                return self.funcs[name](*values)
            except TemplateError as exc:
                raise self._exec_error(pos, name, str(exc)) from None
            except (ValueError, TypeError, OverflowError) as exc:
                raise self._exec_error(pos, name, f"error calling {name}: {exc}") from None
        if head.kind == "field" and (args or piped is not _MISSING):
            # a method call with arguments: .Meta "label"
            values = [self._eval_arg(a, dot, root, pos) for a in args]
            if piped is not _MISSING:
                values.append(piped)
            return self._field(dot, head.value, pos, values)
        if args:
            shown = self._shown(head)
            raise self._exec_error(pos, shown, f"can't give argument to non-function {shown}")
        return self._eval_arg(head, dot, root, pos)

    @staticmethod
    def _shown(op: _Op) -> str:
        if op.kind == "field":
            return "." + ".".join(op.value)
        return str(op.value)

    def _eval_arg(self, op: _Op, dot: Any, root: Any, pos: int) -> Any:
        if op.kind == "const":
            return op.value
        if op.kind == "dot":
            return dot
        if op.kind == "field":
            return self._field(dot, op.value, pos, None)
        if op.kind == "root":
            return self._field(root, op.value, pos, None) if op.value else root
        if op.kind == "pipe":
            return self._eval_pipeline(op.value, dot, root, pos)
        if op.kind == "func":
            return self._eval_command([op], dot, root, pos, _MISSING)
        raise self._exec_error(pos, str(op.value), "unknown operand")

    def _field(self, value: Any, path: tuple[str, ...], pos: int, call_args: list[Any] | None) -> Any:
        shown = "." + ".".join(path)
        for i, name in enumerate(path):
            last = i == len(path) - 1
            if isinstance(value, GoStruct):
                if name in value.methods:
                    args = call_args if last and call_args is not None else []
                    try:
                        value = value.methods[name](*args)
                    except TypeError:
                        raise self._exec_error(pos, shown, f"wrong number of args for {name}") from None
                    continue
                if name not in value.fields:
                    raise self._exec_error(pos, shown,
                                           f"can't evaluate field {name} in type *template.templateData")
                value = value.fields[name]
            elif isinstance(value, dict):
                value = value.get(name)
            elif value is None:
                raise self._exec_error(pos, shown, f"nil pointer evaluating {shown}")
            else:
                raise self._exec_error(pos, shown,
                                       f"can't evaluate field {name} in type {type(value).__name__}")
        return value
