"""CoreDNS's own rewrite tests, through a real server.

The tables of CoreDNS's plugin/rewrite/*_test.go are in tests/data/rewrite/coredns_cases.json:
``rules`` (each rule's words, and whether CoreDNS refuses them) and ``exchanges`` (the rules of a
server block, a query, what the chain behind rewrite was asked and what the client gets back).
Each exchange runs through a server whose chain is ``rewrite`` then ``forward`` to a loopback
upstream. The upstream stands in for the handler of CoreDNS's tests (``msgPrinter``): it records
the query, and answers with the query's question and OPT record and the records the case gives
(or an A record for the name asked). Where CoreDNS's test disables the reverter
(``NoRevertPolicy``), the case checks what the upstream was asked, which is what that test reads.
"""

from __future__ import annotations

import ipaddress
import json
import socket
import struct
from collections.abc import Iterator
from typing import Any

import dns.edns
import dns.flags
import dns.message
import dns.query
import dns.rcode
import dns.rdataclass
import dns.rdatatype
import dns.rrset
from twisted.internet.defer import inlineCallbacks
from twisted.internet.threads import deferToThread
from twisted.trial import unittest

from twisted_coredns import Controller, Handler, Plugin, Request, Response
from twisted_coredns.registry import Registry, default_registry
from twisted_coredns.testing import InProcessServer
from twisted_coredns.testing.setup import setup_error

from .small_plugin_support import DATA
from .test_minimal import ScriptedUpstream

CASES = json.loads((DATA / "rewrite" / "coredns_cases.json").read_text())


def _record_lines(section: list[dns.rrset.RRset]) -> list[str]:
    return [line for rrset in section for line in rrset.to_text().splitlines()]


def _canonical(line: str) -> str:
    """A record as dnspython prints it (names and case kept)."""
    return dns.rrset.from_text(*_fields(line)).to_text()


def _fields(line: str) -> tuple[Any, ...]:
    name, ttl, rdclass, rdtype, rdata = line.split(None, 4)
    return name, int(ttl), rdclass, rdtype, rdata


class _Upstream:
    """The loopback server behind ``forward``, answering for the case now running."""

    def __init__(self) -> None:
        self.case: dict[str, Any] = {}
        self.server = ScriptedUpstream(self.answer)

    def answer(self, query: dns.message.Message) -> dns.message.Message:
        spec = self.case.get("upstream") or {}
        reply = dns.message.make_response(query)
        reply.flags &= ~dns.flags.RA
        question = query.question[0]
        name = question.name.to_text()
        lookup = spec.get("lookups", {}).get(name)
        if lookup is not None:
            lines = lookup.get(dns.rdatatype.to_text(question.rdtype), lookup.get("*", []))
            if lookup.get("tc"):
                reply.flags |= dns.flags.TC
            extra: list[str] = []
        else:
            lines = spec.get("answer", [f"{name} 5 IN A 10.0.0.1"])
            extra = spec.get("extra", [])
        reply.answer = [dns.rrset.from_text(*_fields(line)) for line in lines]
        reply.additional = [dns.rrset.from_text(*_fields(line)) for line in extra]
        reply.set_rcode(dns.rcode.from_text(spec.get("rcode", "NOERROR")))
        if spec.get("opt", "echo") == "none" or query.edns < 0:
            reply.use_edns(False)
        else:
            reply.use_edns(0, 0, query.payload, options=list(query.options))
        if spec.get("question") is False:
            reply.question = []
        return reply


class _CaseAnswer(Handler):
    """``caseanswer``: the upstream's answer made by a plugin behind rewrite, for the replies
    ``forward`` would not pass on (one without a question)."""

    name = "caseanswer"

    def __init__(self, upstream: _Upstream) -> None:
        self.upstream = upstream

    def serve(self, request: Request) -> Response:
        self.upstream.server.queries.append(request.message)  # what it was asked, as the upstream's
        reply = self.upstream.answer(request.message)
        reply.id = request.id
        return Response(reply.to_wire(), plugin=self.name)


