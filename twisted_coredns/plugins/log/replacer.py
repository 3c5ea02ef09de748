"""CoreDNS's ``plugin/pkg/replacer``: ``{placeholder}`` formats for query log lines.

A format is parsed once, when the Corefile is read, into nodes (literal text, placeholders,
metadata labels), and the nodes are compiled into one function that builds the line with a single
f-string: literals and value functions are bound names, the plain request fields are read inline.
Nothing is parsed per query, and a logged query costs one call plus the values themselves.

The parse keeps CoreDNS's rules, including its odd corners: a placeholder is found from its closing
brace backwards, so ``{{remote}}`` is ``{`` + the remote address + ``}``; a ``{...}`` that is not a
known placeholder (and not ``{/metadata}``) turns everything before it into literal text; a value
that is missing is ``-``.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol

from ...dns import class_name, type_name

if TYPE_CHECKING:
    from ...request import Request

__all__ = [
    "COMBINED_LOG_FORMAT",
    "COMMON_LOG_FORMAT",
    "DEFAULT_LOG_FORMAT",
    "EMPTY_VALUE",
    "LABELS",
    "Recorded",
    "Replacer",
    "expand_shortcuts",
    "go_seconds",
    "parse_format",
    "rcode_text",
    "rflags_text",
]

EMPTY_VALUE = "-"
"""What a placeholder without a value prints."""

COMMON_LOG_FORMAT = (
    "{remote}:{port} - {>id} "
    '"{type} {class} {name} {proto} {size} {>do} {>bufsize}" {rcode} {>rflags} {rsize} {duration}'
)
"""The Common Log Format of CoreDNS's log plugin (``{common}``)."""
COMBINED_LOG_FORMAT = COMMON_LOG_FORMAT + ' "{>opcode}"'
"""The Common Log Format plus the query's opcode (``{combined}``)."""
DEFAULT_LOG_FORMAT = COMMON_LOG_FORMAT

LITERAL = "literal"
LABEL = "label"
METADATA = "metadata"

LABELS = frozenset(
    {
        "{type}",
        "{name}",
        "{class}",
        "{proto}",
        "{size}",
        "{remote}",
        "{port}",
        "{local}",
        "{>id}",
        "{>opcode}",
        "{>do}",
        "{>bufsize}",
        "{rcode}",
        "{rsize}",
        "{duration}",
        "{>rflags}",
    }
)
"""Every placeholder CoreDNS's replacer knows (``{/LABEL}`` metadata aside)."""


def expand_shortcuts(fmt: str) -> str:
    """Replace ``{common}`` and ``{combined}`` by the formats they stand for, as the log plugin's
    setup does for a format given in the Corefile."""
    return fmt.replace("{common}", COMMON_LOG_FORMAT).replace("{combined}", COMBINED_LOG_FORMAT)


def parse_format(fmt: str) -> list[tuple[str, str]]:
    """Split ``fmt`` into ``(kind, value)`` nodes exactly as CoreDNS's ``parseFormat`` does.

    ``kind`` is ``"literal"``, ``"label"`` (value is the placeholder with its braces) or
    ``"metadata"`` (value is the label without ``{/`` and ``}``). Adjacent literals are not joined,
    so the result can be compared node for node with CoreDNS's tests.
    """
    nodes: list[tuple[str, str]] = []
    s = fmt
    while True:
        # Find a closing brace, then the nearest opening brace before it: "{ {foo} }" works.
        j = s.find("}")
        if j < 0:
            break
        i = s.rfind("{", 0, j)
        if i < 0:
            nodes.append((LITERAL, s[: j + 1]))
            s = s[j + 1 :]
            continue
        value = s[i : j + 1]
        if value in LABELS:
            kind = LABEL
        elif value.startswith("{/"):
            kind, value = METADATA, value[2:-1]
        else:
            # Not a placeholder: everything up to and including it is literal text.
            kind, value = LITERAL, s[: j + 1]
        if i != 0 and kind != LITERAL:
            nodes.append((LITERAL, s[:i]))
        nodes.append((kind, value))
        s = s[j + 1 :]
    if s:
        nodes.append((LITERAL, s))
    return nodes


class Recorded:
    """What a query's reply looked like, as CoreDNS's ``dnstest.Recorder`` keeps it.

    ``rcode`` and ``flags`` are None when no reply message exists (``{rcode}`` and ``{>rflags}``
    print ``-``); ``size`` is the reply's length in bytes; ``start`` is the ``time.monotonic()``
    the duration is measured from.
    """

    __slots__ = ("flags", "rcode", "size", "start")

    def __init__(self, rcode: int | None, flags: int | None, size: int, start: float) -> None:
        self.rcode = rcode
        self.flags = flags
        self.size = size
        self.start = start


