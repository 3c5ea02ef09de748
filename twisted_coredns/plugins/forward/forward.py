"""The forward handler: which queries it takes, and the loop over upstreams (CoreDNS's ServeDNS).

A query under **FROM** (and not under an ``except`` name) is relayed as the client sent it, with a
new ID, to the upstreams in policy order. A failed exchange starts a health check and moves on; an
upstream that is down is skipped. When all are down, health checking itself is taken to be broken
and that pass goes over every upstream in random order, down or not (with
``failfast_all_unhealthy_upstreams`` the query fails instead). The loop ends at the 5 s deadline or
after ``max_connect_attempts`` failed exchanges. The upstream's reply is returned byte for byte: its
flags, rcode, EDNS options and records are the client's answer.

Nothing here builds a DNS message object: the few checks CoreDNS makes on a reply (is it a response
to this question, its rcode, TC, an empty answer) read the header and the question bytes.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from twisted.internet.defer import Deferred
from twisted.python.failure import Failure
from zope.interface import implementer

from ...clog import PluginLogger
from ...dns import (
    FORMERR,
    NOERROR,
    RCODE_MASK,
    REFUSED,
    SERVFAIL,
    TC,
    Zones,
    flags_of,
    is_response,
    is_subdomain,
    skip_name,
)
from ...dns.dnspython import parse_message
from ...dns.header import COUNTS, U16
from ...interfaces import IReady
from ...plugin import Handler
from ...request import Request
from ...response import Response, error_reply
from ..debug import log_hexdump
from . import metrics
from .connection import CachedClosed, UpstreamError
from .policy import Random

if TYPE_CHECKING:
    from .policy import Policy
    from .proxy import Proxy

DEFAULT_TIMEOUT = 5.0
"""CoreDNS's ``defaultTimeout``: how long one query may go on trying upstreams."""
CONNECT_ATTEMPTS_PER_UPSTREAM = 2

_log = PluginLogger("forward")

_ANY_ORDER: Random[Proxy] = Random()
"""The order of a pass over upstreams that are all down (CoreDNS picks one with its ``random``)."""


class NoHealthy(UpstreamError):
    def __init__(self) -> None:
        super().__init__("no healthy proxies")


def empty_truncated(wire: bytes) -> bytes:
    """A UDP reply larger than the buffer we read it into: the header and question only, TC set
    (what CoreDNS's ``truncateResponse`` leaves)."""
    try:
        end = min(skip_name(wire, 12) + 4, len(wire))
    except ValueError:
        end = len(wire)
    flags = flags_of(wire) | TC
    qd = 1 if end > 12 else 0
    return wire[:2] + U16.pack(flags) + COUNTS.pack(qd, 0, 0, 0) + wire[12:end]


def _carries_records(request: Request) -> bool:
    """The query has records besides its question and one OPT (rare: a fuzzer, an UPDATE)."""
    an, ns, ar = COUNTS.unpack_from(request.wire, 4)[1:]
    return bool(an or ns or ar > 1)


def _unpacks(reply: bytes) -> bool:
    import dns.exception

    try:
        parse_message(reply, ignore_trailing=True, keyring=False)
    except dns.exception.DNSException:
        return False
    return True


def matches(request: Request, reply: bytes) -> bool:
    """CoreDNS's ``Request.Match``: a response with one question, our name (in any case) and our
    type. The class is not compared, as CoreDNS does not compare it."""
    if len(reply) < 12 or not is_response(reply) or reply[4] != 0 or reply[5] != 1:
        return False
    q = request.wire[12 : request.end_of_question]
    got = reply[12 : 12 + len(q)]
    if got == q:
        return True
    return got[:-4].lower() == q[:-4].lower() and got[-4:-2] == q[-4:-2]


