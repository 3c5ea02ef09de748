"""The cache handler: CoreDNS's plugin/cache ServeDNS, on wire bytes.

A hit is answered synchronously from stored bytes (see ``storage.Entry.reply``). A miss passes the
query on and watches the reply with ``Handler.serve_next_then``: its TTLs are capped (every TTL of
the reply set to the time it will be cached, as CoreDNS does, so the client sees no jump between the
first and the next answer), the AD bit is cleared for clients that did not ask for DNSSEC, and the
reply is kept when CoreDNS would keep it. Prefetch and serve_stale refresh through the same chain in
the background.

Time comes from ``clock.seconds()`` (the reactor given to setup), so tests can move it with a
``twisted.internet.task.Clock``.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from twisted.internet.defer import Deferred
from twisted.python.failure import Failure

from ...clog import PluginLogger
from ...dns import AD, CD, EDNS_DO, NOERROR, NXDOMAIN, QR, SERVFAIL, Zones
from ...dns.classify import DELEGATION, META, NAME_ERROR, NO_DATA, NO_ERROR, OTHER_ERROR, SERVER_ERROR, UPDATE
from ...plugin import Handler
from ...request import Request
from ...response import Response
from .metrics import ServerMetrics
from .storage import Entry, Key, Table
from .wire import Malformed, Reply, patch_ttls

_log = PluginLogger("cache")

DEFAULT_CAPACITY = 10000
"""CoreDNS's ``defaultCap``; 256 shards of 39 entries make the documented 9984."""
MAX_TTL = 3600.0
MAX_NTTL = 1800.0
MIN_TTL = 5.0



@dataclass
class Settings:
    """Everything ``cache`` reads from the Corefile, with CoreDNS's defaults. Times in seconds."""

    zones: list[str] = field(default_factory=lambda: ["."])
    pcap: int = DEFAULT_CAPACITY
    pttl: float = MAX_TTL
    minpttl: float = MIN_TTL
    ncap: int = DEFAULT_CAPACITY
    nttl: float = MAX_NTTL
    minnttl: float = MIN_TTL
    failttl: float = MIN_TTL
    prefetch: int = 0
    duration: float = 60.0
    percentage: int = 10
    stale_up_to: float = 0.0
    verify_stale: bool = False
    verify_timeout: float = 0.0
    prefer_positive: bool = False
    stale_ttl: int = 0
    stale_recheck: float = 0.0
    pexcept: list[str] = field(default_factory=list)
    nexcept: list[str] = field(default_factory=list)
    keepttl: bool = False


def _matches(info: Reply, request: Request) -> bool:
    """CoreDNS's ``request.Match``: a response with one question, the query's (any case). The
    question is compared as wire bytes, so the stored TTL offsets hold for every client."""
    return (
        info.qdcount == 1
        and bool(info.flags & QR)
        and info.wire[12 : info.end_of_question].lower() == request.question_wire.lower()
    )


def _clamp(ttl: float, low: float, high: float) -> float:
    """CoreDNS's ``computeTTL``: floored by the minimum, then capped by the maximum."""
    return min(max(ttl, low), high)


def _authenticated(request: Request) -> Request:
    """The query as CoreDNS passes it on from the cache: with AD set, so that a validating
    upstream says whether the answer is authenticated (AD is hidden again from clients that did
    not ask for it)."""
    if request.flags & AD:
        return request
    return request.replace(flags=request.flags | AD)


def _refresh_request(request: Request) -> Request:
    """The query a prefetch sends: AD set, over TCP (no client buffer to fit, as CoreDNS's
    prefetch writer says), with metadata of its own."""
    return request.replace(flags=request.flags | AD, proto="tcp", metadata=None)