# -- values ------------------------------------------------------------------------------------

# miekg/dns's RcodeToString: 16 is BADSIG there (BADVERS shares the number); unknown ones print
# as a plain number.
_RCODES = {
    0: "NOERROR",
    1: "FORMERR",
    2: "SERVFAIL",
    3: "NXDOMAIN",
    4: "NOTIMP",
    5: "REFUSED",
    6: "YXDOMAIN",
    7: "YXRRSET",
    8: "NXRRSET",
    9: "NOTAUTH",
    10: "NOTZONE",
    16: "BADSIG",
    17: "BADKEY",
    18: "BADTIME",
    19: "BADMODE",
    20: "BADNAME",
    21: "BADALG",
    22: "BADTRUNC",
    23: "BADCOOKIE",
}


def rcode_text(rcode: int) -> str:
    """``{rcode}``: miekg's name for ``rcode``, or its number."""
    return _RCODES.get(rcode) or str(rcode)


_FLAG_NAMES = (
    (0x8000, "qr"),
    (0x0400, "aa"),
    (0x0200, "tc"),
    (0x0100, "rd"),
    (0x0080, "ra"),
    (0x0040, "z"),
    (0x0020, "ad"),
    (0x0010, "cd"),
)
_FLAG_MASK = 0x87F0
_flag_cache: dict[int, str] = {}


def rflags_text(flags: int) -> str:
    """``{>rflags}``: the header flags that are set, comma separated, in CoreDNS's order
    (``qr,aa,tc,rd,ra,z,ad,cd``); empty when none is."""
    key = flags & _FLAG_MASK
    text = _flag_cache.get(key)
    if text is None:
        text = _flag_cache[key] = ",".join(name for bit, name in _FLAG_NAMES if key & bit)
    return text


def _go_float(value: float) -> str:
    """Go's ``strconv.FormatFloat(value, 'f', -1, 64)``: the shortest digits that read back as
    ``value``, never in exponent form. Python's ``repr`` finds the same shortest digits."""
    text = repr(value)
    if "e" in text or "E" in text:
        mantissa, _, exp_text = text.partition("e")
        exp = int(exp_text)
        sign = ""
        if mantissa.startswith("-"):
            sign, mantissa = "-", mantissa[1:]
        whole, _, frac = mantissa.partition(".")
        digits = whole + frac
        point = len(whole) + exp  # where the decimal point goes within ``digits``
        if point <= 0:
            text = f"{sign}0.{'0' * -point}{digits}"
        elif point >= len(digits):
            text = f"{sign}{digits}{'0' * (point - len(digits))}"
        else:
            text = f"{sign}{digits[:point]}.{digits[point:]}"
        return text
    if text.endswith(".0"):
        return text[:-2]
    return text


