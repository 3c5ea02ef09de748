"""loadbalance's handler: the reply of the rest of the chain, its records reordered on the wire.

CoreDNS's ``LoadBalanceResponseWriter`` shuffles the parsed message; here the reply's bytes are
walked (``dns.relocate.layout``: where each record starts, its type), the policies order record
indexes, and ``dns.relocate.reorder`` writes the records in that order, keeping compression
pointers valid. No dnspython on this path.

What a reply's records allow to work out (their layout, the groups round robin shuffles, the
preferred subnets' ranks) depends only on the bytes after the question and the question's length,
and replies repeat them: whoami per client, hosts and file per name, cache within a second. So
round robin remembers a ``_Plan`` per records region: a repeated reply costs a dictionary look-up
and the shuffle. A reply whose new order can only be its old one is passed on as it came, without
a copy; one whose order is fixed but new (whoami's A and SRV: SRV first) gets the records region
worked out once.
"""

from __future__ import annotations

import functools
import random
import struct
from collections.abc import Callable, Sequence
from typing import Any

from ...dns import AAAA, AXFR, IXFR, SRV, A, read_name
from ...dns.relocate import Layout, layout, question_end, reorder
from ...dns.wire import WireError
from ...plugin import Handler
from ...request import Request
from ...response import Response, then
from . import reorder as policies
from .reorder import Network, Section, Subnet
from .weights import WeightFile

_COUNTS = struct.Struct("!HHHH")
_TRANSFERS = (AXFR, IXFR)
_WEIGHTED_TYPES = (A, AAAA, SRV)
_MAPPED = b"\x00" * 10 + b"\xff\xff"
_A_RDLEN = b"\x00\x04"
_AAAA_RDLEN = b"\x00\x10"
_PLANS = 1024
"""Records regions remembered per handler (then forgotten all at once, as whoami does)."""
_PLANNED_SIZE = 1024
"""Longer records regions (large TCP replies) are walked every time rather than remembered."""


def _fast_randbelow(n: int, _random: Callable[[], float] = random.random) -> int:
    """A uniform integer below ``n``: CoreDNS draws from ``dns.Id()``, no cryptographic need."""
    return int(_random() * n)


class _Plan:
    """The work one records region allows to do once: its layout and, for round robin, the
    groups each section shuffles."""

    __slots__ = ("found", "region", "sections", "unchanged")

    def __init__(self, found: Layout, sections: list[Section]) -> None:
        self.found = found
        self.sections = sections
        self.region: bytes | None = None
        """The records region in its one new order, when the order involves no draw."""
        self.unchanged = False
        """True when the one possible order is the old one."""


