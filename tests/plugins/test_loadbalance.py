# ruff: noqa: E501 - the rows hold CoreDNS's error texts whole, one per line
"""loadbalance against a real server: round robin, weighted (with its weight file reloaded) and
preferred subnets; CoreDNS's own test cases (loadbalance_test.go, prefer_test.go,
weighted_test.go, as data in tests/data/loadbalance/coredns_cases.json) served by a test plugin
behind it; replies whose names are compressed in every way a reorder can break; CoreDNS's setup
rows; the README Corefiles start and answer."""

from __future__ import annotations

import collections
import ipaddress
import json
import os
import socket
import struct
from collections.abc import Callable
from typing import Any

import dns.message
import dns.name
import dns.query
import dns.rrset
from twisted.internet import reactor
from twisted.internet.defer import inlineCallbacks
from twisted.internet.task import deferLater
from twisted.internet.threads import deferToThread
from twisted.trial import unittest

from twisted_coredns.dns.relocate import layout, reorder
from twisted_coredns.plugin import Controller, Handler, Plugin
from twisted_coredns.plugins.loadbalance.handler import LoadBalance
from twisted_coredns.plugins.loadbalance.weights import parse_weights
from twisted_coredns.registry import Registry, default_registry
from twisted_coredns.request import Request
from twisted_coredns.response import Response
from twisted_coredns.testing import InProcessServer, exchange_wire, make_request, run_setup
from twisted_coredns.testing.setup import check_setup_rows, load_setup_rows

from .small_plugin_support import DATA, readme_corefiles

ADDRESSES = ["10.0.0.1", "10.0.0.2", "10.0.0.3", "192.168.1.7"]
HOSTS = "hosts {\n" + "".join(f"  {a} www.example.org\n" for a in ADDRESSES) + \
    "  fd00::1 www.example.org\n  fd00::2 www.example.org\n  10.9.20.5 www.example.org\n }"
CASES = json.loads((DATA / "loadbalance" / "coredns_cases.json").read_text())


def _order(reply: Any) -> list[str]:
    return [rdata.address for rrset in reply.answer for rdata in rrset]


_orders = _order
"""The addresses in wire order: dnspython keeps an RRset's order."""


# -- a test plugin that answers with whatever reply a test sets ------------------------------------


class Canned(Handler):
    """Answers every query with ``reply(request)``: the wire a test built."""

    name = "canned"

    def __init__(self) -> None:
        self.reply: Callable[[Request], bytes] = lambda request: request.wire

    def serve(self, request: Request) -> Response:
        return Response(self.reply(request), plugin=self.name)


def _canned_setup(controller: Controller) -> Canned:
    for directive in controller.directives:
        controller.no_args(directive)
    return Canned()


def _registry() -> Registry:
    registry = Registry(list(default_registry()))
    registry.add(Plugin("canned", _canned_setup, before="whoami"), "tests")
    return registry


def _rrset(text: str) -> dns.rrset.RRset:
    name, ttl, rdclass, rdtype, data = text.split(None, 4)
    return dns.rrset.from_text(name, int(ttl), rdclass, rdtype, data)


def dnspython_reply(answer: list[str], extra: list[str] = (), authority: list[str] = (),  # type: ignore[assignment]
                    question: tuple[str, str] | None = None) -> Callable[[Request], bytes]:
    """A reply with these records, one RRset each so that their order is kept, names compressed
    by dnspython; the question is the query's (or ``question``)."""

    def build(request: Request) -> bytes:
        query = dns.message.from_wire(request.wire)
        if question is not None:
            query = dns.message.make_query(*question)
            query.id = request.id
        message = dns.message.make_response(query)
        message.answer = [_rrset(t) for t in answer]
        message.authority = [_rrset(t) for t in authority]
        message.additional = [_rrset(t) for t in extra]
        return message.to_wire()

    return build


def wire_reply(records: bytes, an: int, ns: int = 0, ar: int = 0) -> Callable[[Request], bytes]:
    """A reply of hand-written records after the query's question (compression as written)."""

    def build(request: Request) -> bytes:
        head = request.wire[:2] + b"\x84\x00" + struct.pack("!HHHH", 1, an, ns, ar)
        return head + request.wire[12:request.end_of_question] + records

    return build