@implementer(IReady)
class Forward(Handler):
    """One ``forward`` directive. Ready (for ``/ready``) once an upstream has answered."""

    name = "forward"

    def __init__(self, reactor: Any) -> None:
        self.reactor = reactor
        self.from_zone = "."
        self.ignored = Zones(())
        self.proxies: list[Proxy] = []
        self.policy: Policy[Proxy] | None = None
        self.hc_interval = 0.5
        self.max_fails = 2
        self.force_tcp = False
        self.prefer_udp = False
        self.max_concurrent = 0
        self.limit_error = ""
        self.failfast = False
        self.failover_rcodes: frozenset[int] = frozenset()
        self.next_rcodes: frozenset[int] = frozenset()
        self.next_on_nodata = False
        self.max_connect_attempts = 0
        self.max_connect_attempts_set = False
        self.timeout = DEFAULT_TIMEOUT
        self._concurrent = 0
        self._following: Forward | None = None
        self._next: Any = None
        self.probe_at_start = False
        """Check every upstream once at start, so ``/ready`` need not wait for the first query
        (set when the block uses ``ready``; CoreDNS otherwise never probes a healthy upstream)."""

    # Several forward directives in one block form a chain: each passes on to the one after it,
    # and only the last one to the plugin after forward (CoreDNS's setup wires them the same way).
    @property
    def next(self) -> Any:
        return self._following if self._following is not None else self._next

    @next.setter
    def next(self, handler: Any) -> None:
        if self._following is not None:
            self._following.next = handler
        else:
            self._next = handler

    def follow_with(self, other: Forward) -> None:
        self._following = other

    # -- lifecycle -----------------------------------------------------------------------------

    def on_startup(self) -> None:
        for p in self.proxies:
            p.start(self.hc_interval)
            if self.probe_at_start:
                p.healthcheck()

    def ready(self) -> bool:
        mine = any(p.answered for p in self.proxies)
        return mine and (self._following is None or self._following.ready())

    def on_shutdown(self) -> Deferred[Any]:
        from twisted.internet.defer import DeferredList

        return DeferredList([p.stop() for p in self.proxies], consumeErrors=True)

    # -- serving -------------------------------------------------------------------------------

    def match(self, name: str) -> bool:
        if not is_subdomain(name, self.from_zone):
            return False
        if name == self.from_zone:
            return True
        return not self.ignored.covers(name)

    def serve(self, request: Request) -> Any:
        if not self.match(request.name):
            return self.serve_next(request)
        if self.max_concurrent:
            if self._concurrent >= self.max_concurrent:
                metrics.max_concurrent_rejects.inc()
                return Response.not_written(REFUSED, self.limit_error, self.name)
            self._concurrent += 1
            result = _Exchange(self, request).run()
            if isinstance(result, Deferred):
                return result.addBoth(self._release)
            self._concurrent -= 1
            return result
        return _Exchange(self, request).run()

    def _release(self, result: Any) -> Any:
        self._concurrent -= 1
        return result

    def order(self) -> list[Proxy]:
        assert self.policy is not None
        return self.policy.order(self.proxies)


