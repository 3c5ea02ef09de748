"""The ``transfer`` handler: AXFR and IXFR out, over TCP, to the clients named in ``to``.

An AXFR (or an IXFR whose serial is not current: CoreDNS's fallback) is answered with the whole
zone, packed into messages on a worker thread so that a large zone does not stop the reactor; an
IXFR whose serial is current gets the SOA alone. Over UDP both are refused, as CoreDNS refuses
them. The zone comes from the first handler of the block, in chain order, that provides
``ITransferer`` and is authoritative for it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from twisted.internet import defer
from twisted.internet.threads import deferToThreadPool

from ...clog import PluginLogger
from ...dns.constants import AXFR, IXFR, REFUSED, SERVFAIL, SOA
from ...dns.names import Zones
from ...plugin import Handler
from ...request import Request
from ...response import Response, StreamResponse, error_reply, reply
from ...strconv import go_quote
from .messages import axfr_messages, record_count
from .notify import NotifyError, send_notify

log = PluginLogger("transfer")

TSIG_SESSION = "tsig/session"
"""Where the ``tsig`` plugin leaves a verified query's signing session."""


@dataclass
class Rule:
    """One ``transfer`` directive: its zones, the ``to`` addresses (``host:port`` or ``*``) and
    the ``source`` address of NOTIFY messages."""

    zones: list[str]
    to: list[str] = field(default_factory=list)
    source: str | None = None

    def allowed(self, ip: str) -> bool:
        for entry in self.to:
            if entry == "*":
                return True
            host, _port = _split(entry)
            if host == ip:
                return True
        return False


def _split(hostport: str) -> tuple[str, int]:
    host, _, port = hostport.rpartition(":")
    return host.strip("[]"), int(port)


class Transfer(Handler):
    name = "transfer"

    def __init__(self, rules: list[Rule], reactor: Any) -> None:
        self.rules = rules
        self._zones = [Zones(rule.zones) for rule in rules]
        self.reactor = reactor
        self.transferers: list[Any] = []
        """The block's ``ITransferer`` handlers, found at startup."""
        self.key: Any = None
        """The ``dns.tsig.Key`` NOTIFY messages are signed with: the block's first tsig secret."""
        self._notifying: set[defer.Deferred[None]] = set()

    def longest_match(self, name: str) -> Rule | None:
        """The rule whose zone holds ``name`` most closely (ties: the greater zone text, as
        CoreDNS breaks them)."""
        best: Rule | None = None
        best_zone = ""
        for rule, zones in zip(self.rules, self._zones, strict=True):
            zone = zones.matches(name)
            if zone is not None and (len(zone), zone) > (len(best_zone), best_zone):
                best, best_zone = rule, zone
        return best

    def serve(self, request: Request) -> Any:
        qtype = request.qtype
        if qtype != AXFR and qtype != IXFR:
            return self.serve_next(request)
        if request.proto != "tcp":
            return Response.not_written(REFUSED, None, self.name)
        rule = self.longest_match(request.name)
        if rule is None:
            return self.serve_next(request)
        if not rule.allowed(request.ip):
            return error_reply(request, REFUSED)
        serial = -1
        if qtype == IXFR:
            authority = request.message.authority
            if len(authority) != 1 or len(authority[0]) != 1 or authority[0].rdtype != SOA:
                return Response.not_written(SERVFAIL, None, self.name)
            serial = authority[0][0].serial
        for transferer in self.transferers:
            rrsets = transferer.transfer(request.name, serial)
            if rrsets is not None:
                break
        else:
            return self.serve_next(request)
        soa = rrsets[0]
        if qtype == IXFR and len(rrsets) == 1 and soa.rdtype == SOA:
            log.info(
                f"Outgoing noop, incremental transfer for up to date zone {go_quote(request.qname)} to "
                f"{request.ip} for {soa[0].serial} SOA serial"
            )
            # one message: the tsig plugin, if any, signs it on its way back
            return reply(request, answer=[soa], aa=True, plugin=self.name)
        return self._stream(request, rrsets)

    @defer.inlineCallbacks
    def _stream(self, request: Request, rrsets: list[Any]) -> Any:
        session = request.get_metadata(TSIG_SESSION)
        sign = None
        if session is not None and session.ok:
            session.signed_by_chain = True
            sign = session.sign
        pool = self.reactor.getThreadPool()
        messages = yield deferToThreadPool(self.reactor, pool, axfr_messages, request, rrsets, sign)
        count = record_count(rrsets) + 1
        log.info(
            f"Outgoing transfer of {count} records of zone {go_quote(request.qname)} to {request.ip} "
            f"for {rrsets[0][0].serial} SOA serial"
        )
        return StreamResponse(messages, self.name)

    # -- NOTIFY ------------------------------------------------------------------------------

    def notify(self, zone: str) -> defer.Deferred[None]:
        """Tell the ``to`` addresses of ``zone``'s rule that it changed (CoreDNS's
        ``Transfer.Notify``). Failures are logged; the Deferred fires when every address has
        answered or run out of tries."""
        d = defer.ensureDeferred(self._notify(zone.lower()))
        self._notifying.add(d)
        return d.addBoth(self._notified, d)

    def _notified(self, result: Any, d: defer.Deferred[None]) -> Any:
        self._notifying.discard(d)
        return result

    def stop(self) -> defer.Deferred[Any]:
        """At shutdown, NOTIFYs still waiting for an answer stop waiting (no timer or socket
        outlives the server); fires once their sockets are closed."""
        pending = list(self._notifying)
        for d in pending:
            d.cancel()
        return defer.DeferredList(pending, consumeErrors=True)

    async def _notify(self, zone: str) -> None:
        rule = self.longest_match(zone)
        if rule is None:
            return
        targets = [entry for entry in rule.to if entry != "*"]
        sends = [send_notify(self.reactor, zone, *_split(t), rule.source, self.key) for t in targets]
        pending = defer.DeferredList([defer.ensureDeferred(send) for send in sends], consumeErrors=True)
        try:
            results = await pending
        except defer.CancelledError:
            return
        errors = []
        for ok, result in results:
            if ok:
                continue
            failure: Any = result
            if failure.check(defer.CancelledError):
                return  # the server is stopping
            if failure.check(NotifyError):
                errors.append(str(failure.value))
            else:
                log.failure("notify failed", failure)
        log.debug(f"Sent notifies for zone {go_quote(zone)} to [{' '.join(rule.to)}]")
        if errors:
            log.warning("Failed sending notifies: " + "\n".join(errors))