def ask(port: int, query: dns.message.Message, tcp: bool = False) -> Any:
    """A Deferred firing with ``(reply, wire)``: each record its own RRset, in wire order."""

    def run() -> tuple[dns.message.Message, bytes]:
        wire = exchange_wire(port, query.to_wire(), tcp=tcp)
        return dns.message.from_wire(wire, one_rr_per_rrset=True), wire

    return deferToThread(run)


def _texts(section: list[dns.rrset.RRset]) -> list[str]:
    return [rrset.to_text() for rrset in section]


def _value(rrset: dns.rrset.RRset) -> str:
    """The address of an A/AAAA record, the target of a CNAME: what CoreDNS's tests compare."""
    rdata = rrset[0]
    return str(getattr(rdata, "address", None) or getattr(rdata, "target", ""))


def count_records(section: list[dns.rrset.RRset]) -> tuple[int, int, int, bool]:
    """CoreDNS's countRecords: CNAMEs, addresses and MX records, and whether they came in that
    order (any other type ends the check's ordered run)."""
    start, cnames_, addresses_, mxs_, other = range(5)
    sorted_ = True
    cname = address = mx = 0
    state = start
    for rrset in section:
        t = rrset.rdtype
        if t == 5:
            sorted_ = sorted_ and state <= cnames_
            state = cnames_
            cname += 1
        elif t in (1, 28):
            sorted_ = sorted_ and state <= addresses_
            state = addresses_
            address += 1
        elif t == 15:
            sorted_ = sorted_ and state <= mxs_
            state = mxs_
            mx += 1
        else:
            state = other
    return cname, address, mx, sorted_


class CannedServer:
    """``loadbalance`` (with ``options``) in front of ``canned``, on a real server."""

    @staticmethod
    @inlineCallbacks
    def start(case: unittest.TestCase, options: str = "") -> Any:
        server = InProcessServer(f". {{\n loadbalance{options}\n canned\n}}", registry=_registry())
        yield server.start()
        case.addCleanup(server.stop)
        handlers = server.instance.blocks[0].handlers
        balancer = next(h for h in handlers if h.name == "loadbalance")
        canned = next(h for h in handlers if h.name == "canned")
        return server, balancer, canned


# -- round robin over hosts and whoami ------------------------------------------------------------


class RoundRobinTests(unittest.TestCase):
    @inlineCallbacks
    def setUp(self) -> Any:
        self.server = InProcessServer(f". {{\n loadbalance\n {HOSTS}\n}}")
        yield self.server.start()
        self.addCleanup(self.server.stop)

    @inlineCallbacks
    def test_every_order_comes_up_and_no_record_is_lost(self) -> Any:
        firsts: collections.Counter[str] = collections.Counter()
        for _ in range(60):
            reply = yield self.server.query("www.example.org.", "A")
            order = _orders(reply)
            self.assertEqual(sorted(order), sorted([*ADDRESSES, "10.9.20.5"]))
            firsts[order[0]] += 1
        self.assertGreaterEqual(len(firsts), 4, firsts)  # 5 addresses, 60 tries: each is first sometime

    @inlineCallbacks
    def test_whoami_additional_goes_srv_first(self) -> Any:
        # CoreDNS's roundRobin puts the other records (SRV) before the addresses; the OPT record
        # of an EDNS query stays last.
        server = InProcessServer(". {\n loadbalance\n whoami\n}")
        yield server.start()
        self.addCleanup(server.stop)
        reply = yield server.query("example.org.", "A")
        self.assertEqual([rrset.rdtype for rrset in reply.additional], [33, 1])
        query = dns.message.make_query("example.org.", "A", use_edns=0, payload=1232)
        reply, wire = yield ask(server.port, query)
        self.assertEqual([rrset.rdtype for rrset in reply.additional], [33, 1])
        self.assertEqual(reply.edns, 0)
        self.assertEqual(layout(wire)[2], [33, 1, 41])


# -- CoreDNS's loadbalance_test.go, prefer_test.go and weighted_test.go, through a server ---------