class Cache(Handler):
    """A success and a denial table in front of the rest of the chain."""

    name = "cache"

    def __init__(self, settings: Settings, clock: Any) -> None:
        self.settings = settings
        self.clock = clock
        self.pcache = Table(settings.pcap)
        self.ncache = Table(settings.ncap)
        self.zones_label = ",".join(settings.zones)
        self._zones = Zones(settings.zones)
        self._all_zones = "." in self._zones.zones
        self._pexcept = Zones(settings.pexcept)
        self._nexcept = Zones(settings.nexcept)
        self._metrics: dict[str, ServerMetrics] = {}
        # read on every query: kept as plain attributes
        self._prefetch_amount = settings.prefetch
        self._keepttl = settings.keepttl
        self._stale_up_to = int(settings.stale_up_to)

    def _metrics_for(self, server: str) -> ServerMetrics:
        m = self._metrics.get(server)
        if m is None:
            m = self._metrics[server] = ServerMetrics(server, self.zones_label)
        return m

    # -- the query path --------------------------------------------------------------------------

    def serve(self, request: Request) -> Any:
        name = request.name
        if not self._all_zones and not self._zones.covers(name):
            return self.serve_next(request)
        m = self._metrics.get(request.server) or self._metrics_for(request.server)
        now = self.clock.seconds()
        key = (
            name,
            request.qtype,
            request.qclass,
            (request.edns_flags & EDNS_DO) | (request.flags & CD),
        )
        m.requests.inc()
        entry = self._lookup(key, now, m)
        if entry is None:
            return self.serve_next_then(
                _authenticated(request), lambda resp: self._write(request, key, resp, m)[0]
            )
        ttl = entry.ttl(now)
        if ttl <= 0:
            return self._stale(request, key, entry, ttl, now, m)
        if self._prefetch_amount > 0 and self._should_prefetch(entry, now):
            self._prefetch(request, entry, now, False, m)
        return entry.reply(request, entry.orig_ttl if self._keepttl else ttl)

    def _usable(self, entry: Entry, now: float) -> bool:
        ttl = entry.ttl(now)
        return ttl > 0 or (self._stale_up_to > 0 and -ttl < self._stale_up_to)

    def _lookup(self, key: Key, now: float, m: ServerMetrics) -> Entry | None:
        """CoreDNS's ``getIfNotStale``: the denial table first (a SERVFAIL there does not hide a
        good answer), then the success table; expired entries only within serve_stale's window."""
        if self.settings.prefer_positive and self._stale_up_to > 0:
            p = self.pcache.get(key)
            if p is not None:
                p = p.answering_entry()
                if p is not None and self._usable(p, now):
                    m.hits_success.inc()
                    return p
        entry = self.ncache.get(key)
        if entry is not None and self._usable(entry, now):
            if entry.rcode == SERVFAIL:
                p = self.pcache.get(key)
                if p is not None and self._usable(p, now):
                    m.hits_success.inc()
                    return p
            m.hits_denial.inc()
            return entry
        entry = self.pcache.get(key)
        if entry is not None and self._usable(entry, now):
            m.hits_success.inc()
            return entry
        m.misses.inc()
        return None

    # -- storing replies -------------------------------------------------------------------------

    def _write(
        self,
        request: Request,
        key: Key,
        response: Response,
        m: ServerMetrics,
        prefetch: bool = False,
        info: Reply | None = None,
    ) -> tuple[Response, Entry | None]:
        """CoreDNS's caching ResponseWriter: cap the reply's TTLs, hide AD from clients that did
        not ask for it, keep the reply if it may be kept. Returns what the client gets, and the
        entry stored (if any)."""
        wire = response.wire
        if wire is None:
            return response, None  # nothing was written below: nothing to cache
        if info is None:
            try:
                info = Reply(wire)
            except Malformed:
                return response, None
        s = self.settings
        kind = info.cache_type()
        if kind in (NAME_ERROR, NO_DATA):
            duration = _clamp(info.minimal_ttl(kind, s.nttl), s.minnttl, s.nttl)
        elif kind == SERVER_ERROR:
            duration = s.failttl
        else:
            duration = _clamp(info.minimal_ttl(kind, s.pttl), s.minpttl, s.pttl)
        buf = bytearray(wire)
        patch_ttls(buf, info.ttl_offsets, int(duration))
        if not (request.edns_flags & EDNS_DO) and not (request.flags & AD):
            buf[3] &= ~AD & 0xFF
        entry = None
        if duration > 0 and info.cacheable(kind) and info.opt_is_last:
            if _matches(info, request):
                entry = self._set(key, info, buf, kind, duration, m, prefetch)
                m.entries_success.set(len(self.pcache))
                m.entries_denial.set(len(self.ncache))
            else:
                m.drops.inc()
        return Response(bytes(buf), response.rcode, response.error, response.plugin, response.has_opt), entry

    def _set(
        self,
        key: Key,
        info: Reply,
        buf: bytearray,
        kind: str,
        duration: float,
        m: ServerMetrics,
        prefetch: bool,
    ) -> Entry | None:
        s = self.settings
        if kind in (NO_ERROR, DELEGATION):
            if self._pexcept.covers(info.qname):
                return None
            entry = self._entry(info, buf, duration, s.prefer_positive and info.answers_question())
            if s.prefer_positive and not entry.answering:
                previous = self.pcache.get(key)
                if previous is not None:
                    entry.last_known_good = previous.answering_entry()
            if self.pcache.add(key, entry):
                m.evictions_success.inc()
            if (not s.prefer_positive and prefetch) or (s.prefer_positive and entry.answering):
                self.ncache.remove(key)
            return entry
        if kind in (NAME_ERROR, NO_DATA, SERVER_ERROR):
            if self._nexcept.covers(info.qname):
                return None
            entry = self._entry(info, buf, duration, False)
            if self.ncache.add(key, entry):
                m.evictions_denial.inc()
            return entry
        return None

    def _entry(self, info: Reply, buf: bytearray, duration: float, answering: bool) -> Entry:
        # The OPT record is hop-by-hop: the server gives every client its own.
        end = info.opt_start if info.opt_start >= 0 else len(buf)
        return Entry(
            bytes(buf[info.end_of_question : end]),
            tuple(info.ttl_offsets),
            (info.ancount, info.nscount, info.arcount),
            info.rcode,
            info.flags,
            int(duration),
            self.clock.seconds(),
            answering,
        )

    # -- prefetch --------------------------------------------------------------------------------

    def _should_prefetch(self, entry: Entry, now: float) -> bool:
        entry.seen(self.settings.duration, now)
        threshold = math.ceil(self.settings.percentage / 100 * entry.orig_ttl)
        return entry.hits >= self._prefetch_amount and entry.ttl(now) <= threshold

    def _prefetch(self, request: Request, entry: Entry, now: float, stale: bool, m: ServerMetrics) -> None:
        """Refresh ``entry`` in the background (at most one refresh in flight per entry). For a
        stale entry only a reply that really refreshes it is kept (RFC 8767)."""
        recheck = self.settings.stale_recheck if stale else 0.0
        if not entry.begin_refresh(self.clock.seconds(), recheck):
            return
        m.prefetches.inc()
        key = (
            request.name,
            request.qtype,
            request.qclass,
            (request.edns_flags & EDNS_DO) | (request.flags & CD),
        )

        def done(response: Response) -> None:
            if stale:
                refreshed = self._verify(request, key, response, m, prefetch=True)[0]
            else:
                self._write(request, key, response, m, prefetch=True)
                refreshed = True
            if refreshed:
                # the new entry inherits the popularity of the one it replaces
                fresh = self.ncache.get(key) or self.pcache.get(key)
                if fresh is not None:
                    fresh.last, fresh.hits = now, entry.hits
            entry.end_refresh(self.clock.seconds(), recheck, refreshed)

        def failed() -> None:
            entry.end_refresh(self.clock.seconds(), recheck, False)

        self._background(_refresh_request(request), done, failed)

    def _background(
        self, request: Request, done: Callable[[Response], None], failed: Callable[[], None]
    ) -> None:
        def on_failure(failure: Failure) -> None:
            _log.debug(f"refresh of {request.qname} failed: {failure.getErrorMessage()}")
            failed()

        try:
            result = self.serve_next_then(request, done, on_failure)
        except Exception:
            # ``done`` itself failed on a synchronous reply: logged the same way.
            on_failure(Failure())
            return
        if isinstance(result, Deferred):
            result.addErrback(on_failure)

    # -- serve_stale -----------------------------------------------------------------------------

    def _stale_reply(self, request: Request, entry: Entry, m: ServerMetrics) -> Response:
        m.served_stale.inc()
        s = self.settings
        if s.stale_ttl > 0:
            ttl = s.stale_ttl
        elif self._keepttl:
            ttl = entry.orig_ttl
        else:
            ttl = 0
        return entry.reply(request, ttl)

    def _stale(self, request: Request, key: Key, entry: Entry, ttl: int, now: float, m: ServerMetrics) -> Any:
        s = self.settings
        if s.verify_stale:
            track = s.stale_recheck > 0
            if not track or entry.begin_refresh(now, s.stale_recheck):
                return self._verify_stale(request, key, entry, m, track)
            return self._stale_reply(request, entry, m)
        self._prefetch(request, entry, now + ttl, True, m)
        return self._stale_reply(request, entry, m)

    def _verify(
        self, request: Request, key: Key, response: Response, m: ServerMetrics, prefetch: bool
    ) -> tuple[bool, Response | None, Entry | None]:
        """CoreDNS's verifyStaleResponseWriter: only a complete, matching NOERROR or NXDOMAIN
        reply refreshes a stale entry (with prefer_positive: only a usable answer)."""
        wire = response.wire
        if wire is None:
            return False, None, None
        try:
            info = Reply(wire)
        except Malformed:
            return False, None, None
        if info.truncated or not _matches(info, request):
            return False, None, None
        if self.settings.prefer_positive:
            usable = info.cache_type() == NO_ERROR and info.answers_question()
            out, entry = self._write(request, key, response, m, prefetch or not usable, info)
            return (True, out, entry) if usable else (False, None, None)
        if info.typify() in (OTHER_ERROR, META, UPDATE) or info.rcode not in (NOERROR, NXDOMAIN):
            return False, None, None
        out, entry = self._write(request, key, response, m, prefetch, info)
        return True, out, entry

    def _verify_stale(self, request: Request, key: Key, entry: Entry, m: ServerMetrics, track: bool) -> Any:
        """serve_stale verify: ask first, serve the stale entry only if no fresh answer comes
        (within VERIFY_TIMEOUT when one is set; the refresh still completes in the background)."""
        s = self.settings

        def end(refreshed: bool) -> None:
            if track:
                entry.end_refresh(self.clock.seconds(), s.stale_recheck, refreshed)

        if s.verify_timeout <= 0:

            def after(response: Response) -> Response:
                refreshed, out, _entry = self._verify(request, key, response, m, False)
                end(refreshed)
                return out if refreshed and out is not None else self._stale_reply(request, entry, m)

            def failed(_failure: Failure) -> Response:
                end(False)
                return self._stale_reply(request, entry, m)

            try:
                result = self.serve_next_then(_authenticated(request), after, failed)
            except Exception:
                return failed(Failure())
            if isinstance(result, Deferred):
                result.addErrback(failed)
            return result

        answer: Deferred[Response] = Deferred()

        def give_stale() -> None:
            if not answer.called:
                answer.callback(self._stale_reply(request, entry, m))

        timer = self.clock.callLater(s.verify_timeout, give_stale)

        def settle(response: Response | None) -> None:
            if timer.active():
                timer.cancel()
            if answer.called:
                return
            if response is None:
                give_stale()
            else:
                answer.callback(response)

        def arrived(response: Response) -> None:
            # stored but not written: the client gets it only if it beat the timer
            refreshed, out, fresh = self._verify(request, key, response, m, True)
            end(refreshed)
            if not refreshed:
                settle(None)
            elif fresh is not None:
                now = self.clock.seconds()
                settle(fresh.reply(request, fresh.orig_ttl if self._keepttl else fresh.ttl(now)))
            else:
                settle(out)

        def not_arrived() -> None:
            end(False)
            settle(None)

        self._background(_authenticated(request), arrived, not_arrived)
        return answer
