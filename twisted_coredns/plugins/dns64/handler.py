"""dns64's handler: AAAA queries (from IPv6 clients, or any with ``allow_ipv4``) whose reply has
no AAAA record get the name's A records, turned into AAAA records in the prefix.

The A query is asked the way CoreDNS's ``upstream.Lookup`` asks it: from the top of the server
block's chain, as a query of its own, so that every plugin (cache, forward, a zone) answers it.
"""

from __future__ import annotations

import ipaddress
from typing import Any

from ...dns import AAAA, CLASS_IN, SOA, A
from ...dns.classify import NAME_ERROR, typify_wire
from ...interfaces import IHandler
from ...plugin import Handler
from ...request import Request
from ...response import Response, reply
from .metrics import requests_translated

DEFAULT_PREFIX = ipaddress.IPv6Network("64:ff9b::/96")
_DEFAULT_SOA_TTL = 600
"""RFC 6147 5.1.7: without the SOA's TTL, the synthesized TTL is at most 600 seconds."""


def to6(prefix: ipaddress.IPv6Network, v4: bytes) -> bytes:
    """RFC 6052's IPv4-embedded IPv6 address: the IPv4 octets after the prefix, skipping
    octet 8 (bits 64 to 71 must be zero)."""
    v6 = bytearray(16)
    i = prefix.prefixlen // 8
    v6[:i] = prefix.network_address.packed[:i]
    j = 0
    while i < 8 and j < 4:
        v6[i] = v4[j]
        i, j = i + 1, j + 1
    if i == 8:
        i += 1
    while j < 4:
        v6[i] = v4[j]
        i, j = i + 1, j + 1
    return bytes(v6)


class DNS64(Handler):
    name = "dns64"

    def __init__(self, prefix: ipaddress.IPv6Network = DEFAULT_PREFIX, *, translate_all: bool = False,
                 allow_ipv4: bool = False) -> None:
        self.prefix = prefix
        self.translate_all = translate_all
        self.allow_ipv4 = allow_ipv4
        self.top: IHandler | None = None
        """The first handler of the block, where the A query starts (set by setup at startup)."""

    def serve(self, request: Request) -> Any:
        if request.qtype != AAAA or request.qclass != CLASS_IN:
            return self.serve_next(request)
        if not self.allow_ipv4 and request.family == 1:
            return self.serve_next(request)
        return self.serve_next_then(request, lambda response: self._translate(request, response))

    def _needs_synthesis(self, response: Response) -> bool:
        """RFC 6147 5.1: a name error stands; an answer with AAAA records stands too, unless
        ``translate_all``; anything else (no data, another error) is answered from the A records."""
        assert response.wire is not None
        if typify_wire(response.wire, AAAA, response.rcode) == NAME_ERROR:
            return False
        if self.translate_all:
            return True
        message = response.message()
        return not any(rrset.rdtype == AAAA for rrset in message.answer)

    def _translate(self, request: Request, response: Response) -> Any:
        if not response.written or not self._needs_synthesis(response):
            return response
        start = self.top if self.top is not None else self.next
        assert start is not None
        a_query = request.replace(qtype=A)
        return self._ask(start, a_query, lambda a_reply: self._synthesize(request, response, a_reply))

    @staticmethod
    def _ask(start: IHandler, query: Request, callback: Any) -> Any:
        from ...response import then

        return then(start.serve(query), callback)

    def _synthesize(self, request: Request, aaaa_reply: Response, a_reply: Response) -> Response:
        import dns.rdata
        import dns.rdataclass
        import dns.rdatatype
        import dns.rrset

        if not a_reply.written:
            # CoreDNS's upstream gets no message: the A lookup's rcode is the reply.
            return a_reply
        original = aaaa_reply.message()
        soa_ttl = _DEFAULT_SOA_TTL
        for rrset in original.authority:
            if rrset.rdtype == SOA:
                soa_ttl = rrset.ttl
        a_message = a_reply.message()
        answer: list[Any] = []
        for rrset in a_message.answer:
            if rrset.rdtype != A:
                answer.append(rrset)  # 5.3.3: other records pass unchanged
                continue
            out = dns.rrset.RRset(rrset.name, rrset.rdclass, dns.rdatatype.AAAA)
            for rdata in rrset:
                v6 = to6(self.prefix, ipaddress.IPv4Address(rdata.address).packed)
                out.add(dns.rdata.from_wire(rrset.rdclass, dns.rdatatype.AAAA, v6, 0, 16),
                        min(rrset.ttl, soa_ttl))
            answer.append(out)
        result = reply(request, 0, answer, a_message.authority, a_message.additional, plugin=self.name)
        requests_translated.labels(request.server).inc()
        if a_message.flags & 0x0200:  # TC: the A reply was truncated, so is this one
            wire = result.wire
            assert wire is not None
            result = Response(wire[:2] + bytes([wire[2] | 0x02]) + wire[3:], result.rcode, None, self.name)
        return result