class CoreDNSCaseTests(unittest.TestCase):
    @inlineCallbacks
    def test_random_shuffle_cases(self) -> Any:
        """TestLoadBalanceRandom: CNAMEs, then addresses, then MX, nothing lost, in both the
        answer and the additional section, for many draws."""
        server, _balancer, canned = yield CannedServer.start(self)
        name, qtype = CASES["random"]["question"]
        for index, case in enumerate(CASES["random"]["cases"]):
            canned.reply = dnspython_reply(case["answer"], case["extra"])
            seen: set[tuple[str, ...]] = set()
            for _ in range(20):
                reply, _wire = yield ask(server.port, dns.message.make_query(name, qtype))
                for section, counts in ((reply.answer, case["answer_counts"]), (reply.additional, case["extra_counts"])):
                    cname, address, mx, in_order = count_records(section)
                    self.assertTrue(in_order, f"case {index}: {_texts(section)}")
                    self.assertEqual([cname, address, mx], counts, f"case {index}")
                self.assertEqual(sorted(_texts(reply.answer)), sorted(_rrset(t).to_text() for t in case["answer"]))
                self.assertEqual(sorted(_texts(reply.additional)), sorted(_rrset(t).to_text() for t in case["extra"]))
                seen.add(tuple(_texts(reply.answer)))
            if case["answer_counts"][1] > 1 or case["answer_counts"][2] > 1:
                self.assertGreater(len(seen), 1, f"case {index}: the shuffle never changed the order")

    @inlineCallbacks
    def test_transfers_are_left_alone(self) -> Any:
        """TestLoadBalanceXFR: an AXFR or IXFR reply keeps its order (SOA first and last)."""
        server, balancer, canned = yield CannedServer.start(self)
        balancer.randbelow = lambda n: n - 1  # a shuffle would move every record
        answer = CASES["xfr"]["answer"]
        canned.reply = dnspython_reply(answer)
        for qtype in ("IXFR", "AXFR"):
            reply, _wire = yield ask(server.port, dns.message.make_query(CASES["xfr"]["question"], qtype), tcp=True)
            self.assertEqual(_texts(reply.answer), [_rrset(t).to_text() for t in answer], qtype)

    @inlineCallbacks
    def test_preferred_subnets_sort(self) -> Any:
        """TestSortPreferred: the CNAME, then the addresses by the first subnet holding them (in
        the order of the prefer line), then the rest, here after a shuffle that keeps the order."""
        cidrs = " ".join(CASES["prefer"]["cidrs"])
        server, balancer, canned = yield CannedServer.start(self, f" {{\n  prefer {cidrs}\n }}")
        balancer.randbelow = lambda n: 0  # the shuffle leaves every record where it is
        canned.reply = dnspython_reply(CASES["prefer"]["answer"])
        reply, _wire = yield ask(server.port, dns.message.make_query(*CASES["prefer"]["question"]))
        self.assertEqual([_value(r) for r in reply.answer], CASES["prefer"]["expected"])
        # With real draws: the same groups, each preferred subnet's addresses before the next's.
        balancer.randbelow = LoadBalance().randbelow
        groups = [["alias.example.org."], ["2001:db8::1", "2001:db8:abcd::1"], ["10.9.20.5", "10.9.20.3"],
                  ["10.9.30.1"], ["192.168.1.2", "10.10.0.1", "172.16.0.1", "fd00::1"]]
        for _ in range(10):
            reply, _wire = yield ask(server.port, dns.message.make_query(*CASES["prefer"]["question"]))
            values = [_value(r) for r in reply.answer]
            at = 0
            for group in groups:
                self.assertEqual(sorted(values[at:at + len(group)]), sorted(group), values)
                at += len(group)

    @inlineCallbacks
    def test_weighted_cases(self) -> Any:
        """TestLoadBalanceWRR: the draw is asked for the sum of the weights, and the drawn value
        picks the top address of both sections; the groups keep CoreDNS's order."""
        name, qtype = CASES["weighted"]["question"]
        for index, case in enumerate(CASES["weighted"]["cases"]):
            path = os.path.abspath(self.mktemp())
            with open(path, "w") as f:
                f.write(case["weights"])
            server, balancer, canned = yield CannedServer.start(self, f" weighted {path} {{\n  reload 0s\n }}")
            canned.reply = dnspython_reply(case["answer"], case["extra"])
            asked: list[int] = []
            for randv, top in case["queries"]:
                balancer.randbelow = lambda limit, randv=randv, asked=asked: asked.append(limit) or randv
                reply, _wire = yield ask(server.port, dns.message.make_query(name, qtype))
                for section, counts in ((reply.answer, case["answer_counts"]), (reply.additional, case["extra_counts"])):
                    cname, address, mx, in_order = count_records(section)
                    self.assertEqual([cname, address, mx], counts, f"case {index}")
                    addresses = [_value(r) for r in section if r.rdtype in (1, 28)]
                    if top:
                        self.assertTrue(in_order, f"case {index}: {_texts(section)}")
                    if top and addresses:  # CoreDNS's checkTopIP: the first address, if any
                        self.assertEqual(addresses[0], top, f"case {index} draw {randv}")
                if not top:  # no address record: the answer as it came
                    self.assertEqual(_texts(reply.answer), [_rrset(t).to_text() for t in case["answer"]])
            self.assertEqual(set(asked), {case["sum"]} if case["sum"] else set(), f"case {index}")

    @inlineCallbacks
    def test_failed_replies_are_left_alone(self) -> Any:
        server, balancer, canned = yield CannedServer.start(self)
        balancer.randbelow = lambda n: n - 1
        build = dnspython_reply(["a.example.org. 300 IN A 10.0.0.1", "a.example.org. 300 IN A 10.0.0.2"])

        def refused(request: Request) -> bytes:
            wire = build(request)
            return wire[:3] + bytes([wire[3] | 5]) + wire[4:]

        canned.reply = refused
        reply, _wire = yield ask(server.port, dns.message.make_query("a.example.org.", "A"))
        self.assertEqual(reply.rcode(), 5)
        self.assertEqual([_value(r) for r in reply.answer], ["10.0.0.1", "10.0.0.2"])


