"""The rule types of ``rewrite``: name, class, type, ttl, rcode and cname (edns0 is in ``edns0``).

A rule's ``apply(query)`` changes the query in place and gives what the reply needs undone (a
``Reversal``, ``NOTHING`` when nothing), or None when it does not match. ``mode`` is ``stop`` or
``continue``.
"""

from __future__ import annotations

import re
from typing import Any

from ...dns.constants import class_value, rcode_value, type_value
from ...strconv import parse_uint
from .answers import NOTHING, RcodeAnswer, Reversal
from .matching import (
    EXACT,
    MATCH_TYPES,
    MAX_REGEXP_LEN,
    PREFIX,
    REGEX,
    SUBSTRING,
    SUFFIX,
    NameTest,
    StringRewriter,
    Template,
    checked_regexp,
    compile_go,
    fqdn_lower,
    name_matcher,
    regex_rewriter,
    remap_rewriter,
    substitute,
    suffix_rewriter,
)
from .query import Query

STOP, CONTINUE = "stop", "continue"


class Rule:
    mode = STOP
    by_question = True
    """Whether what the rule does depends on the question alone (not on the client, its EDNS
    options or metadata): the handler then remembers its outcome per question."""

    def apply(self, query: Query) -> Reversal | None:
        raise NotImplementedError


# -- name ------------------------------------------------------------------------------------------


class NameRule(Rule):
    """``name [exact|prefix|suffix|substring|regex] FROM TO [answer ...]``."""

    def __init__(self, mode: str, kind: str, source: str, target: str, auto: bool,
                 answers: Reversal, pattern: re.Pattern[str] | None = None) -> None:
        self.mode = mode
        self.kind = kind
        self.source = source
        self.target = target
        self.auto = auto
        self.answers = answers
        # Without auto (a suffix rule's is in ``answers``), the reply's names keep the name asked.
        self.fixed = answers if answers.owner or answers.value else answers.not_inverse()
        self.pattern = pattern

    def apply(self, query: Query) -> Reversal | None:
        before = query.name
        after = self.renamed(before)
        if after is None:
            return None
        query.set_name(after)
        if not self.auto:
            return self.fixed
        # The reply's names go back from the name asked to the name the client asked (lower case).
        back = remap_rewriter(after, before)
        answers = self.answers
        return Reversal((*answers.owner, back), (*answers.value, back), answers.ttls, inverse=answers.inverse)

    def renamed(self, name: str) -> str | None:
        """The new name for ``name`` (lower case), or None when the rule does not match it."""
        raise NotImplementedError


class ExactNameRule(NameRule):
    def renamed(self, name: str) -> str | None:
        return self.target if name == self.source else None


class PrefixNameRule(NameRule):
    def renamed(self, name: str) -> str | None:
        return self.target + name[len(self.source) :] if name.startswith(self.source) else None


class SuffixNameRule(NameRule):
    def renamed(self, name: str) -> str | None:
        source = self.source
        return name[: len(name) - len(source)] + self.target if name.endswith(source) else None


class SubstringNameRule(NameRule):
    def renamed(self, name: str) -> str | None:
        return name.replace(self.source, self.target) if self.source in name else None


class RegexNameRule(NameRule):
    def __init__(self, mode: str, kind: str, source: str, target: str, auto: bool,
                 answers: Reversal, pattern: re.Pattern[str] | None = None) -> None:
        super().__init__(mode, kind, source, target, auto, answers, pattern)
        assert pattern is not None
        self.search = pattern.search
        self.template = Template(target, pattern.groups)

    def renamed(self, name: str) -> str | None:
        match = self.search(name)
        return None if match is None else self.template.fill(match)


_NAME_RULES: dict[str, type[NameRule]] = {
    EXACT: ExactNameRule, PREFIX: PrefixNameRule, SUFFIX: SuffixNameRule, SUBSTRING: SubstringNameRule,
    REGEX: RegexNameRule,
}


def _answer_rules(kind: str, args: list[str]) -> tuple[bool, Reversal]:
    """CoreDNS's ``parseAnswerRules``: ``answer auto``, ``answer name FROM TO``, ``answer value
    FROM TO``, the word ``answer`` optional after the first."""
    if len(args) < 2:
        raise ValueError(f"invalid arguments for {kind} rule")
    auto = False
    owner: list[StringRewriter] = []
    value: list[StringRewriter] = []
    last = ""
    i = 0
    while i < len(args):
        if last == "" and args[i] != "answer":
            raise ValueError(
                f"exceeded the number of arguments for a non-answer rule argument for {kind} rule"
            )
        if args[i] == "answer":
            i += 1
        if i == len(args):
            raise ValueError(f"type missing for answer rule for {kind} rule")
        last = args[i]
        i += 1
        if last == "auto":
            auto = True
            continue
        if last not in ("name", "value"):
            raise ValueError(f'invalid type "{last}" for answer rule for {kind} rule')
        if len(args) - i < 2:
            raise ValueError(f"{last} answer rule for {kind} rule: 2 arguments required")
        source, target = args[i], args[i + 1]
        try:
            pattern = checked_regexp(source, target)
        except ValueError as exc:
            raise ValueError(f"{last} answer rule for {kind} rule: {exc}") from None
        rewrite = regex_rewriter(pattern, fqdn_lower(target))
        (owner if last == "name" else value).append(rewrite)
        i += 2
    if auto and owner:
        raise ValueError("auto name answer rule cannot be combined with explicit name anwer rules")
    # CoreDNS runs the response rules last first.
    return auto, Reversal(tuple(reversed(owner)), tuple(reversed(value)), inverse=not (owner or value))


