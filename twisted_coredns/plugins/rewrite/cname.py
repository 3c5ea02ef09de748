"""``rewrite cname``'s work on the reply: the first CNAME whose target matches gets the new target,
and the records after it are replaced by the answer for that target, asked of this server block
(CoreDNS asks its own server through ``upstream.Lookup``)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from twisted.internet.defer import Deferred, ensureDeferred

from ...clog import PluginLogger
from ...dns.constants import CNAME
from ...dns.edns import Opt, split_options, with_opt
from ...dns.query import query_wire
from ...request import Request
from ...response import Response

if TYPE_CHECKING:
    import dns.message

    from .rules import CnameRule

log = PluginLogger("rewrite")
LOOKUP_KEY = "rewrite/cname-lookup"
"""Metadata on the query a cname rule asks itself: its reply is not rewritten again."""


class CnameAnswer:
    """A matched ``cname`` rule, with the query it matched."""

    def __init__(self, rule: CnameRule, request: Request) -> None:
        self.rule = rule
        self.request = request

    def resolve(self, message: dns.message.Message) -> Deferred[None] | None:
        """Rewrite the first matching CNAME of ``message`` and ask for its new target; a Deferred
        that fires once the answer is in place, or None when no CNAME matched."""
        if self.request.get_metadata(LOOKUP_KEY) or self.rule.lookup is None:
            return None
        for index, rrset in enumerate(message.answer):
            if rrset.rdtype != CNAME:
                continue
            current = rrset[0].target.to_text()
            target = self.rule.new_target(current)
            if not target:
                continue
            return self._ask(message, index, target)
        return None

    def _ask(self, message: dns.message.Message, index: int, target: str) -> Deferred[None]:
        import dns.name

        request = self.request
        try:
            wire = query_wire(target, request.qtype, request.qclass)
        except ValueError as exc:
            log.error(f"upstream lookup failed: {exc}")
            return Deferred.fromCoroutine(_nothing())
        if request.edns:
            opt = Opt(request.udp_size, 0, 0, request.edns_flags, split_options(request.edns_options))
            wire = with_opt(wire, opt)
        lookup = Request(wire, request.remote, request.proto, request.local, request.server)
        lookup.zone = request.zone
        lookup.metadata = {LOOKUP_KEY: True}
        result = self.rule.lookup(lookup)
        d: Deferred[Any] = result if isinstance(result, Deferred) else ensureDeferred(_value(result))

        def _splice(response: Response) -> None:
            if response.wire is None:
                log.error("upstream lookup failed: no reply")
                return
            answer = response.message()
            # CoreDNS keeps the CNAME records up to the one rewritten, and what the lookup gave.
            cname = message.answer[index]
            kept = [rrset for rrset in message.answer[:index] if rrset.rdtype == CNAME] + [cname]
            rdata = cname[0].replace(target=dns.name.from_text(target))
            ttl = cname.ttl
            cname.clear()
            cname.add(rdata, ttl)
            message.answer = kept + list(answer.answer)
            if answer.flags & 0x0200:
                message.flags |= 0x0200
            else:
                message.flags &= ~0x0200

        def _failed(failure: Any) -> None:
            log.error(f"upstream lookup failed: {failure.getErrorMessage()}")

        return d.addCallbacks(_splice, _failed)


async def _nothing() -> None:
    return None


async def _value(result: Any) -> Any:
    return await result