# -- compressed names: the records move, the names stay right --------------------------------------


def _label(text: str) -> bytes:
    return b"".join(bytes([len(p)]) + p.encode() for p in text.split(".") if p)


def _rr(owner: bytes, rtype: int, rdata: bytes, ttl: int = 60) -> bytes:
    return owner + struct.pack("!HHIH", rtype, 1, ttl, len(rdata)) + rdata


def _pointer(offset: int) -> bytes:
    return struct.pack("!H", 0xC000 | offset)


class CompressionTests(unittest.TestCase):
    """Hand-written replies whose pointers reach into records that move: each reply is checked
    by dnspython, which refuses a pointer that does not point backwards."""

    @inlineCallbacks
    def setUp(self) -> Any:
        self.server, self.balancer, self.canned = yield CannedServer.start(self)

    @inlineCallbacks
    def _ask(self, name: str = "q.example.org.", qtype: str = "A") -> Any:
        reply, wire = yield ask(self.server.port, dns.message.make_query(name, qtype))
        return reply, wire

    @inlineCallbacks
    def test_first_record_holds_the_name_the_others_point_at(self) -> Any:
        # question q.example.org. at 12 (15 octets + 4): records start at 31. The first A
        # record's owner is written in full; the next two point at it.
        start = 12 + len(_label("q.example.org.")) + 1 + 4
        full = _label("www.other.net.") + b"\x00"
        records = (_rr(full, 1, bytes([10, 0, 0, 1])) + _rr(_pointer(start), 1, bytes([10, 0, 0, 2]))
                   + _rr(_pointer(start), 1, bytes([10, 0, 0, 3])))
        self.canned.reply = wire_reply(records, 3)
        self.balancer.randbelow = lambda n: n - 1  # the last record first: its pointer would point forward
        reply, wire = yield self._ask()
        self.assertEqual([_value(r) for r in reply.answer], ["10.0.0.3", "10.0.0.1", "10.0.0.2"])
        self.assertEqual({r.name.to_text() for r in reply.answer}, {"www.other.net."})
        # The name now lies in the first record, and the others point at it.
        self.assertEqual(wire[start:start + len(full)], full)
        self.assertEqual(len(wire), len(self.canned.reply(make_request("q.example.org.", "A"))))

    @inlineCallbacks
    def test_mx_glue_points_into_the_mx_data(self) -> Any:
        # MX 10 mx1.other.net. (in full), MX 20 mx2 + pointer to "other.net." inside the first
        # MX's data; the glue A records point at the MX targets.
        start = 12 + len(_label("q.example.org.")) + 1 + 4
        mx1_owner = _pointer(12)
        mx1_target_at = start + 2 + 10 + 2
        mx1 = _rr(mx1_owner, 15, b"\x00\x0a" + _label("mx1.other.net.") + b"\x00")
        mx2_at = start + len(mx1)
        mx2_target_at = mx2_at + 2 + 10 + 2
        mx2 = _rr(_pointer(12), 15, b"\x00\x14" + _label("mx2") + _pointer(mx1_target_at + 4))
        glue = _rr(_pointer(mx1_target_at), 1, bytes([192, 0, 2, 1])) + _rr(_pointer(mx2_target_at), 1, bytes([192, 0, 2, 2]))
        self.canned.reply = wire_reply(mx1 + mx2 + glue, 2, 0, 2)
        self.balancer.randbelow = lambda n: n - 1  # swap the MX records, and the glue
        reply, _wire = yield self._ask(qtype="MX")
        self.assertEqual([(r[0].preference, r[0].exchange.to_text()) for r in reply.answer],
                         [(20, "mx2.other.net."), (10, "mx1.other.net.")])
        self.assertEqual([(r.name.to_text(), r[0].address) for r in reply.additional],
                         [("mx2.other.net.", "192.0.2.2"), ("mx1.other.net.", "192.0.2.1")])

    @inlineCallbacks
    def test_cname_chain_stays_first_and_addresses_keep_their_owner(self) -> Any:
        self.canned.reply = dnspython_reply([
            "a.example.org. 60 IN A 10.0.0.1",
            "q.example.org. 60 IN CNAME a.example.org.",
            "a.example.org. 60 IN A 10.0.0.2",
            "a.example.org. 60 IN RRSIG A 8 3 60 20300101000000 20000101000000 1 example.org. AAAA",
        ])
        firsts = set()
        for _ in range(16):
            reply, _wire = yield self._ask()
            self.assertEqual([r.rdtype for r in reply.answer], [5, 46, 1, 1])
            self.assertEqual({r.name.to_text() for r in reply.answer[1:]}, {"a.example.org."})
            firsts.add(_value(reply.answer[2]))
        self.assertEqual(firsts, {"10.0.0.1", "10.0.0.2"})

    @inlineCallbacks
    def test_reply_with_another_question(self) -> Any:
        # The reply's question is not the query's (longer, here): it is walked, not assumed.
        self.canned.reply = dnspython_reply(["x.example.org. 60 IN A 10.0.0.1", "x.example.org. 60 IN A 10.0.0.2"],
                                            question=("a-much-longer-name.example.org.", "A"))
        self.balancer.randbelow = lambda n: n - 1
        reply, _wire = yield self._ask()
        self.assertEqual([_value(r) for r in reply.answer], ["10.0.0.2", "10.0.0.1"])

    @inlineCallbacks
    def test_broken_reply_goes_out_as_it_came(self) -> Any:
        self.balancer.randbelow = lambda n: n - 1
        start = 12 + len(_label("q.example.org.")) + 1 + 4
        records = _rr(_pointer(12), 1, bytes([10, 0, 0, 1])) + _rr(_pointer(12), 1, bytes([10, 0, 0, 2]))
        forward = _rr(_pointer(start + 16), 1, bytes([10, 0, 0, 1])) + _rr(_label("x") + b"\x00", 1, bytes([10, 0, 0, 2]))
        for build in (wire_reply(records[:-2], 2),  # the last record's data cut short
                      wire_reply(records + b"\x00", 3),  # a record counted, not there
                      wire_reply(forward, 2)):  # a pointer to a name that comes later
            self.canned.reply = build
            query = dns.message.make_query("q.example.org.", "A")
            raw = yield deferToThread(_raw_udp, self.server.port, query)
            self.assertEqual(raw, build(Request(query.to_wire(), ("127.0.0.1", 1), "udp")))


