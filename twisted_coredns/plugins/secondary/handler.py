"""The ``secondary`` handler: ``file``'s handler over zones that come from primaries.

Each zone is transferred at startup (retried with a doubling wait, 250 ms up to 10 s, as CoreDNS
retries), then follows its SOA: every *refresh* seconds (plus up to 5 s of jitter) the primaries'
serial is checked and a newer zone transferred; a failed check is retried every *retry* seconds
(plus up to 2 s); a zone that could not be checked for *expire* seconds is expired and answers
SERVFAIL until a check succeeds again. A NOTIFY from a primary is answered at once and starts a
check; one from any other address is dropped unanswered, as CoreDNS drops it.

Transfers and checks run on the reactor's thread pool (``inbound``); zones are swapped in on the
reactor thread, whole, so a query sees the old zone or the new one. A transfer that fails half-way
(the primary cut the stream) leaves the old zone serving; a zone whose serial is lower than the
one served is not taken.
"""

from __future__ import annotations

import random
from collections.abc import Iterable
from typing import Any

import dns.tsig
import dns.zone
from twisted.internet import defer
from twisted.internet.threads import deferToThreadPool
from zope.interface import implementer

from ...clog import PluginLogger
from ...interfaces import IReady, ITransferer
from ...request import Request
from ...response import Response, reply
from ...strconv import go_quote
from ..file.handler import File
from ..file.zone import Zone
from . import inbound

log = PluginLogger("secondary")

_OPCODE_NOTIFY = 4
_FIRST_WAIT = 0.25
_MAX_WAIT = 10.0


def go_duration(seconds: float) -> str:
    """Go's ``time.Duration.String`` for the waits used here (250ms, 1s, 10s)."""
    if seconds < 1:
        return f"{round(seconds * 1000)}ms"
    return f"{seconds:g}s"


class _ZoneState:
    """What a secondary zone carries besides its records: primaries, timers, the last transfer."""

    def __init__(self, origin: str, primaries: list[str]) -> None:
        self.origin = origin
        self.primaries = primaries
        self.previous: dns.zone.Zone | None = None
        self.busy = False
        self.retry_active = False
        self.timers: dict[str, Any] = {}
        self.stopped = False