def new_name_rule(mode: str, args: list[str]) -> NameRule:
    if len(args) < 2:
        raise ValueError("too few arguments for a name rule")
    if len(args) == 2:
        kind, source, target = EXACT, fqdn_lower(args[0]), fqdn_lower(args[1])
    else:
        kind = args[0].lower()
        if kind == REGEX:
            source, target = args[1], args[2]
        else:
            source, target = fqdn_lower(args[1]), fqdn_lower(args[2])
    auto, answers = (False, NOTHING) if len(args) <= 3 else _answer_rules(kind, args[3:])
    if kind == EXACT:
        # CoreDNS checks the target as a regexp here (its arguments the other way round).
        checked_regexp(target, source)
        return ExactNameRule(mode, EXACT, source, target, True, answers)
    if kind == SUFFIX:
        if auto:
            back = suffix_rewriter(target, source)
            answers = Reversal((*answers.owner, back), (*answers.value, back), inverse=answers.inverse)
        return SuffixNameRule(mode, SUFFIX, source, target, False, answers)
    if kind in (PREFIX, SUBSTRING):
        return _NAME_RULES[kind](mode, kind, source, target, auto, answers)
    if kind == REGEX:
        pattern = checked_regexp(source, target)
        return RegexNameRule(mode, REGEX, source, fqdn_lower(args[2]), auto, answers, pattern)
    raise ValueError(
        f"name rule supports only exact, prefix, suffix, substring, and regex name matching, received: {kind}"
    )


# -- class and type --------------------------------------------------------------------------------


class ClassRule(Rule):
    def __init__(self, mode: str, source: int, target: int) -> None:
        self.mode, self.source, self.target = mode, source, target

    def apply(self, query: Query) -> Reversal | None:
        if self.source and self.target and query.qclass == self.source:
            query.qclass = self.target
            query.changed = True
            return NOTHING
        return None


class TypeRule(Rule):
    def __init__(self, mode: str, source: int, target: int) -> None:
        self.mode, self.source, self.target = mode, source, target

    def apply(self, query: Query) -> Reversal | None:
        if self.source and self.target and query.qtype == self.source:
            query.qtype = self.target
            query.changed = True
            return NOTHING
        return None


_CLASSES = {"IN": 1, "INET": 1, "CS": 2, "CSNET": 2, "CH": 3, "CHAOS": 3, "HS": 4, "NONE": 254, "ANY": 255}


def new_class_rule(mode: str, args: list[str]) -> ClassRule:
    values = []
    for arg in args:
        upper = arg.upper()
        value = _CLASSES.get(upper)
        if value is None:
            try:
                value = class_value(upper) if upper.startswith("CLASS") else None
            except ValueError:
                value = None
        if value is None:
            raise ValueError(f'invalid class "{upper}"')
        values.append(value)
    return ClassRule(mode, values[0], values[1])


def new_type_rule(mode: str, args: list[str]) -> TypeRule:
    values = []
    for arg in args:
        upper = arg.upper()
        try:
            if upper.startswith("TYPE"):
                raise ValueError  # miekg's StringToType knows names only
            values.append(type_value(upper))
        except ValueError:
            raise ValueError(f'invalid type "{upper}"') from None
    return TypeRule(mode, values[0], values[1])


# -- ttl and rcode: a name test, and a change to the reply --------------------------------------------


class ReplyRule(Rule):
    def __init__(self, mode: str, test: NameTest, answer: Reversal) -> None:
        self.mode, self.test, self.answer = mode, test, answer

    def apply(self, query: Query) -> Reversal | None:
        return self.answer if self.test(query.name) else None


def _name_test(field: str, kind: str, what: str) -> NameTest:
    kind = kind.lower()
    if kind == REGEX:
        if len(what) > MAX_REGEXP_LEN:
            raise ValueError(f"regex pattern too long in a {field} rule: {len(what)} > {MAX_REGEXP_LEN}")
        try:
            return name_matcher(REGEX, compile_go(what))
        except (ValueError, re.error):
            raise ValueError(f"invalid regex pattern in a {field} rule: {what}") from None
    if kind not in MATCH_TYPES:
        raise ValueError(
            f"{field} rule supports only exact, prefix, suffix, substring, and regex name matching"
        )
    return name_matcher(kind, fqdn_lower(what))