def _raw_udp(port: int, query: dns.message.Message) -> bytes:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(3)
        sock.sendto(query.to_wire(), ("127.0.0.1", port))
        return sock.recv(65535)


class NoCopyTests(unittest.TestCase):
    """A reply whose order cannot change is the same Response object, not a copy."""

    def test_single_records_and_unchanged_orders(self) -> None:
        whoami = run_setup("loadbalance {\n prefer 127.0.0.0/8\n}\nwhoami")
        balancer = whoami.handler
        assert isinstance(balancer, LoadBalance)
        request = make_request("example.org.", "A")
        response = balancer.next.serve(request)
        # prefer puts the address back before the SRV record: the order whoami wrote.
        self.assertIs(balancer.balance(request, response), response)
        self.assertIs(balancer.balance(request, response), response)  # and from the plan, again
        hosts = run_setup("loadbalance\nhosts {\n 10.0.0.1 one.example.org\n}")
        request = make_request("one.example.org.", "A")
        response = hosts.handler.next.serve(request)
        self.assertIs(hosts.handler.balance(request, response), response)

    def test_whoami_records_move_as_bytes(self) -> None:
        # Two names of one length share a plan: each reply keeps its own header and question.
        result = run_setup("loadbalance\nwhoami")
        balancer = result.handler
        for name in ("one.example.org.", "two.example.org."):
            request = make_request(name, "A")
            before = balancer.next.serve(request).wire
            after = balancer.serve(request).wire
            end = request.end_of_question
            _end, starts, _types, _furthest = layout(before)
            a, srv = before[starts[0]:starts[1]], before[starts[1]:starts[2]]
            self.assertEqual(after, before[:end] + srv + a)
        self.assertEqual(len(balancer._plans), 1)


