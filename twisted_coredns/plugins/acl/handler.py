"""The acl handler: the rules in order, each a set of zones and a list of policies."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from typing import Any

from ...clog import PluginLogger
from ...config import BlockConfig
from ...dns import HEADER, REFUSED, Zones, reply_flags
from ...dns.records import opt_with_ede
from ...metrics import counter
from ...plugin import Handler
from ...request import Request
from ...response import Response

log = PluginLogger("acl")

ALLOW, BLOCK, FILTER, DROP = "allow", "block", "filter", "drop"
_NONE = ""
_EDE_BLOCKED, _EDE_FILTERED = 15, 17
_DECISIONS = 4096
"""Decisions a rule remembers before it forgets them all (a bound on memory under a flood from
many addresses)."""

blocked = counter("acl", "blocked_requests_total", "Counter of DNS requests being blocked.",
                  ["server", "zone", "view"])
filtered = counter("acl", "filtered_requests_total", "Counter of DNS requests being filtered.",
                   ["server", "zone", "view"])
allowed = counter("acl", "allowed_requests_total", "Counter of DNS requests being allowed.",
                  ["server", "view"])
dropped = counter("acl", "dropped_requests_total", "Counter of DNS requests being dropped.",
                  ["server", "zone", "view"])

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


@dataclass(frozen=True)
class Policy:
    """One line of the block: an action, the types it applies to (None: all) and its sources."""

    action: str
    qtypes: frozenset[int] | None
    networks: tuple[Network, ...]

    def matches(self, qtype: int, address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
        if self.qtypes is not None and qtype not in self.qtypes:
            return False
        return any(address in net for net in self.networks if net.version == address.version)


@dataclass(frozen=True)
class Rule:
    zones: Zones
    policies: tuple[Policy, ...]


def _client_address(ip: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        address = ipaddress.ip_address(ip.split("%", 1)[0])
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped  # Go's net.ParseIP gives a v4-in-v6 address its 4-byte form
    return address


class ACL(Handler):
    name = "acl"

    def __init__(self, rules: list[Rule], config: BlockConfig) -> None:
        self.rules = tuple(rules)
        self.config = config
        # A rule's action depends only on the client's address and the query type: each rule
        # remembers the ones it decided, so a repeat client costs one dict look-up.
        self._decided: tuple[dict[tuple[str, int], str], ...] = tuple({} for _ in self.rules)
        # The allowed counter's child per server address: a labelled child costs about a
        # microsecond to look up, and every allowed query counts.
        self._allowed: dict[str, Any] = {}

    def _decide(self, index: int, key: tuple[str, int]) -> str:
        """The first policy of rule ``index`` that matches (source, type) ``key``, remembered."""
        ip = key[0]
        address = _client_address(ip)
        if address is None:
            log.error(f"Blocking request. Unable to parse source address: {ip}")
            return BLOCK
        action = _NONE
        for policy in self.rules[index].policies:
            if policy.matches(key[1], address):
                action = policy.action
                break
        decided = self._decided[index]
        if len(decided) >= _DECISIONS:
            decided.clear()
        decided[key] = action
        return action

    def serve(self, request: Request) -> Any:
        name = request.name
        key: tuple[str, int] | None = None
        for index, rule in enumerate(self.rules):
            zone = rule.zones.matches(name)
            if zone is None:
                continue
            if key is None:
                key = (request.remote[0], request.qtype)
            action = self._decided[index].get(key)
            if action is None:
                action = self._decide(index, key)
            if action == _NONE:
                continue
            if action == ALLOW:
                break
            if action == DROP:
                dropped.labels(request.server, zone, self.config.view_name).inc()
                return Response.no_reply(self.name)
            if action == BLOCK:
                blocked.labels(request.server, zone, self.config.view_name).inc()
                return _ede_reply(request, REFUSED, _EDE_BLOCKED)
            if action == FILTER:
                filtered.labels(request.server, zone, self.config.view_name).inc()
                return _ede_reply(request, 0, _EDE_FILTERED)
        counted = self._allowed.get(request.server)
        if counted is None:
            counted = self._allowed[request.server] = allowed.labels(request.server, self.config.view_name)
        counted.inc()
        nxt = self.next
        return nxt.serve(request) if nxt is not None else self.serve_next(request)


def _ede_reply(request: Request, rcode: int, info_code: int) -> Response:
    """CoreDNS's ``SetRcode`` + ``SetEdns0(4096, true)`` + an EDE, after the ScrubWriter: an EDNS
    client gets its own size and DO bit in the OPT record, any other the 4096 and DO of the Go
    code."""
    if request.edns:
        opt = opt_with_ede(info_code, "", request.udp_size, request.do)
    else:
        opt = opt_with_ede(info_code)
    head = HEADER.pack(request.id, reply_flags(request.flags, rcode), 1, 0, 0, 1)
    return Response(head + request.question_wire + opt, rcode, None, "acl", True)
