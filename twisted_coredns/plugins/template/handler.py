"""The template handler: the first template that matches answers; the rest pass on."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from twisted.internet.defer import Deferred

from ...clog import PluginLogger
from ...config import BlockConfig
from ...dns import (
    AAAA,
    CLASS_ANY,
    CNAME,
    SERVFAIL,
    A,
    Zones,
    class_name,
    parse_message,
    query_wire,
    type_name,
)
from ...metrics import counter
from ...plugin import Handler
from ...request import Request
from ...response import Response, reply, reply_records
from ..loop import udp_exchange
from ..view.expression import ExprError, Program, Scope
from .gotemplate import GoStruct, TemplateError
from .gotemplate import Template as GoTemplate
from .rr import RRError, TemplatedRR, parse_rr

log = PluginLogger("template")
ANY_TYPE = 255

matches_total = counter("template", "matches_total", "Counter of template regex matches.",
                        ["server", "zone", "view", "class", "type"])
failures_total = counter("template", "template_failures_total", "Counter of go template failures.",
                         ["server", "zone", "view", "class", "type", "section", "template"])
rr_failures_total = counter("template", "rr_failures_total", "Counter of mis-templated RRs.",
                            ["server", "zone", "view", "class", "type", "section", "template"])


@dataclass
class Rule:
    """One ``template`` directive."""

    qclass: int
    qtype: int
    zones: Zones
    regexes: list[tuple[str, re.Pattern[str], list[str]]]
    answer: list[GoTemplate] = field(default_factory=list)
    additional: list[GoTemplate] = field(default_factory=list)
    authority: list[GoTemplate] = field(default_factory=list)
    rcode: int = 0
    ederror: tuple[int, str] | None = None
    fall: Zones | None = None
    variables: list[tuple[str, Program]] = field(default_factory=list)
    conditions: list[Program] = field(default_factory=list)

    rendered: dict[tuple[str, int, int], Any] | None = None
    """The records this rule rendered (a ``_Rendered``), or that it passed (``_PASSES``), by the
    question as asked (name with its case, class and type), when nothing else can change them:
    set up by ``remember_renders``."""

    def falls_through(self, name: str) -> bool:
        fall = self.fall
        return fall is not None and (not fall.zones or fall.covers(name))

    def remember_renders(self) -> None:
        """Keep rendered records when the templates read only what the question decides (not
        ``.Remote``, ``.Message``, ``.Meta``, nor the whole data) and no ``var``/``expr`` runs:
        a name asked again then skips the regex, the templates and the record parser."""
        if self.variables or self.conditions:
            return
        for tmpl in (*self.answer, *self.additional, *self.authority):
            fields = tmpl.root_fields()
            if fields is None or not fields <= _QUESTION_FIELDS:
                return
        self.rendered = {}


_PASSES: Any = object()
"""In ``Rule.rendered``: the rule does not take this question (the next rule or plugin does)."""
_QUESTION_FIELDS = frozenset({"Zone", "Name", "Regex", "Match", "Group", "Class", "Type", "Question"})
_RENDERED_MAX = 4096
"""Renders a rule keeps before it forgets them all (a bound under a flood of new names)."""


class _Rendered:
    """One match, rendered: the records, what the metrics are labelled with, and, worked out
    once, the sections in wire form back to back and the CNAMEs to look up."""

    __slots__ = ("additional", "answer", "authority", "cnames", "counts", "qclass", "qtype", "wire", "zone")

    def __init__(self, zone: str, qclass: str, qtype: str, answer: list[TemplatedRR],
                 authority: list[TemplatedRR], additional: list[TemplatedRR]) -> None:
        self.zone, self.qclass, self.qtype = zone, qclass, qtype
        self.answer = [rr.wire for rr in answer]
        self.authority = [rr.wire for rr in authority]
        self.additional = [rr.wire for rr in additional]
        self.cnames = [rr.rrset for rr in answer if rr.rrset.rdtype == CNAME]
        self.wire = b"".join((*self.answer, *self.authority, *self.additional))
        self.counts = (len(answer), len(authority), len(additional))


class _Data:
    """What one match gives the templates and the expressions."""

    __slots__ = ("groups", "struct")

    def __init__(self, groups: dict[str, str], struct: GoStruct) -> None:
        self.groups = groups
        self.struct = struct


def _group(scope: Scope, key: Any) -> str:
    data: _Data = scope.data
    if isinstance(key, bool):
        return ""
    return data.groups.get(str(key), "")


class TemplateHandler(Handler):
    name = "template"

    def __init__(self, rules: list[Rule], config: BlockConfig, reactor: Any) -> None:
        self.rules = rules
        self.zones = Zones([z for r in rules for z in r.zones])
        self.config = config
        self.reactor = reactor
        # matches_total's child per (server, zone, class, type): a labelled child costs about a
        # microsecond to look up.
        self._matches: dict[tuple[str, str, str, str], Any] = {}
        for rule in rules:
            rule.remember_renders()

    def serve(self, request: Request) -> Any:
        name = request.name
        if not self.zones.covers(name):
            return self.serve_next(request)
        question = (request.qname, request.qclass, request.qtype)
        for rule in self.rules:
            rendered = rule.rendered
            if rendered is not None:
                hit = rendered.get(question)
                if hit is not None:
                    if hit is _PASSES:
                        continue
                    self._count_match(request, hit.zone, hit.qclass, hit.qtype)
                    return self._answer(rule, request, hit)
            found = self._match(rule, request)
            if found is None:
                if rendered is not None:
                    # No match and fallthrough: the question decides that too.
                    if len(rendered) >= _RENDERED_MAX:
                        rendered.clear()
                    rendered[question] = _PASSES
                continue
            if found is False or found is True:
                return Response.not_written(SERVFAIL, None, self.name)
            zone, data = found
            qclass = data.struct.fields["Class"]
            qtype = data.struct.fields["Type"]
            self._count_match(request, zone, qclass, qtype)
            if rule.rcode == SERVFAIL:
                return Response.not_written(SERVFAIL, None, self.name)
            try:
                hit = _Rendered(
                    zone, qclass, qtype,
                    self._render("answer", rule.answer, request, zone, data),
                    self._render("authority", rule.authority, request, zone, data),
                    self._render("additional", rule.additional, request, zone, data),
                )
            except (TemplateError, RRError) as exc:
                log.error(str(exc))
                return Response.not_written(SERVFAIL, exc, self.name)
            if rendered is not None:
                if len(rendered) >= _RENDERED_MAX:
                    rendered.clear()
                rendered[question] = hit
            return self._answer(rule, request, hit)
        return self.serve_next(request)

    def _count_match(self, request: Request, zone: str, qclass: str, qtype: str) -> None:
        key = (request.server, zone, qclass, qtype)
        child = self._matches.get(key)
        if child is None:
            if len(self._matches) >= _RENDERED_MAX:
                self._matches.clear()
            child = self._matches[key] = matches_total.labels(
                request.server, zone, self.config.view_name, qclass, qtype)
        child.inc()

    def _match(self, rule: Rule, request: Request) -> tuple[str, _Data] | bool | None:
        """(zone, data) for a match; None to try the next rule; False for SERVFAIL."""
        name = request.name
        zone = rule.zones.matches(name)
        if zone is None:
            return None
        if rule.qclass != CLASS_ANY and request.qclass != CLASS_ANY and request.qclass != rule.qclass:
            return None
        if rule.qtype != ANY_TYPE and request.qtype != ANY_TYPE and request.qtype != rule.qtype:
            return None
        for source, regex, names in rule.regexes:
            m = regex.search(name)
            if m is None:
                continue
            matched = [g or "" for g in (m.group(0), *m.groups())]
            groups = {str(i): g for i, g in enumerate(matched)}
            for index, group_name in enumerate(names, 1):
                if group_name and index < len(matched):
                    groups[group_name] = matched[index]
            data = self._data(rule, request, zone, source, matched, groups)
            if rule.variables or rule.conditions:
                scope = Scope(request, data, {})
                variables: dict[str, Any] = data.struct.fields["Var"]
                try:
                    for var_name, program in rule.variables:
                        variables[var_name] = scope.variables[var_name] = program.run(scope)
                    for program in rule.conditions:
                        if program.run(scope) is not True:
                            return None if rule.falls_through(name) else False
                except (ExprError, ArithmeticError, TypeError, ValueError):
                    return False
            return zone, data
        return None if rule.falls_through(name) else False

    def _data(self, rule: Rule, request: Request, zone: str, source: str, matched: list[str],
              groups: dict[str, str]) -> _Data:
        qclass = class_name(request.qclass if request.qclass != CLASS_ANY else rule.qclass)
        qtype = type_name(request.qtype if request.qtype != ANY_TYPE else rule.qtype)

        def meta(label: str) -> str:
            found = request.get_metadata(label)
            if found is None or request.metadata is None:
                return ""
            return str(found() if callable(found) else found)

        struct = GoStruct(
            {
                "Zone": zone, "Name": request.name, "Regex": source, "Match": matched, "Group": groups,
                "Class": qclass, "Type": qtype, "Message": _LazyMessage(request),
                "Question": _LazyQuestion(request), "Remote": request.remote[0], "Var": {},
            },
            {"Meta": meta},
        )
        return _Data(groups, struct)

    def _render(self, section: str, templates: list[GoTemplate], request: Request, zone: str,
                data: _Data) -> list[TemplatedRR]:
        out = []
        for tmpl in templates:
            labels = (request.server, zone, self.config.view_name, data.struct.fields["Class"],
                      data.struct.fields["Type"], section, tmpl.text)
            try:
                text = tmpl.execute(data.struct)
            except TemplateError:
                failures_total.labels(*labels).inc()
                raise
            try:
                out.append(parse_rr(text))
            except RRError:
                rr_failures_total.labels(*labels).inc()
                raise
        return out

    def _answer(self, rule: Rule, request: Request, rendered: _Rendered) -> Any:
        if rendered.cnames and request.qtype in (A, AAAA):
            return self._with_upstream(rule, request, rendered.answer, rendered.authority,
                                       rendered.additional, rendered.cnames)
        if rule.ederror is None:
            an, ns, ar = rendered.counts
            return reply_records(request, rendered.wire, an, ns, ar, rcode=rule.rcode, aa=True,
                                 plugin=self.name)
        return self._reply(rule, request, rendered.answer, rendered.authority, rendered.additional)

    def _reply(self, rule: Rule, request: Request, answer: list[Any], authority: list[Any],
               additional: list[Any], tc: bool = False) -> Response:
        if rule.ederror is None and not tc:
            return reply(request, rule.rcode, answer, authority, additional, aa=True, plugin=self.name)
        response = reply(request, rule.rcode, answer, authority, additional, aa=True, plugin=self.name)
        message = response.message()
        if tc:
            import dns.flags

            message.flags |= dns.flags.TC
        if rule.ederror is not None:
            import dns.edns

            code, text = rule.ederror
            size = request.udp_size if request.edns else 4096
            do = request.do if request.edns else True
            message.use_edns(0, dns.flags.DO if do else 0, size,
                             options=[dns.edns.EDEOption(dns.edns.EDECode.make(code), text or None)])
        wire = message.to_wire()
        return Response(wire, rule.rcode, None, self.name, message.edns >= 0)

    def _with_upstream(self, rule: Rule, request: Request, answer: list[Any], authority: list[Any],
                       additional: list[Any], cnames: list[Any]) -> Deferred[Response]:
        """CoreDNS's ``upstream.Lookup``: each CNAME target asked of this server itself, its
        answer records appended (a failed look-up adds nothing)."""
        from twisted.internet.defer import gatherResults

        host = self.config.listen_hosts[0] if self.config.listen_hosts else ""
        host = host or ("::1" if ":" in request.remote[0] else "127.0.0.1")
        port = self.config.addresses[0].port if self.config.addresses else 53
        port = self.config.bound_ports.get(port, port)
        lookups = []
        for rrset in cnames:
            for rdata in rrset:
                query = query_wire(rdata.target.to_text(), request.qtype, qid=request.id ^ 0x5A5A)
                lookups.append(
                    udp_exchange(self.reactor, query, host, port, 2.0).addErrback(lambda _f: None)
                )

        def answered(replies: list[bytes | None]) -> Response:
            extra: list[Any] = []
            tc = False
            for wire in replies:
                if wire is None:
                    continue
                try:
                    message = parse_message(wire)
                except Exception:  # a reply we cannot read adds nothing
                    continue
                tc = tc or bool(message.flags & 0x0200)
                extra.extend(message.answer)
            return self._reply(rule, request, [*answer, *extra], authority, additional, tc)

        return gatherResults(lookups).addCallback(answered)


class _LazyMessage:
    """``.Message``: the query as dnspython reads it, printed as miekg prints a message."""

    def __init__(self, request: Request) -> None:
        self.request = request

    def __str__(self) -> str:
        return self.request.message.to_text()


class _LazyQuestion:
    def __init__(self, request: Request) -> None:
        self.request = request

    def __str__(self) -> str:
        r = self.request
        return f"{{{r.qname} {class_name(r.qclass)} {type_name(r.qtype)}}}"