class RelocateTests(unittest.TestCase):
    """``dns.relocate`` on its own: every order of dnspython-compressed replies, and names past
    the 16 KiB a pointer can reach."""

    def test_every_order_of_a_compressed_reply(self) -> None:
        import itertools

        message = dns.message.make_response(dns.message.make_query("www.example.org.", "MX"))
        for text in ("www.example.org. 60 IN CNAME mail.example.org.", "mail.example.org. 60 IN MX 10 mx.other.net.",
                     "mail.example.org. 60 IN MX 20 mx2.other.net.", "example.org. 60 IN SOA ns.other.net. h.other.net. 1 2 3 4 5",
                     "mx.other.net. 60 IN A 192.0.2.1"):
            message.answer.append(_rrset(text))
        wire = message.to_wire()
        expected = _texts(dns.message.from_wire(wire, one_rr_per_rrset=True).answer)
        found = layout(wire)
        for order in itertools.permutations(range(5)):
            out = reorder(wire, found, list(order))
            got = _texts(dns.message.from_wire(out, one_rr_per_rrset=True).answer)
            self.assertEqual(got, [expected[k] for k in order], order)
        self.assertIs(reorder(wire, found, [0, 1, 2, 3, 4]), wire)

    def test_names_beyond_a_pointers_reach(self) -> None:
        message = dns.message.make_response(dns.message.make_query("big.example.org.", "TXT"))
        for i in range(70):
            message.answer.append(_rrset(f"n{i}.big.example.org. 60 IN TXT \"{'x' * 250}\""))
        message.answer.append(_rrset("far.away.example. 60 IN A 10.0.0.1"))
        message.answer.append(_rrset("far.away.example. 60 IN A 10.0.0.2"))
        wire = message.to_wire()
        self.assertGreater(len(wire), 0x4000)
        found = layout(wire)
        count = len(found[2])
        order = list(range(count))
        order[-1], order[-2] = order[-2], order[-1]
        out = reorder(wire, found, order)
        texts = _texts(dns.message.from_wire(out, one_rr_per_rrset=True).answer)
        self.assertEqual(texts[-2:], ["far.away.example. 60 IN A 10.0.0.2", "far.away.example. 60 IN A 10.0.0.1"])


# -- prefer and weighted over hosts ---------------------------------------------------------------


class PreferTests(unittest.TestCase):
    @inlineCallbacks
    def test_preferred_subnets_first_in_their_order(self) -> Any:
        server = InProcessServer(f". {{\n loadbalance round_robin {{\n  prefer 10.9.20.0/24 192.168.1.0/24\n }}\n {HOSTS}\n}}")
        yield server.start()
        self.addCleanup(server.stop)
        for _ in range(10):
            reply = yield server.query("www.example.org.", "A")
            self.assertEqual(_orders(reply)[:2], ["10.9.20.5", "192.168.1.7"])
        reply = yield server.query("www.example.org.", "AAAA")
        self.assertEqual(sorted(_orders(reply)), ["fd00::1", "fd00::2"])

    @inlineCallbacks
    def test_ipv4_mapped_addresses_are_in_ipv4_subnets(self) -> Any:
        # Go's IPNet.Contains sees ::ffff:10.9.20.1 as 10.9.20.1.
        server, balancer, canned = yield CannedServer.start(self, " {\n  prefer 10.9.20.0/24\n }")
        balancer.randbelow = lambda n: 0
        canned.reply = dnspython_reply(["m.example.org. 60 IN AAAA fd00::1", "m.example.org. 60 IN AAAA ::ffff:10.9.20.1"])
        reply, _wire = yield ask(server.port, dns.message.make_query("m.example.org.", "AAAA"))
        self.assertEqual([_value(r) for r in reply.answer], ["::ffff:10.9.20.1", "fd00::1"])


