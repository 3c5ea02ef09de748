"""Go regular expressions (RE2 syntax) on Python's ``re``, with Go's error messages.

A Corefile's ``consolidate 5m ".* i/o timeout$"`` is a Go ``regexp``: it must accept what Go
accepts, reject what Go rejects with Go's words (``error parsing regexp: missing closing ):
`(abc```), and match what Go matches. Python's ``re`` differs in all three ways (``\\12`` is a
back-reference there and an octal escape in Go, ``$`` tolerates a final newline, ``\\s`` includes
``\\v``, ``a{,3}`` is a repetition, ``[[:alpha:]]`` is not a class, look-arounds exist...), so the
pattern is parsed here as Go's ``regexp/syntax`` parses it (Perl flags, the ones ``regexp.Compile``
uses) and rewritten into an equivalent Python pattern: every literal, class and anchor spelled out
explicitly, flags applied per atom so that ``(?i)`` in the middle of a group scopes as in Go.

Not carried over: Unicode script classes (``\\p{Greek}``; general categories such as ``\\pL`` work),
and Go's limits on compiled program size.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, field

__all__ = ["GoRegexp", "GoRegexpError", "compile_go", "translate"]

MAX_RUNE = 0x10FFFF
MAX_REPEAT = 1000

# Parser flags that change what an atom means (Go's syntax.Flags, those that matter here).
_FOLD = 1  # (?i)
_DOTNL = 2  # (?s)
_ONELINE = 4  # not (?m)
_NONGREEDY = 8  # (?U)
_PERL_DEFAULT = _ONELINE  # regexp.Compile: syntax.Perl = ClassNL | OneLine | PerlX | UnicodeGroups
_MASK = 0xF

# Go's error codes (regexp/syntax.ErrorCode).
ERR_INVALID_CHAR_RANGE = "invalid character class range"
ERR_INVALID_ESCAPE = "invalid escape sequence"
ERR_INVALID_NAMED_CAPTURE = "invalid named capture"
ERR_INVALID_PERL_OP = "invalid or unsupported Perl syntax"
ERR_INVALID_REPEAT_OP = "invalid nested repetition operator"
ERR_INVALID_REPEAT_SIZE = "invalid repeat count"
ERR_MISSING_BRACKET = "missing closing ]"
ERR_MISSING_PAREN = "missing closing )"
ERR_MISSING_REPEAT_ARGUMENT = "missing argument to repetition operator"
ERR_TRAILING_BACKSLASH = "trailing backslash at end of expression"
ERR_UNEXPECTED_PAREN = "unexpected )"


class GoRegexpError(ValueError):
    """A pattern Go's ``regexp.Compile`` rejects; ``str()`` is Go's message."""

    def __init__(self, code: str, expr: str) -> None:
        super().__init__(f"error parsing regexp: {code}: `{expr}`")
        self.code = code
        self.expr = expr


Ranges = list[tuple[int, int]]

_PERL_GROUPS: dict[str, tuple[int, Ranges]] = {
    "\\d": (+1, [(0x30, 0x39)]),
    "\\D": (-1, [(0x30, 0x39)]),
    "\\s": (+1, [(0x09, 0x0A), (0x0C, 0x0D), (0x20, 0x20)]),
    "\\S": (-1, [(0x09, 0x0A), (0x0C, 0x0D), (0x20, 0x20)]),
    "\\w": (+1, [(0x30, 0x39), (0x41, 0x5A), (0x5F, 0x5F), (0x61, 0x7A)]),
    "\\W": (-1, [(0x30, 0x39), (0x41, 0x5A), (0x5F, 0x5F), (0x61, 0x7A)]),
}

_POSIX = {
    "alnum": [(0x30, 0x39), (0x41, 0x5A), (0x61, 0x7A)],
    "alpha": [(0x41, 0x5A), (0x61, 0x7A)],
    "ascii": [(0x00, 0x7F)],
    "blank": [(0x09, 0x09), (0x20, 0x20)],
    "cntrl": [(0x00, 0x1F), (0x7F, 0x7F)],
    "digit": [(0x30, 0x39)],
    "graph": [(0x21, 0x7E)],
    "lower": [(0x61, 0x7A)],
    "print": [(0x20, 0x7E)],
    "punct": [(0x21, 0x2F), (0x3A, 0x40), (0x5B, 0x60), (0x7B, 0x7E)],
    "space": [(0x09, 0x0D), (0x20, 0x20)],
    "upper": [(0x41, 0x5A)],
    "word": [(0x30, 0x39), (0x41, 0x5A), (0x5F, 0x5F), (0x61, 0x7A)],
    "xdigit": [(0x30, 0x39), (0x41, 0x46), (0x61, 0x66)],
}
_POSIX_GROUPS: dict[str, tuple[int, Ranges]] = {}
for _name, _ranges in _POSIX.items():
    _POSIX_GROUPS[f"[:{_name}:]"] = (+1, _ranges)
    _POSIX_GROUPS[f"[:^{_name}:]"] = (-1, _ranges)

_ESCAPES = {"a": 7, "f": 12, "n": 10, "r": 13, "t": 9, "v": 11}


def _clean(ranges: Ranges) -> Ranges:
    """Sorted, merged ranges (Go's cleanClass)."""
    out: Ranges = []
    for lo, hi in sorted(ranges):
        if out and lo <= out[-1][1] + 1:
            if hi > out[-1][1]:
                out[-1] = (out[-1][0], hi)
        else:
            out.append((lo, hi))
    return out


def _negate(ranges: Ranges) -> Ranges:
    out: Ranges = []
    next_lo = 0
    for lo, hi in _clean(ranges):
        if next_lo <= lo - 1:
            out.append((next_lo, lo - 1))
        next_lo = hi + 1
    if next_lo <= MAX_RUNE:
        out.append((next_lo, MAX_RUNE))
    return out


_category_cache: dict[str, Ranges] = {}


def _category_ranges(names: tuple[str, ...]) -> Ranges:
    """Code points whose general category is one of ``names`` (or starts with a one-letter one)."""
    key = ",".join(names)
    found = _category_cache.get(key)
    if found is None:
        found = []
        start = -1
        for cp in range(MAX_RUNE + 2):
            inside = cp <= MAX_RUNE and unicodedata.category(chr(cp)).startswith(names)
            if inside and start < 0:
                start = cp
            elif not inside and start >= 0:
                found.append((start, cp - 1))
                start = -1
        _category_cache[key] = found
    return found


_TWO_LETTER = frozenset(
    "Cc Cf Co Cs Ll Lm Lo Lt Lu Mc Me Mn Nd Nl No Pc Pd Pe Pf Pi Po Ps Sc Sk Sm So Zl Zp Zs".split()
)


def _canonical(name: str) -> str:
    """Go's canonicalName: a leading capital, the rest lower case, no ``_``, ``-`` or space."""
    out = []
    first = True
    for ch in name:
        if ch in "_- ":
            continue
        if first:
            out.append(ch.upper() if "a" <= ch <= "z" else ch)
            first = False
        else:
            out.append(ch.lower() if "A" <= ch <= "Z" else ch)
    return "".join(out)


def _unicode_table(name: str) -> tuple[int, Ranges] | None:
    name = _canonical(name)
    if name == "Any":
        return +1, [(0, MAX_RUNE)]
    if name == "Ascii":
        return +1, [(0, 0x7F)]
    if name == "Assigned":
        return -1, _category_ranges(("Cn",))
    if name == "Lc":
        return +1, _category_ranges(("Lu", "Ll", "Lt"))
    if name in _TWO_LETTER:
        return +1, _category_ranges((name,))
    if name == "C":
        # Go's C is Cc, Cf, Co and Cs: unassigned code points (Cn) are not in it.
        return +1, _category_ranges(("Cc", "Cf", "Co", "Cs"))
    if name in ("L", "M", "N", "P", "S", "Z"):
        return +1, _category_ranges((name,))
    return None


def _char(cp: int) -> str:
    """A code point as an unambiguous Python pattern character (inside or outside a class)."""
    if cp < 0x80 and chr(cp).isalnum():
        return chr(cp)
    if cp < 0x100:
        return f"\\x{cp:02x}"
    if cp < 0x10000:
        return f"\\u{cp:04x}"
    return f"\\U{cp:08x}"


def _class_text(ranges: Ranges, negated: bool, flags: int) -> str:
    ranges = _clean(ranges)
    if not ranges:
        text = "(?s:.)" if negated else "(?!)"
    else:
        body = "".join(_char(lo) if lo == hi else f"{_char(lo)}-{_char(hi)}" for lo, hi in ranges)
        text = f"[{'^' if negated else ''}{body}]"
    return f"(?i:{text})" if flags & _FOLD else text


@dataclass
class _Node:
    """Just enough of the parse tree for Go's repeat-count check."""

    repeat: int | None = None  # for x{n,m}: m, or n when unbounded; None for anything else
    subs: list[_Node] = field(default_factory=list)


def _repeat_is_valid(node: _Node, n: int) -> bool:
    if node.repeat is not None:
        m = node.repeat
        if m == 0:
            return True
        if m > n:
            return False
        n //= m
    return all(_repeat_is_valid(sub, n) for sub in node.subs)


@dataclass
class _Atom:
    text: str
    node: _Node


@dataclass
class _Frame:
    """An open parenthesis, or the whole expression (``opener`` is None)."""

    opener: str | None  # "(" for a capture, "(?:" for a group
    flags: int
    alternatives: list[list[_Atom]] = field(default_factory=lambda: [[]])


class _Parser:
    def __init__(self, whole: str) -> None:
        self.whole = whole
        self.flags = _PERL_DEFAULT
        self.frames = [_Frame(None, self.flags)]

    @property
    def current(self) -> list[_Atom]:
        return self.frames[-1].alternatives[-1]

    def push(self, text: str) -> None:
        self.current.append(_Atom(text, _Node()))

    def literal(self, cp: int) -> None:
        text = _char(cp)
        self.push(f"(?i:{text})" if self.flags & _FOLD else text)

    def klass(self, ranges: Ranges, negated: bool = False) -> None:
        self.push(_class_text(ranges, negated, self.flags))

    # -- the main loop, Go's parse() -----------------------------------------------------------

    def parse(self) -> str:
        t = self.whole
        last_repeat = ""
        while t:
            repeat = ""
            c = t[0]
            if c == "(":
                if len(t) >= 2 and t[1] == "?":
                    t = self.perl_flags(t)
                else:
                    self.frames.append(_Frame("(", self.flags))
                    t = t[1:]
            elif c == "|":
                self.frames[-1].alternatives.append([])
                t = t[1:]
            elif c == ")":
                self.right_paren()
                t = t[1:]
            elif c == "^":
                self.push("^" if self.flags & _ONELINE else "(?m:^)")
                t = t[1:]
            elif c == "$":
                self.push("\\Z" if self.flags & _ONELINE else "(?m:$)")
                t = t[1:]
            elif c == ".":
                self.push("(?s:.)" if self.flags & _DOTNL else ".")
                t = t[1:]
            elif c == "[":
                t = self.parse_class(t)
            elif c in "*+?":
                before = t
                t = self.repeat(c, None, before, t[1:], last_repeat)
                repeat = before
            elif c == "{":
                before = t
                parsed = _parse_repeat(t)
                if parsed is None:
                    self.literal(ord("{"))
                    t = t[1:]
                else:
                    lo, hi, after = parsed
                    if lo < 0 or lo > MAX_REPEAT or hi > MAX_REPEAT or (hi >= 0 and lo > hi):
                        raise GoRegexpError(ERR_INVALID_REPEAT_SIZE, before[: len(before) - len(after)])
                    t = self.repeat("{", (lo, hi), before, after, last_repeat)
                    repeat = before
            elif c == "\\":
                t = self.backslash(t)
            else:
                self.literal(ord(c))
                t = t[1:]
            last_repeat = repeat
        if len(self.frames) != 1:
            raise GoRegexpError(ERR_MISSING_PAREN, self.whole)
        frame = self.frames[0]
        return "|".join("".join(a.text for a in alt) for alt in frame.alternatives)

    def right_paren(self) -> None:
        if len(self.frames) < 2:
            raise GoRegexpError(ERR_UNEXPECTED_PAREN, self.whole)
        frame = self.frames.pop()
        self.flags = frame.flags
        body = "|".join("".join(a.text for a in alt) for alt in frame.alternatives)
        node = _Node(subs=[a.node for alt in frame.alternatives for a in alt])
        self.current.append(_Atom(f"{frame.opener}{body})", node))

    def repeat(
        self, op: str, counts: tuple[int, int] | None, before: str, after: str, last_repeat: str
    ) -> str:
        flags = self.flags
        if after.startswith("?"):
            after = after[1:]
            flags ^= _NONGREEDY
        if last_repeat:
            # Go (like Perl) rejects a**; a++ would be possessive elsewhere.
            raise GoRegexpError(ERR_INVALID_REPEAT_OP, last_repeat[: len(last_repeat) - len(after)])
        atoms = self.current
        if not atoms:
            raise GoRegexpError(ERR_MISSING_REPEAT_ARGUMENT, before[: len(before) - len(after)])
        sub = atoms[-1]
        if counts is None:
            quantifier = op
            node = _Node(subs=[sub.node])
        else:
            lo, hi = counts
            quantifier = f"{{{lo}}}" if lo == hi else f"{{{lo},}}" if hi < 0 else f"{{{lo},{hi}}}"
            node = _Node(repeat=hi if hi >= 0 else lo, subs=[sub.node])
        if flags & _NONGREEDY:
            quantifier += "?"
        atoms[-1] = _Atom(f"(?:{sub.text}){quantifier}", node)
        counted = counts is not None and (counts[0] >= 2 or counts[1] >= 2)
        if counted and not _repeat_is_valid(node, MAX_REPEAT):
            raise GoRegexpError(ERR_INVALID_REPEAT_SIZE, before[: len(before) - len(after)])
        return after

    def perl_flags(self, s: str) -> str:
        """``(?P<name>``, ``(?<name>``, ``(?flags)``, ``(?flags:`` (Go's parsePerlFlags)."""
        starts_with_p = len(s) > 4 and s[2] == "P" and s[3] == "<"
        starts_with_name = len(s) > 3 and s[2] == "<"
        if starts_with_p or starts_with_name:
            expr_start = 4 if starts_with_p else 3
            end = s.find(">")
            if end < 0:
                raise GoRegexpError(ERR_INVALID_NAMED_CAPTURE, s)
            capture = s[: end + 1]
            name = s[expr_start:end]
            if not name or not all(ch == "_" or (ch < "\x80" and ch.isalnum()) for ch in name):
                raise GoRegexpError(ERR_INVALID_NAMED_CAPTURE, capture)
            # Group names are not used when matching; Go allows names Python does not (``1a``).
            self.frames.append(_Frame("(", self.flags))
            return s[end + 1 :]
        t = s[2:]
        flags = self.flags
        sign = +1
        saw_flag = False
        while t:
            c, t = t[0], t[1:]
            if c == "i":
                flags |= _FOLD
                saw_flag = True
            elif c == "m":
                flags &= ~_ONELINE
                saw_flag = True
            elif c == "s":
                flags |= _DOTNL
                saw_flag = True
            elif c == "U":
                flags |= _NONGREEDY
                saw_flag = True
            elif c == "-":
                if sign < 0:
                    break
                sign = -1
                flags = ~flags
                saw_flag = False
            elif c in ":)":
                if sign < 0:
                    if not saw_flag:
                        break
                    flags = ~flags
                if c == ":":
                    self.frames.append(_Frame("(?:", self.flags))
                self.flags = flags & _MASK
                return t
            else:
                break
        raise GoRegexpError(ERR_INVALID_PERL_OP, s[: len(s) - len(t)])

    def backslash(self, t: str) -> str:
        if len(t) >= 2:
            c = t[1]
            if c == "A":
                self.push("\\A")
                return t[2:]
            if c in "bB":
                self.push(f"(?a:\\{c})")  # Go's word boundaries are ASCII
                return t[2:]
            if c == "C":
                raise GoRegexpError(ERR_INVALID_ESCAPE, t[:2])
            if c == "Q":
                lit, sep, rest = t[2:].partition("\\E")
                for ch in lit:
                    self.literal(ord(ch))
                return rest if sep else ""
            if c == "z":
                self.push("\\Z")
                return t[2:]
            if c in "pP":
                sign, ranges, rest = self.unicode_class(t)
                self.klass(ranges if sign > 0 else _negate(ranges))
                return rest
            group = _PERL_GROUPS.get(t[:2])
            if group is not None:
                sign, ranges = group
                self.klass(ranges if sign > 0 else _negate(ranges))
                return t[2:]
        cp, rest = _parse_escape(t)
        self.literal(cp)
        return rest

    def unicode_class(self, s: str) -> tuple[int, Ranges, str]:
        """``\\pL``, ``\\p{Lu}``, ``\\PN``, ``\\p{^Greek}`` (Go's parseUnicodeClass)."""
        sign = -1 if s[1] == "P" else +1
        if len(s) < 3:
            raise GoRegexpError(ERR_INVALID_CHAR_RANGE, s)
        if s[2] != "{":
            seq, rest = s[:3], s[3:]
            name = seq[2:]
        else:
            end = s.find("}")
            if end < 0:
                raise GoRegexpError(ERR_INVALID_CHAR_RANGE, s)
            seq, rest = s[: end + 1], s[end + 1 :]
            name = s[3:end]
        if name.startswith("^"):
            sign, name = -sign, name[1:]
        table = _unicode_table(name)
        if table is None:
            raise GoRegexpError(ERR_INVALID_CHAR_RANGE, seq)
        tsign, ranges = table
        return sign * tsign, ranges, rest

    def parse_class(self, s: str) -> str:
        """A bracketed class (Go's parseClass)."""
        t = s[1:]
        negated = False
        if t.startswith("^"):
            negated = True
            t = t[1:]
        ranges: Ranges = []
        first = True
        while t == "" or t[0] != "]" or first:
            first = False
            if len(t) > 2 and t[0] == "[" and t[1] == ":":
                i = t.find(":]", 2)
                if i >= 0:
                    name = t[: i + 2]
                    group = _POSIX_GROUPS.get(name)
                    if group is None:
                        raise GoRegexpError(ERR_INVALID_CHAR_RANGE, name)
                    sign, extra = group
                    ranges.extend(extra if sign > 0 else _negate(extra))
                    t = t[i + 2 :]
                    continue
            if len(t) >= 2 and t[0] == "\\" and t[1] in "pP":
                sign, extra, t = self.unicode_class(t)
                ranges.extend(extra if sign > 0 else _negate(extra))
                continue
            group = _PERL_GROUPS.get(t[:2]) if len(t) >= 2 else None
            if group is not None:
                sign, extra = group
                ranges.extend(extra if sign > 0 else _negate(extra))
                t = t[2:]
                continue
            rng = t
            lo, t = _class_char(t, s)
            hi = lo
            if len(t) >= 2 and t[0] == "-" and t[1] != "]":
                t = t[1:]
                hi, t = _class_char(t, s)
                if hi < lo:
                    raise GoRegexpError(ERR_INVALID_CHAR_RANGE, rng[: len(rng) - len(t)])
            ranges.append((lo, hi))
        self.klass(ranges, negated)
        return t[1:]


def _class_char(t: str, whole_class: str) -> tuple[int, str]:
    if not t:
        raise GoRegexpError(ERR_MISSING_BRACKET, whole_class)
    if t[0] == "\\":
        return _parse_escape(t)
    return ord(t[0]), t[1:]


_OCTAL = "01234567"
_HEX = "0123456789abcdefABCDEF"


def _parse_escape(s: str) -> tuple[int, str]:
    """One escaped character (Go's parseEscape): octal, hex, C escapes, escaped punctuation."""
    t = s[1:]
    if not t:
        raise GoRegexpError(ERR_TRAILING_BACKSLASH, "")
    c, t = t[0], t[1:]
    if c < "\x80" and not c.isalnum():
        return ord(c), t
    if c in "1234567" and (not t or t[0] not in _OCTAL):
        pass  # a single non-zero digit would be a back-reference: not supported
    elif c in _OCTAL:
        value = ord(c) - 48
        for _ in range(2):
            if not t or t[0] not in _OCTAL:
                break
            value = value * 8 + ord(t[0]) - 48
            t = t[1:]
        return value, t
    elif c == "x" and t:
        c2, t = t[0], t[1:]
        if c2 == "{":
            digits = 0
            value = 0
            while True:
                if not t:
                    break
                c3, t = t[0], t[1:]
                if c3 == "}":
                    if digits:
                        return value, t
                    break
                if c3 not in _HEX:
                    break
                value = value * 16 + int(c3, 16)
                if value > MAX_RUNE:
                    break
                digits += 1
        else:
            if t:
                c3, t = t[0], t[1:]
                if c2 in _HEX and c3 in _HEX:
                    return int(c2 + c3, 16), t
            else:
                t = ""
    elif c in _ESCAPES:
        return _ESCAPES[c], t
    raise GoRegexpError(ERR_INVALID_ESCAPE, s[: len(s) - len(t)])


def _parse_repeat(s: str) -> tuple[int, int, str] | None:
    """``{n}``, ``{n,}``, ``{n,m}`` (Go's parseRepeat); None when ``{`` is a plain character.
    A number too large gives ``lo == -1``."""
    m = re.match(r"\{(0|[1-9][0-9]*)(,(0|[1-9][0-9]*)?)?\}", s)
    if m is None:
        return None

    def number(text: str) -> int:
        # Go stops reading at ten digits and reports -1 ("too big").
        return -1 if len(text) > 9 else int(text)

    lo = number(m.group(1))
    if m.group(2) is None:
        hi = lo
    elif m.group(3) is None:
        hi = -1
    else:
        hi = number(m.group(3))
        if hi < 0:
            lo = -1
    return lo, hi, s[m.end() :]


def translate(pattern: str) -> str:
    """The Python pattern that matches what the Go pattern ``pattern`` matches; raises
    ``GoRegexpError`` with Go's message for a pattern Go rejects."""
    return _Parser(pattern).parse()


class GoRegexp:
    """A compiled Go regular expression: ``str()`` is its source, as Go's ``String()``."""

    __slots__ = ("_search", "pattern", "python")

    def __init__(self, pattern: str) -> None:
        self.pattern = pattern
        self.python = translate(pattern)
        self._search = re.compile(self.python).search

    def match_string(self, text: str) -> bool:
        """Go's ``MatchString``: does any part of ``text`` match?"""
        return self._search(text) is not None

    def __str__(self) -> str:
        return self.pattern

    def __repr__(self) -> str:
        return f"GoRegexp({self.pattern!r})"


def compile_go(pattern: str) -> GoRegexp:
    """Go's ``regexp.Compile``."""
    return GoRegexp(pattern)
