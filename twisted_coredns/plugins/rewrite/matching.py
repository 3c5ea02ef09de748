"""The name matching the rewrite rules share: exact, prefix, suffix, substring and Go regexps with
``{N}`` groups in the replacement, and the string rewriters a reply's names go through."""

from __future__ import annotations

import re
from typing import Protocol

from ...goregexp import GoRegexpError, translate

MAX_REGEXP_LEN = 10000
EXACT, PREFIX, SUFFIX, SUBSTRING, REGEX = "exact", "prefix", "suffix", "substring", "regex"
MATCH_TYPES = (EXACT, PREFIX, SUFFIX, SUBSTRING, REGEX)
_GROUP = re.compile(r"\{(\d+)\}")


def fqdn_lower(text: str) -> str:
    """CoreDNS's ``plugin.Name(text).Normalize()``: fully qualified, lower case, nothing else."""
    return (text if text.endswith(".") else text + ".").lower()


def compile_go(pattern: str) -> re.Pattern[str]:
    """A Go regexp as a Python one; ``GoRegexpError`` where Go's ``regexp.Compile`` fails."""
    return re.compile(translate(pattern))


class Template:
    """A replacement with ``{0}``..``{N}`` for a pattern's groups, filled as CoreDNS fills it: group
    by group with a plain string replace (an unmatched group is empty). Cut into its text and its
    groups once, when that gives the same: its only braces are ``{N}`` with N a group of the
    pattern, so that (while no value holds a brace) no replacement can make a new ``{N}``."""

    __slots__ = ("pieces", "text")

    def __init__(self, text: str, groups: int) -> None:
        self.text = text
        self.pieces: tuple[str | int, ...] | None = None
        pieces: list[str | int] = []
        pos = 0
        for found in _PLACEHOLDER.finditer(text):
            if int(found.group(1)) > groups:
                return
            pieces.append(text[pos : found.start()])
            pieces.append(int(found.group(1)))
            pos = found.end()
        pieces.append(text[pos:])
        if any(type(piece) is str and ("{" in piece or "}" in piece) for piece in pieces):
            return
        self.pieces = tuple(piece for piece in pieces if piece != "")

    def fill(self, match: re.Match[str]) -> str:
        pieces = self.pieces
        if pieces is not None:
            whole = match.group(0)
            if "{" not in whole and "}" not in whole:
                # Every group lies in the whole match, so none holds a brace either.
                out = ""
                for piece in pieces:
                    out += piece if type(piece) is str else match.group(piece) or ""
                return out
        return substitute(self.text, match)


def substitute(template: str, match: re.Match[str]) -> str:
    """``{0}``..``{N}`` in ``template`` replaced by the match's groups, as CoreDNS does it: group
    by group with a plain string replace (an unmatched group is empty)."""
    out = template
    for index in range(match.re.groups + 1):
        out = out.replace("{" + str(index) + "}", match.group(index) or "")
    return out


_PLACEHOLDER = re.compile(r"\{(0|[1-9][0-9]*)\}")


def groups_used(template: str) -> int:
    """How many of ``{0}``..``{100}`` the template uses (CoreDNS's ``getSubExprUsage``)."""
    return sum(1 for i in range(101) if "{" + str(i) + "}" in template)


def checked_regexp(pattern: str, template: str) -> re.Pattern[str]:
    """CoreDNS's ``isValidRegexPattern``: the pattern compiles, is not too long, and has at least
    as many groups as the template uses. ``ValueError`` with CoreDNS's words otherwise."""
    if len(pattern) > MAX_REGEXP_LEN:
        raise ValueError(f"regex pattern too long: {len(pattern)} > {MAX_REGEXP_LEN}")
    try:
        compiled = compile_go(pattern)
    except (GoRegexpError, re.error):
        raise ValueError(f"invalid regex matching pattern: {pattern}") from None
    if groups_used(template) > compiled.groups:
        raise ValueError(
            f"the rewrite regex pattern ({template}) uses more subexpressions than its corresponding "
            f"matching regex pattern ({pattern})"
        )
    return compiled


def name_matcher(kind: str, what: str | re.Pattern[str]) -> NameTest:
    """A test of a (lower case) query name: does it match ``what`` as ``kind`` says?"""
    if kind == REGEX:
        assert isinstance(what, re.Pattern)
        search = what.search
        return lambda name: search(name) is not None
    assert isinstance(what, str)
    if kind == EXACT:
        return lambda name: name == what
    if kind == PREFIX:
        return lambda name: name.startswith(what)
    if kind == SUFFIX:
        return lambda name: name.endswith(what)
    return lambda name: what in name


class NameTest(Protocol):
    def __call__(self, name: str) -> bool: ...


class StringRewriter(Protocol):
    """Rewrites a name in a reply (CoreDNS's ``stringRewriter``)."""

    root: str
    """What the root name becomes (worked out once)."""

    def __call__(self, text: str) -> str: ...

    def keeps_labels(self, text: str) -> bool:
        """Whether, for any labels L, ``self(L + text) == L + self(text)``: a name made of labels in
        front of a pointer to ``text`` can keep its bytes when ``text`` changes to its rewrite."""
        ...


class RegexRewriter:
    """A name that matches ``pattern`` becomes ``template`` with its groups; others stay."""

    __slots__ = ("pattern", "root", "template")

    def __init__(self, pattern: re.Pattern[str], template: str) -> None:
        self.pattern, self.template = pattern, Template(template, pattern.groups)
        self.root = self(".")

    def __call__(self, text: str) -> str:
        match = self.pattern.search(text)
        return text if match is None else self.template.fill(match)

    def keeps_labels(self, text: str) -> bool:
        return False  # a pattern may see the labels in front


class RemapRewriter:
    """``original``, or a name ending in ``.original``, gets ``replacement`` in its place."""

    __slots__ = ("original", "replacement", "root")

    def __init__(self, original: str, replacement: str) -> None:
        self.original, self.replacement = original, replacement
        self.root = replacement if original == "." else "."  # self("."), made for every query

    def __call__(self, text: str) -> str:
        original = self.original
        if text == original:
            return self.replacement
        cut = len(text) - len(original)
        if cut > 0 and text[cut - 1] == "." and text[cut:] == original:
            return text[:cut] + self.replacement
        return text

    def keeps_labels(self, text: str) -> bool:
        return text == self.original


class SuffixRewriter:
    """A name ending in ``suffix`` gets ``replacement`` for it."""

    __slots__ = ("replacement", "root", "suffix")

    def __init__(self, suffix: str, replacement: str) -> None:
        self.suffix, self.replacement = suffix, replacement
        self.root = self(".")

    def __call__(self, text: str) -> str:
        if text.endswith(self.suffix):
            return text[: len(text) - len(self.suffix)] + self.replacement
        return text

    def keeps_labels(self, text: str) -> bool:
        return text.endswith(self.suffix)


def regex_rewriter(pattern: re.Pattern[str], template: str) -> StringRewriter:
    return RegexRewriter(pattern, template)


def remap_rewriter(original: str, replacement: str) -> StringRewriter:
    return RemapRewriter(original, replacement)


def suffix_rewriter(suffix: str, replacement: str) -> StringRewriter:
    return SuffixRewriter(suffix, replacement)