def go_seconds(elapsed: float) -> str:
    """``{duration}``: ``elapsed`` seconds as CoreDNS prints ``time.Since(start).Seconds()``:
    whole nanoseconds, shortest decimal form, then ``s`` (``0.00003799s``)."""
    ns = int(elapsed * 1e9)
    if ns < 1_000_000_000:
        if ns <= 0:
            return "0s"
        # Below a second Go's value is ns/1e9 rounded once, and nine significant digits always
        # read back as that double, so its shortest form is the decimal itself: no float needed.
        return f"0.{ns:09d}".rstrip("0") + "s"
    # Go's Duration.Seconds(): whole seconds plus the nanoseconds over 1e9, in float64.
    return _go_float(float(ns // 1_000_000_000) + float(ns % 1_000_000_000) / 1e9) + "s"


def _bracketed(host: str) -> str:
    return f"[{host}]" if ":" in host else host


# Each placeholder is a function of (request, recorded); request-side values never need the reply.
_Part = Callable[["Request", "Recorded | None"], str]


class FormatFunction(Protocol):
    """A compiled format: the line for a request and (when there is one) its recorded reply."""

    def __call__(self, req: Request, rec: Recorded | None = None) -> str: ...


def _type(req: Request, rec: Recorded | None) -> str:
    return type_name(req.qtype)


def _name(req: Request, rec: Recorded | None) -> str:
    return req.name


def _class(req: Request, rec: Recorded | None) -> str:
    return class_name(req.qclass)


def _proto(req: Request, rec: Recorded | None) -> str:
    return req.proto


def _size(req: Request, rec: Recorded | None) -> str:
    return str(len(req.wire))


def _remote(req: Request, rec: Recorded | None) -> str:
    host = req.remote[0]
    return f"[{host}]" if ":" in host else host


def _port(req: Request, rec: Recorded | None) -> str:
    return str(req.remote[1])


def _local(req: Request, rec: Recorded | None) -> str:
    local = req.local
    return _bracketed(local[0]) if local else EMPTY_VALUE


def _id(req: Request, rec: Recorded | None) -> str:
    return str(req.id)


def _opcode(req: Request, rec: Recorded | None) -> str:
    return str((req.flags >> 11) & 0xF)


def _do(req: Request, rec: Recorded | None) -> str:
    return "true" if req.edns_flags & 0x8000 else "false"


def _bufsize(req: Request, rec: Recorded | None) -> str:
    return str(req.size)


def _rcode(req: Request, rec: Recorded | None) -> str:
    if rec is None or rec.rcode is None:
        return EMPTY_VALUE
    return _RCODES.get(rec.rcode) or str(rec.rcode)


def _rsize(req: Request, rec: Recorded | None) -> str:
    return EMPTY_VALUE if rec is None else str(rec.size)


def _duration(req: Request, rec: Recorded | None) -> str:
    if rec is None:
        return EMPTY_VALUE
    return go_seconds(time.monotonic() - rec.start)


def _rflags(req: Request, rec: Recorded | None) -> str:
    if rec is None or rec.flags is None:
        return EMPTY_VALUE
    return rflags_text(rec.flags)


_VALUES: dict[str, _Part] = {
    "{type}": _type,
    "{name}": _name,
    "{class}": _class,
    "{proto}": _proto,
    "{size}": _size,
    "{remote}": _remote,
    "{port}": _port,
    "{local}": _local,
    "{>id}": _id,
    "{>opcode}": _opcode,
    "{>do}": _do,
    "{>bufsize}": _bufsize,
    "{rcode}": _rcode,
    "{rsize}": _rsize,
    "{duration}": _duration,
    "{>rflags}": _rflags,
}


def _metadata(label: str) -> _Part:
    def value(req: Request, rec: Recorded | None) -> str:
        found: Any = req.get_metadata(label)
        if found is None:
            return EMPTY_VALUE
        # CoreDNS stores metadata as functions evaluated when read; plain values work too.
        if callable(found):
            found = found()
        return str(found)

    return value


# Request-side placeholders that are a plain expression: inlined into the compiled format.
_INLINE = {
    "{type}": "_type_name(req.qtype)",
    "{name}": "req.name",
    "{class}": "_class_name(req.qclass)",
    "{proto}": "req.proto",
    "{size}": "len(req.wire)",
    "{port}": "req.remote[1]",
    "{>id}": "req.id",
    "{>opcode}": "(req.flags >> 11) & 15",
    "{>do}": "'true' if req.edns_flags & 32768 else 'false'",
    "{>bufsize}": "req.size",
}


class Replacer:
    """One format, compiled: ``replace(request, recorded)`` gives the formatted line.

    The format becomes the source of one function returning one f-string: literals and value
    functions are bound as names, simple request fields are read inline. That is about half the
    cost of calling a function per part, and the log line is built on every logged query.
    """

    __slots__ = ("format", "nodes", "replace")

    def __init__(self, fmt: str) -> None:
        self.format = fmt
        self.nodes = tuple(parse_format(fmt))
        self.replace: FormatFunction = self._compile(self.nodes)

    @staticmethod
    def _compile(nodes: tuple[tuple[str, str], ...]) -> FormatFunction:
        names: dict[str, Any] = {"_type_name": type_name, "_class_name": class_name}
        pieces = []
        for index, (kind, value) in enumerate(nodes):
            name = f"_p{index}"
            if kind == LITERAL:
                names[name] = value
                pieces.append(name)
            elif kind == LABEL and value in _INLINE:
                pieces.append(_INLINE[value])
            else:
                names[name] = _VALUES[value] if kind == LABEL else _metadata(value)
                pieces.append(f"{name}(req, rec)")
        body = "".join(f"{{{piece}}}" for piece in pieces)
        source = f'def replace(req, rec=None):\n    return f"{body}"\n'
        exec(compile(source, "<log format>", "exec"), names)
        replace: FormatFunction = names["replace"]
        return replace

    def __repr__(self) -> str:
        return f"Replacer({self.format!r})"