class WeightedTests(unittest.TestCase):
    def write_weights(self, text: str) -> str:
        path = os.path.abspath(self.mktemp())
        with open(path, "w") as f:
            f.write(text)
        return path

    def test_weights_pick_the_top_record_in_proportion(self) -> None:
        path = self.write_weights("www.example.org\n10.0.0.1 3\n10.0.0.2 1\n10.0.0.3 2\n")
        hosts = "hosts {\n 10.0.0.1 www.example.org\n 10.0.0.2 www.example.org\n 10.0.0.3 www.example.org\n}"
        result = run_setup(f"loadbalance weighted {path} {{\n reload 0s\n}}\n{hosts}")
        balancer = result.handler
        self.assertIsInstance(balancer, LoadBalance)
        assert balancer.weight_file is not None
        balancer.weight_file.start()
        tops: collections.Counter[str] = collections.Counter()
        for _ in range(3000):
            response = balancer.serve(make_request("www.example.org.", "A"))
            tops[response.message().answer[0][0].address] += 1
        ratio = {a: n / 3000 for a, n in tops.items()}
        for address, share in (("10.0.0.1", 3 / 6), ("10.0.0.2", 1 / 6), ("10.0.0.3", 2 / 6)):
            self.assertLess(abs(ratio[address] - share), 0.05, ratio)

    def test_other_questions_are_not_weighted(self) -> None:
        path = self.write_weights("www.example.org\n10.0.0.2 255\n")
        result = run_setup(f"loadbalance weighted {path} {{\n reload 0s\n}}\nhosts {{\n 10.0.0.1 www.example.org\n 10.0.0.2 www.example.org\n}}")
        balancer = result.handler
        balancer.weight_file.start()
        request = make_request("www.example.org.", "A")
        response = balancer.next.serve(request)
        txt = make_request("www.example.org.", "TXT")
        self.assertIs(balancer.balance(txt, response), response)
        self.assertEqual(balancer.balance(request, response).message().answer[0][0].address, "10.0.0.2")

    @inlineCallbacks
    def test_weight_file_is_reloaded_over_a_real_server(self) -> Any:
        path = self.write_weights("www.example.org\n10.0.0.1 255\n")
        hosts = "hosts {\n 10.0.0.1 www.example.org\n 10.0.0.2 www.example.org\n}"
        server = InProcessServer(f". {{\n loadbalance weighted {path} {{\n  reload 100ms\n }}\n {hosts}\n}}")
        yield server.start()
        self.addCleanup(server.stop)
        tops: collections.Counter[str] = collections.Counter()
        for _ in range(20):
            reply = yield server.query("www.example.org.", "A")
            tops[_orders(reply)[0]] += 1
        self.assertGreater(tops["10.0.0.1"], 15)
        with open(path, "w") as f:
            f.write("# changed\nwww.example.org\n10.0.0.2 255\n")
        balancer = server.instance.blocks[0].handlers[0]
        changed = ipaddress.ip_address("10.0.0.2").packed
        for _ in range(250):  # the reload runs on the reactor: wait on it without blocking it
            if balancer.weight_file.weights.get("www.example.org.", {}).get(changed) == 255:
                break
            yield deferLater(reactor, 0.02, lambda: None)
        else:
            self.fail("the weight file was not reloaded")
        tops.clear()
        for _ in range(20):
            reply = yield server.query("www.example.org.", "A")
            tops[_orders(reply)[0]] += 1
        self.assertGreater(tops["10.0.0.2"], 15)

    def test_weight_file_errors(self) -> None:
        cases = {
            "www.example.org\n10.0.0.1\n": 'wrong domain name:"10.0.0.1" in weight file F. (Maybe a missing weight value?)',
            "www.example.org\nx 1\n": 'wrong IP address:"x" in weight file F',
            "www.example.org\n10.0.0.1 0\n": 'wrong weight value:"0" in weight file F',
            "www.example.org\n10.0.0.1 256\n": 'wrong weight value:"256" in weight file F',
            "10.0.0.1 2\n": "missing domain name in weight file F",
            "a b c\n": 'could not parse weight line:"a b c" in weight file F',
        }
        for text, error in cases.items():
            with self.assertRaises(ValueError) as caught:
                parse_weights(text, "F")
            self.assertEqual(str(caught.exception), error)

    def test_weight_file_cases(self) -> None:
        """TestWeightFileUpdate's good files: comments, a name without addresses, indentation."""
        text = ("\n# domain 1\nw1.example.org\n192.168.1.15   10\n192.168.1.14   20\n\n# domain 2\nw2.example.org\n"
                " # domain 3\n w3.example.org\n 192.168.2.16 11\n 192.168.2.15 12\n 192.168.2.14 13\n")
        packed = {name: {ipaddress.ip_address(ip).packed: w for ip, w in ws.items()} for name, ws in {
            "w1.example.org.": {"192.168.1.15": 10, "192.168.1.14": 20}, "w2.example.org.": {},
            "w3.example.org.": {"192.168.2.16": 11, "192.168.2.15": 12, "192.168.2.14": 13}}.items()}
        self.assertEqual(parse_weights(text, "F"), packed)
        self.assertEqual(parse_weights("", "F"), {})
        self.assertEqual(parse_weights("m.example.org\n::ffff:10.0.0.1 7\n", "F"), {"m.example.org.": {bytes([10, 0, 0, 1]): 7}})

    def test_missing_file_without_reload_stops_the_start(self) -> None:
        result = run_setup("loadbalance weighted /nonexistent/w {\n reload 0s\n}")
        with self.assertRaises(ValueError) as caught:
            result.handler.weight_file.start()
        self.assertEqual(str(caught.exception), "plugin/loadbalance: weight file open error")