def _registry(upstream: _Upstream) -> Registry:
    def setup(controller: Controller) -> _CaseAnswer:
        controller.no_args(controller.once())
        return _CaseAnswer(upstream)

    registry = Registry(list(default_registry()))
    registry.add(Plugin("caseanswer", setup, before="whoami"), "tests")
    return registry


def _option_data(option: dict[str, Any], client: tuple[str, int], server: tuple[str, int]) -> bytes:
    if "text" in option:
        return str(option["text"]).encode()
    if "hex" in option:
        return bytes.fromhex(option["hex"])
    var = option["var"]
    client_ip = ipaddress.ip_address(client[0])
    if var == "{client_ip}":
        return client_ip.packed
    if var == "{client_port}":
        return struct.pack("!H", client[1])
    if var == "{server_ip}":
        return ipaddress.ip_address(server[0]).packed
    if var == "{server_port}":
        return struct.pack("!H", server[1])
    if var.startswith("{subnet:"):
        bits = int(var[len("{subnet:") : -1])
        width = client_ip.max_prefixlen
        network = ipaddress.ip_network(f"{client_ip}/{bits}", strict=False)
        family = 1 if width == 32 else 2
        return struct.pack("!HBB", family, bits, 0) + network.network_address.packed[: (bits + 7) // 8]
    raise AssertionError(f"unknown variable {var}")


def _options(
    spec: list[dict[str, Any]], client: tuple[str, int], server: tuple[str, int]
) -> list[tuple[int, bytes]]:
    return [(option["code"], _option_data(option, client, server)) for option in spec]


def _got_options(message: dns.message.Message) -> list[tuple[int, bytes]]:
    return [(int(option.otype), option.to_wire()) for option in message.options]


def _ask(host: str, port: int, query: dns.message.Message) -> tuple[dns.message.Message, tuple[str, int]]:
    """Send ``query`` from a socket of ours, so its port is known (``{client_port}``)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_DGRAM) as sock:
        sock.bind((host, 0))
        address = sock.getsockname()[:2]
        reply = dns.query.udp(query, host, port=port, timeout=3.0, sock=sock, ignore_unexpected=True)
    return reply, address


def _backend(case: dict[str, Any]) -> str:
    """What answers behind rewrite: ``forward`` (to the loopback upstream), ``plugin``
    (``caseanswer``), or ``none`` (rewrite is the last plugin)."""
    if "upstream" in case and case["upstream"] is None:
        return "none"
    return str(case.get("backend", "forward"))


def _groups() -> Iterator[tuple[tuple[tuple[str, ...], str, str], list[dict[str, Any]]]]:
    """The exchanges by server: same rules, same backend, same client address family."""
    groups: dict[tuple[tuple[str, ...], str, str], list[dict[str, Any]]] = {}
    for case in CASES["exchanges"]:
        key = (tuple(case["rules"]), _backend(case), case.get("client", "127.0.0.1"))
        groups.setdefault(key, []).append(case)
    yield from groups.items()


class RewriteRuleTableTests(unittest.TestCase):
    def test_rules_coredns_accepts_and_refuses(self) -> None:
        self.assertGreater(len(CASES["rules"]), 200)
        for row in CASES["rules"]:
            words = " ".join(row["args"])
            error = setup_error(f"rewrite {words}" if words else "rewrite")
            with self.subTest(source=row["from"], args=words[:120]):
                why = f"{row['from']}: rewrite {words[:120]}: {error}"
                self.assertEqual(error is not None, row["error"], why)
                if error is not None:
                    self.assertTrue(error.startswith("plugin/rewrite: "), error)


class RewriteExchangeTableTests(unittest.TestCase):
    @inlineCallbacks
    def test_exchanges(self) -> Any:
        upstream = _Upstream()
        self.addCleanup(upstream.server.stop)
        ran = 0
        registry = _registry(upstream)
        for (rules, backend, client_host), cases in _groups():
            body = "".join(f"    rewrite {rule}\n" for rule in rules)
            if backend == "forward":
                body += f"    forward . {upstream.server.address}\n"
            elif backend == "plugin":
                body += "    caseanswer\n"
            server = InProcessServer(f". {{\n{body}}}\n", host=client_host, registry=registry)
            yield server.start()
            try:
                for case in cases:
                    upstream.case = case
                    upstream.server.queries.clear()
                    yield self._exchange(server, client_host, upstream, case)
                    ran += 1
            finally:
                yield server.stop()
        self.assertEqual(ran, len(CASES["exchanges"]))

    @inlineCallbacks
    def _exchange(self, server: InProcessServer, host: str, upstream: _Upstream, case: dict[str, Any]) -> Any:
        spec = case["query"]
        label = f"{case['from']}: {spec['name']} {spec['type']} {spec['class']} with {case['rules']}"
        server_address = (host, server.port)
        query = dns.message.make_query(spec["name"], spec["type"], spec["class"])
        if spec.get("edns"):
            # The client's options do not depend on its address: fill them in with a dummy one.
            wanted = _options(spec.get("options", []), (host, 0), server_address)
            query.use_edns(0, 0, 1232, options=[dns.edns.GenericOption(code, data) for code, data in wanted])
        reply, client = yield deferToThread(_ask, host, server.port, query)
        asked = case.get("asked", "unset")
        if asked is None:
            self.assertEqual(upstream.server.queries, [], label)
        elif asked != "unset":
            self.assertTrue(upstream.server.queries, f"{label}: the upstream was not asked")
            got = upstream.server.queries[0]
            question = got.question[0]
            self.assertEqual(
                (question.name.to_text(), dns.rdatatype.to_text(question.rdtype),
                 dns.rdataclass.to_text(question.rdclass)),
                (asked["name"], asked["type"], asked["class"]), label)
            if "options" in asked:
                self.assertEqual(_got_options(got), _options(asked["options"], client, server_address), label)
            elif not spec.get("edns"):
                self.assertEqual(got.edns, -1, f"{label}: no rule should have added an OPT record")
        expected = case.get("reply", {})
        self.assertEqual(dns.rcode.to_text(reply.rcode()), expected.get("rcode", "NOERROR"), label)
        if "question" in expected:
            question = reply.question[0]
            self.assertEqual(
                [question.name.to_text(), dns.rdatatype.to_text(question.rdtype),
                 dns.rdataclass.to_text(question.rdclass)],
                expected["question"], label)
        if "answer" in expected:
            wanted = [_canonical(line) for line in expected["answer"]]
            self.assertEqual(_record_lines(reply.answer), wanted, label)
        if "extra" in expected:
            wanted = [_canonical(line) for line in expected["extra"]]
            self.assertEqual(_record_lines(reply.additional), wanted, label)
        if "ttl" in expected:
            self.assertTrue(reply.answer, label)
            self.assertEqual({rrset.ttl for rrset in reply.answer}, {expected["ttl"]}, label)
        if "tc" in expected:
            self.assertEqual(bool(reply.flags & dns.flags.TC), expected["tc"], label)
        if "options" in expected:
            if expected["options"] is None:
                self.assertEqual(reply.edns, -1, f"{label}: the reply should have no OPT record")
            else:
                self.assertGreaterEqual(reply.edns, 0, f"{label}: the reply should have an OPT record")
                wanted_options = _options(expected["options"], client, server_address)
                self.assertEqual(_got_options(reply), wanted_options, label)


class RemapRewriterTableTests(unittest.TestCase):
    def test_remap_rows(self) -> None:
        from twisted_coredns.plugins.rewrite.matching import remap_rewriter

        table = CASES["remap"]
        rewrite = remap_rewriter(table["original"], table["replacement"])
        for source, expected in table["rows"]:
            self.assertEqual(rewrite(source), expected, source)