class _Exchange:
    """One query's walk over the upstreams (the body of CoreDNS's ServeDNS loop)."""

    __slots__ = (
        "all_down",
        "attempts",
        "deadline",
        "error",
        "failovers",
        "fails",
        "force_tcp",
        "forward",
        "i",
        "max_attempts",
        "order",
        "planned",
        "proto",
        "proxy",
        "request",
        "start",
    )

    def __init__(self, forward: Forward, request: Request) -> None:
        self.forward = forward
        self.request = request
        self.planned = self.order = forward.order()
        self.all_down = False  # this pass found every upstream down and tries them all anyway
        self.i = 0
        self.fails = 0
        self.failovers = 0
        self.attempts = 0
        self.max_attempts = (
            forward.max_connect_attempts
            if forward.max_connect_attempts_set
            else CONNECT_ATTEMPTS_PER_UPSTREAM * len(self.order)
        )
        self.deadline = forward.reactor.seconds() + forward.timeout
        self.error: BaseException | None = None
        self.force_tcp = forward.force_tcp
        self.proxy: Proxy | None = None
        self.proto = "udp"
        self.start = 0.0

    def run(self) -> Any:
        f = self.forward
        total = len(f.proxies)
        seconds = f.reactor.seconds
        while seconds() < self.deadline and (self.max_attempts == 0 or self.attempts < self.max_attempts):
            if self.i >= len(self.order):
                # A new pass, in policy order, with health read again.
                self.i = 0
                self.fails = 0
                self.order = self.planned
                self.all_down = False
            proxy = self.order[self.i]
            self.i += 1
            if not self.all_down and proxy.down(f.max_fails):
                self.fails += 1
                if self.fails < total:
                    continue
                metrics.healthcheck_broken.inc()
                if f.failfast:
                    break
                # Every upstream is down, so health checking itself looks broken: this pass tries
                # them all, in random order. CoreDNS tries one at random and gives up if it fails,
                # which turns one dead upstream into SERVFAILs while the others still answer.
                self.all_down = True
                self.order = _ANY_ORDER.order(f.proxies)
                self.i = 1
                proxy = self.order[0]
            # CoreDNS copies its options for each upstream: a TCP retry of a truncated reply
            # (prefer_udp) is for the upstream that truncated it only.
            self.force_tcp = f.force_tcp
            metadata = self.request.metadata
            if metadata is not None:
                # CoreDNS's forward/upstream: the upstream this attempt goes to (the last one
                # tried, once the query is done), when metadata is collected.
                metadata["forward/upstream"] = proxy.addr
            return self._send(proxy)
        return self._give_up()

    def _send(self, proxy: Proxy) -> Any:
        self.proxy = proxy
        request = self.request
        if self.force_tcp:
            proto = "tcp"
        elif self.forward.prefer_udp:
            proto = "udp"
        else:
            proto = request.proto
        if proxy.tls is not None or proxy.doh is not None:
            proto = "tcp"
        self.proto = proto
        self.start = self.forward.reactor.seconds()
        try:
            d = proxy.exchange(request.wire, proto)
        except OSError as exc:
            return self._failed(Failure(UpstreamError(f"dial {proto} {proxy.addr}: {exc.strerror or exc}")))
        return d.addCallbacks(self._reply, self._failed)

    def _reply(self, wire: bytes) -> Any:
        f = self.forward
        request = self.request
        proxy = self.proxy
        assert proxy is not None
        if self.proto == "udp" and len(wire) > request.size:
            wire = empty_truncated(wire)
        rcode = wire[3] & RCODE_MASK
        proxy.observe(rcode, f.reactor.seconds() - self.start)
        if flags_of(wire) & TC and f.prefer_udp and not self.force_tcp:
            # Truncated over UDP with prefer_udp: ask the same upstream again over TCP.
            self.force_tcp = True
            return self._send(proxy)
        if not matches(request, wire):
            # CoreDNS's debug dump of it, with the client's ID put back as CoreDNS puts it back.
            text = f"Wrong reply for id: {request.id}, {request.qname} {request.qtype}"
            log_hexdump(_log, text, request.wire[:2] + wire[2:])
            return error_reply(request, FORMERR)
        if _carries_records(request) and not _unpacks(wire):
            # A query with records of its own may come back echoed in an error reply (unbound
            # echoes the whole query with FORMERR). Such a reply is read whole, as miekg/dns
            # unpacks every reply CoreDNS's forward gets, and one that does not unpack is an
            # upstream error, never relayed; other replies keep the fast path.
            return error_reply(request, SERVFAIL, UpstreamError("dns: reply does not unpack"))
        if rcode in f.failover_rcodes:
            self.failovers += 1
            if self.failovers < len(f.proxies):
                return self.run()
        if f.next_rcodes and rcode in f.next_rcodes and isinstance(f.next, Forward):
            return f.serve_next(request)
        no_answer = wire[6] == 0 and wire[7] == 0
        if f.next_on_nodata and rcode == NOERROR and no_answer and isinstance(f.next, Forward):
            return f.serve_next(request)
        return Response(wire, rcode, None, "forward")

    def _failed(self, failure: Failure) -> Any:
        error = failure.value
        if not isinstance(error, UpstreamError):
            return failure
        proxy = self.proxy
        assert proxy is not None
        if isinstance(error, CachedClosed):
            return self._send(proxy)
        self.error = error
        f = self.forward
        if f.max_fails != 0:
            proxy.healthcheck()
        if self.max_attempts > 0:
            self.attempts += 1
            if self.attempts >= self.max_attempts:
                return self._give_up()
        return self.run()

    def _give_up(self) -> Response:
        return Response.not_written(SERVFAIL, self.error or NoHealthy(), "forward")