class LoadBalance(Handler):
    name = "loadbalance"

    def __init__(self, policy: str = "round_robin", weights: WeightFile | None = None,
                 prefer: Sequence[Network] = (), randbelow: Callable[[int], int] = _fast_randbelow) -> None:
        self.policy = policy
        self.weight_file = weights
        self.prefer = tuple(prefer)
        self.subnets: tuple[Subnet, ...] = tuple(policies.subnet(n) for n in self.prefer)
        self.randbelow = randbelow
        self._plans: dict[tuple[int, int, int, int, bytes], _Plan] = {}

    def serve(self, request: Request) -> Any:
        result = self.serve_next(request)
        if type(result) is Response:
            return self.balance(request, result)
        return then(result, functools.partial(self.balance, request))

    def balance(self, request: Request, response: Response) -> Response:
        wire = response.wire
        if not wire or response.rcode or request.qtype in _TRANSFERS or type(response) is not Response:
            return response  # an error, a transfer, or several messages (a stream): as it came
        try:
            qd, an, ns, ar = _COUNTS.unpack_from(wire, 4)
            if an < 2 and ns < 2 and ar < 2:
                return response  # a section of one record keeps its order under every policy
            weighted = self.policy == "weighted"
            if weighted and request.qtype not in _WEIGHTED_TYPES:
                return response  # CoreDNS weighs the replies to A, AAAA and SRV questions only
            end = request.end_of_question
            if qd != 1 or not wire.startswith(request.wire[12:end], 12):
                end = question_end(wire)  # not the query's question: walk the reply's
            plan = self._plan_of(wire, end, an, ns, ar)
            if weighted:
                out = self._weighted(wire, plan.found, an, ar)
            else:
                out = self._round_robin(wire, end, plan)
        except (WireError, IndexError, struct.error):
            return response  # not a reply we can walk: the server sends it as it came
        if out is wire:
            return response
        return Response(out, response.rcode, response.error, response.plugin, response.has_opt)

    # -- what a records region allows to work out once ----------------------------------------

    def _plan_of(self, wire: bytes, end: int, an: int, ns: int, ar: int) -> _Plan:
        region = wire[end:]
        key = (end, an, ns, ar, region)
        plan = self._plans.get(key)
        if plan is None:
            plan = self._plan(wire, end, an, ns, ar)
            if len(region) <= _PLANNED_SIZE:
                if len(self._plans) >= _PLANS:
                    self._plans.clear()
                self._plans[key] = plan
        return plan

    # -- round robin (and prefer) -------------------------------------------------------------

    def _round_robin(self, wire: bytes, end: int, plan: _Plan) -> bytes:
        if plan.unchanged:
            return wire
        if plan.region is not None:
            return wire[:end] + plan.region
        return reorder(wire, plan.found, policies.draw(plan.sections, self.randbelow))

    def _plan(self, wire: bytes, end: int, an: int, ns: int, ar: int) -> _Plan:
        """The layout, and for round robin its groups: CoreDNS shuffles every section; with
        ``prefer`` it then puts the preferred subnets first in the answer and additional
        sections."""
        found = layout(wire, end)
        if self.policy == "weighted":
            return _Plan(found, [])  # the layout only: the weights may change between replies
        types = found[2]
        address_of = _addresses(wire, found[1], types)
        subnets = self.subnets
        sections = [
            policies.round_robin(types, 0, an, address_of, subnets),
            policies.round_robin(types, an, an + ns),
            policies.round_robin(types, an + ns, an + ns + ar, address_of, subnets),
        ]
        plan = _Plan(found, sections)
        if not policies.is_random(sections):
            out = reorder(wire, found, policies.draw(sections, self.randbelow))
            if out is wire:
                plan.unchanged = True
            else:
                plan.region = out[end:]
        return plan

    # -- weighted -----------------------------------------------------------------------------

    def _weighted(self, wire: bytes, found: Layout, an: int, ar: int) -> bytes:
        """CoreDNS's weighted policy: the answer and additional sections get a top address
        picked by weight."""
        assert self.weight_file is not None
        weights = self.weight_file.weights
        _end, starts, types, _furthest = found
        address_of = _addresses(wire, starts, types)

        def weight_of(k: int) -> int:
            # CoreDNS looks the owner up as the reply spells it; lower case here, as the file's
            # names are, so a client's mixed-case question finds its weights too.
            ip = address_of(k)
            if ip is None:
                return 1
            return weights.get(read_name(wire, starts[k])[0].lower(), {}).get(ip, 1)

        order: list[int] | None = None
        total = len(types)
        for lo, hi in ((0, an), (total - ar, total)):
            if hi - lo < 2:
                continue
            section = policies.weighted(types, lo, hi, weight_of, self.randbelow)
            if section is None:
                continue
            if order is None:
                order = list(range(total))
            order[lo:hi] = section
        return wire if order is None else reorder(wire, found, order)


def _addresses(wire: bytes, starts: list[int], types: list[int]) -> policies.AddressOf:
    """Record index to its address, read from the end of its data."""

    def address_of(k: int) -> bytes | None:
        end = starts[k + 1]
        if types[k] == A:
            return wire[end - 4 : end] if wire[end - 6 : end - 4] == _A_RDLEN else None
        if types[k] != AAAA or wire[end - 18 : end - 16] != _AAAA_RDLEN:
            return None
        if wire[end - 16 : end - 4] == _MAPPED:
            return wire[end - 4 : end]  # Go's To4: an IPv4 subnet holds ::ffff:a.b.c.d
        return wire[end - 16 : end]

    return address_of