@implementer(ITransferer, IReady)
class Secondary(File):
    name = "secondary"

    def __init__(
        self,
        primaries: dict[str, list[str]],
        *,
        fall: Iterable[str] = (),
        block: Any = None,
        reactor: Any = None,
        key: dns.tsig.Key | None = None,
    ) -> None:
        super().__init__(dict.fromkeys(primaries), fall=fall, block=block)
        self.states = {origin: _ZoneState(origin, list(p)) for origin, p in primaries.items()}
        self.reactor = reactor
        self.key = key
        """The TSIG key transfers and checks are signed with (the block's ``tsig`` secret)."""
        self.jitter = True
        self._sleeping: dict[Any, defer.Deferred[None]] = {}

    # -- serving -------------------------------------------------------------------------------

    def serve(self, request: Request) -> Any:
        if (request.flags >> 11) & 0xF == _OPCODE_NOTIFY:
            origin = self.names.matches(request.name)
            if origin is not None:
                return self._notified(request, origin)
        return super().serve(request)

    def _notified(self, request: Request, origin: str) -> Response:
        state = self.states[origin]
        if not any(inbound.split(p)[0] == request.ip for p in state.primaries):
            log.info(f"Dropping notify from {request.ip} for {origin}")
            return Response.no_reply(self.name)
        log.info(f"Notify from {request.ip} for {origin}: checking transfer")
        defer.ensureDeferred(self._check(state, notify_from=request.ip))
        return reply(request, aa=True, plugin=self.name)

    # -- the zone's life -----------------------------------------------------------------------

    def start(self) -> None:
        for state in self.states.values():
            state.stopped = False
            defer.ensureDeferred(self._first_transfer(state))

    def stop(self) -> None:
        for state in self.states.values():
            state.stopped = True
            for timer in state.timers.values():
                if timer.active():
                    timer.cancel()
            state.timers.clear()
        # A retry loop asleep wakes now, sees ``stopped`` and ends: no timer outlives the server.
        for timer, sleeper in list(self._sleeping.items()):
            if timer.active():
                timer.cancel()
                sleeper.callback(None)

    def _in_thread(self, fn: Any, *args: Any) -> defer.Deferred[Any]:
        return deferToThreadPool(self.reactor, self.reactor.getThreadPool(), fn, *args)

    def _sleep(self, seconds: float) -> defer.Deferred[None]:
        d: defer.Deferred[None] = defer.Deferred()
        if all(state.stopped for state in self.states.values()):
            d.callback(None)  # stopped while a transfer ran: the loop ends now
            return d
        timer = self.reactor.callLater(seconds, d.callback, None)
        self._sleeping[timer] = d
        return d.addBoth(self._woke, timer)

    def _woke(self, result: Any, timer: Any) -> Any:
        self._sleeping.pop(timer, None)
        return result

    async def _first_transfer(self, state: _ZoneState) -> None:
        wait = _FIRST_WAIT
        while not state.stopped:
            error = await self._transfer_in(state)
            if error is None:
                self._restart(state)
                return
            log.warning(
                f"All '{state.origin}' masters failed to transfer, retrying in {go_duration(wait)}: {error}"
            )
            await self._sleep(wait)
            wait = min(wait * 2, _MAX_WAIT)

    async def _transfer_in(self, state: _ZoneState) -> str | None:
        """Transfer the zone from the first primary that gives it; None on success, else the
        last error."""
        if state.busy:
            return None
        state.busy = True
        try:
            error = "no primaries"
            for primary in state.primaries:
                try:
                    zone_data = await self._in_thread(
                        inbound.fetch, state.origin, primary, state.previous, self.key
                    )
                    rrsets = inbound.rrsets_of(zone_data)
                    zone = await self._in_thread(Zone.from_rrsets, state.origin, rrsets)
                except Exception as exc:
                    error = inbound.describe(exc)
                    log.error(f"Failed to transfer `{state.origin}' from {go_quote(primary)}: {error}")
                    continue
                current = self.zones.get(state.origin)
                if current is not None and inbound.serial_less(zone.serial, current.serial):
                    log.warning(
                        f"Transferred {state.origin} from {primary} has serial {zone.serial}, lower than "
                        f"the {current.serial} served: ignored"
                    )
                    return None
                state.previous = zone_data
                zones = dict(self.zones)
                zones[state.origin] = zone
                self.set_zones(zones)
                log.info(f"Transferred: {state.origin} from {primary}")
                self.notify(state.origin)
                return None
            return error
        finally:
            state.busy = False

    async def _should_transfer(self, state: _ZoneState) -> bool:
        """Whether a primary has a newer serial (CoreDNS's ``shouldTransfer``); raises when no
        primary answered."""
        error: BaseException | None = None
        serial: int | None = None
        for primary in state.primaries:
            try:
                serial = await self._in_thread(inbound.remote_serial, state.origin, primary, self.key)
            except Exception as exc:
                error = exc
                continue
            if serial is not None:
                break
        if serial is None:
            if error is not None:
                raise error
            return False
        current = self.zones.get(state.origin)
        if current is None:
            return True
        if inbound.serial_less(serial, current.serial):
            log.warning(
                f"Primary serial {serial} for {state.origin} is lower than ours ({current.serial}): ignored"
            )
        return inbound.serial_less(current.serial, serial)

    async def _check(self, state: _ZoneState, notify_from: str | None = None) -> bool:
        """Check the primaries and transfer a newer zone; True when the check worked."""
        try:
            newer = await self._should_transfer(state)
        except Exception as exc:
            if notify_from is not None:
                why = inbound.describe(exc)
                log.warning(f"Notify from {notify_from} for {state.origin}: failed primary check: {why}")
            return False
        if not newer:
            if notify_from is not None:
                log.info(f"Notify from {notify_from} for {state.origin}: no SOA serial increase seen")
            return True
        error = await self._transfer_in(state)
        if error is not None:
            if notify_from is not None:
                log.warning(f"Notify from {notify_from} for {state.origin}: transfer failed: {error}")
            return False
        if notify_from is not None:
            self._restart(state)
        return True

    # -- SOA timers ----------------------------------------------------------------------------

    def _restart(self, state: _ZoneState) -> None:
        """Timers from the zone's SOA, after a successful check (CoreDNS's ``goto Restart``)."""
        zone = self.zones.get(state.origin)
        if zone is None or state.stopped:
            return
        for timer in state.timers.values():
            if timer.active():
                timer.cancel()
        soa = zone.soa[0]
        state.retry_active = False
        later = self.reactor.callLater
        state.timers = {
            "refresh": later(max(soa.refresh, 1) + self._jitter(5), self._refresh, state),
            "expire": later(max(soa.expire, 1), self._expire, state),
        }

    def _jitter(self, seconds: float) -> float:
        return random.uniform(0, seconds) if self.jitter else 0.0

    def _refresh(self, state: _ZoneState) -> None:
        defer.ensureDeferred(self._timed_check(state, "refresh"))

    def _retry(self, state: _ZoneState) -> None:
        defer.ensureDeferred(self._timed_check(state, "retry"))

    async def _timed_check(self, state: _ZoneState, why: str) -> None:
        if state.stopped:
            return
        try:
            newer = await self._should_transfer(state)
            error = await self._transfer_in(state) if newer else None
        except Exception as exc:
            log.warning(f"Failed {why} check {inbound.describe(exc)}")
            error = "check failed"
        if error is None:
            self._restart(state)
            return
        state.retry_active = True
        zone = self.zones.get(state.origin)
        retry = max(zone.soa[0].retry, 1) if zone is not None else 10
        if not state.stopped:
            state.timers["retry"] = self.reactor.callLater(retry + self._jitter(2), self._retry, state)

    def _expire(self, state: _ZoneState) -> None:
        zone = self.zones.get(state.origin)
        if zone is None or state.stopped:
            return
        if state.retry_active:
            zone.set_expired()
            log.error(f"Zone {state.origin} expired: no primary answered for {zone.soa[0].expire}s")
        else:
            state.timers["expire"] = self.reactor.callLater(max(zone.soa[0].expire, 1), self._expire, state)