class SetupRowTests(unittest.TestCase):
    def test_coredns_rows(self) -> None:
        rows = load_setup_rows(DATA / "loadbalance" / "setup_cases.json", "loadbalance")
        self.assertEqual(check_setup_rows(self, rows, error_prefix="plugin/loadbalance: "), 12)

    def test_prefer_errors(self) -> None:
        from twisted_coredns.testing import setup_error

        self.assertEqual(setup_error("loadbalance {\n prefer 10.0.0.0/8 x\n}"),
                         'plugin/loadbalance: Corefile:3 - Error during parsing: invalid CIDR "x": invalid CIDR address: x')
        self.assertEqual(setup_error("loadbalance weighted w {\n prefer 10.0.0.0/8\n}"),
                         "plugin/loadbalance: Corefile:3 - Error during parsing: unknown property 'prefer'")

    def test_later_directive_switches_back_to_round_robin(self) -> None:
        # As CoreDNS's parse loop does: a plain ``loadbalance`` after ``weighted`` sets the round
        # robin shuffle again, and a ``weighted`` line drops an earlier prefer.
        result = run_setup("loadbalance weighted w {\n reload 0s\n}\nloadbalance {\n prefer 10.0.0.0/8\n}")
        self.assertEqual((result.handler.policy, len(result.handler.prefer)), ("round_robin", 1))
        self.assertIsNotNone(result.handler.weight_file)
        result = run_setup("loadbalance {\n prefer 10.0.0.0/8\n}\nloadbalance weighted w")
        self.assertEqual((result.handler.policy, result.handler.prefer), ("weighted", ()))


class ReadmeTests(unittest.TestCase):
    @inlineCallbacks
    def test_readme_corefiles(self) -> Any:
        upstream = InProcessServer(f". {{\n {HOSTS}\n}}")
        yield upstream.start()
        self.addCleanup(upstream.stop)
        for path in readme_corefiles("loadbalance"):
            text = path.read_text().replace("forward . 127.0.0.1", f"forward . 127.0.0.1:{upstream.port}")
            if "file ./db.example.com" in text:
                directory = os.path.abspath(self.mktemp())
                os.makedirs(directory)
                with open(os.path.join(directory, "db.example.com"), "w") as f:
                    f.write((DATA / "loadbalance" / "db.example.com").read_text())
                with open(os.path.join(directory, "db.example.com.weights"), "w") as f:
                    f.write((DATA / "loadbalance" / "db.example.com.weights").read_text())
                text = text.replace("./db.example.com", os.path.join(directory, "db.example.com"))
                name = "www.example.com."
                expected = {"100.64.1.1", "100.64.1.2", "100.64.1.3"}
            else:
                name = "www.example.org."
                expected = {*ADDRESSES, "10.9.20.5"}
            result = run_setup(text.split("{", 1)[1].rsplit("}", 1)[0], keys=text.split("{", 1)[0].strip())
            if result.error is not None and "Unknown directive 'file'" in result.message:
                continue  # the file plugin is not built yet in this checkout
            server = InProcessServer(text)
            yield server.start()
            try:
                reply = yield server.query(name, "A")
                self.assertEqual(set(_orders(reply)), expected, path.name)
                if "prefer" in text:
                    self.assertEqual(_orders(reply)[:2], ["10.9.20.5", "192.168.1.7"])
            finally:
                yield server.stop()