def _ttl_range(text: str) -> tuple[int, int] | None:
    parts = text.split("-")

    def number(part: str) -> int:
        return parse_uint(part, 32)

    try:
        if len(parts) == 1:
            value = number(parts[0])
            return value, value
        if len(parts) == 2:
            low = number(parts[0]) if parts[0] else 0
            if not parts[1]:
                if not parts[0]:
                    return None
                high = 2147483647
            else:
                high = number(parts[1])
            return (low, high) if low <= high else None
    except ValueError:
        return None
    return None


def new_ttl_rule(mode: str, args: list[str]) -> ReplyRule:
    if len(args) < 2:
        raise ValueError(f"too few ({len(args)}) arguments for a ttl rule")
    text = args[1] if len(args) == 2 else args[2] if len(args) == 3 else ""
    limits = _ttl_range(text)
    if limits is None:
        raise ValueError(f"invalid TTL '{text}' for a ttl rule")
    answer = Reversal(ttls=(limits,))
    if len(args) == 3:
        return ReplyRule(mode, _name_test("ttl", args[0], args[1]), answer)
    if len(args) > 3:
        raise ValueError("many few arguments for a ttl rule")
    return ReplyRule(mode, name_matcher(EXACT, fqdn_lower(args[0])), answer)


def _rcode(text: str) -> int | None:
    try:
        value = parse_uint(text, 32)
        if value <= 23:
            return value
    except ValueError:
        pass
    try:
        return rcode_value(text.upper())
    except ValueError:
        return None


def new_rcode_rule(mode: str, args: list[str]) -> ReplyRule:
    if len(args) < 3:
        raise ValueError(f"too few ({len(args)}) arguments for a rcode rule")
    old_text, new_text = "", ""
    if len(args) in (3, 4):
        old_text, new_text = args[-2], args[-1]
    old = _rcode(old_text)
    if old is None:
        raise ValueError(f"invalid matching RCODE '{old_text}' for a rcode rule")
    new = _rcode(new_text)
    if new is None:
        raise ValueError(f"invalid replacement RCODE '{new_text}' for a rcode rule")
    answer = Reversal(fields=(RcodeAnswer(old, new),))
    if len(args) == 4:
        return ReplyRule(mode, _name_test("rcode", args[0], args[1]), answer)
    if len(args) > 4:
        raise ValueError("many few arguments for a rcode rule")
    return ReplyRule(mode, name_matcher(EXACT, fqdn_lower(args[0])), answer)


# -- cname -------------------------------------------------------------------------------------------


class CnameRule(Rule):
    """``cname [TYPE] FROM TO``: a CNAME target in the reply that matches is rewritten, and what
    follows it replaced by the answer for the new target, asked of this server block."""

    by_question = False  # its reversal holds the request, to ask the chain again

    def __init__(self, mode: str, kind: str, source: str, target: str,
                 pattern: re.Pattern[str] | None) -> None:
        self.mode, self.kind, self.source, self.target, self.pattern = mode, kind, source, target, pattern
        self.lookup: Any = None  # set by the handler: asks the block's chain

    def new_target(self, current: str) -> str | None:
        """The rewritten target for a CNAME target, or None when it does not match."""
        kind, source, target = self.kind, self.source, self.target
        if kind == EXACT:
            return target if current == source else None
        if kind == PREFIX:
            return target + current[len(source):] if current.startswith(source) else None
        if kind == SUFFIX:
            return current[: len(current) - len(source)] + target if current.endswith(source) else None
        if kind == SUBSTRING:
            return current.replace(source, target) if source in current else None
        assert self.pattern is not None
        match = self.pattern.search(current)
        return None if match is None else substitute(target, match)

    def apply(self, query: Query) -> Reversal | None:
        from .cname import CnameAnswer

        return Reversal(cnames=(CnameAnswer(self, query.request),))


def new_cname_rule(mode: str, args: list[str]) -> CnameRule:
    if len(args) == 3:
        kind = args[0].lower()
        if kind not in MATCH_TYPES:
            raise ValueError(f"unknown cname rewrite type: {kind}")
        source, target = args[1].lower(), args[2].lower()
    elif len(args) == 2:
        kind, source, target = EXACT, args[0].lower(), args[1].lower()
    else:
        raise ValueError(f"too few ({len(args)}) arguments for a cname rule")
    if kind == EXACT:
        source, target = fqdn_lower(source), fqdn_lower(target)
    pattern = None
    if kind == REGEX:
        if len(source) > MAX_REGEXP_LEN:
            raise ValueError(f"regex pattern too long in a cname rule: {len(source)} > {MAX_REGEXP_LEN}")
        try:
            pattern = compile_go(source)
        except (ValueError, re.error) as exc:
            raise ValueError(f"invalid cname rewrite regex pattern: {exc}") from None
    return CnameRule(mode, kind, source, target, pattern)
