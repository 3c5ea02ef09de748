"""In-band health checks: started by a failed exchange, repeated until the upstream answers.

CoreDNS never probes a healthy upstream. After an error it sends ``. IN NS`` (RD set unless
``no_rec``; another name with ``domain``) over the upstream's own transport with a 1 s timeout, and
repeats every ``health_check`` interval until a reply comes. Any reply, whatever its rcode, is
healthy and resets the failure count; each failed check adds one, and an upstream is down when the
count is above ``max_fails``. At most one probe runs per upstream.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from twisted.internet.defer import Deferred, maybeDeferred, succeed
from twisted.python.failure import Failure

from ...dns import CLASS_IN, NS, RD, query_wire
from . import metrics

if TYPE_CHECKING:
    from .proxy import Proxy

CHECK_TIMEOUT = 1.0
"""CoreDNS's read and write timeout for a check."""

_IDLE, _ACTIVE, _STOPPED = 0, 1, 2


def ping(domain: str, recursion_desired: bool) -> bytes:
    """``domain IN NS``, no EDNS, as miekg's ``SetQuestion`` makes it (the ID is set when sent)."""
    return query_wire(domain, NS, CLASS_IN, flags=RD if recursion_desired else 0)


class HealthChecker:
    """Checks one upstream: ``check()`` fires on a reply and fails otherwise."""

    def __init__(self, proxy: Proxy) -> None:
        self.proxy = proxy
        self.recursion_desired = True
        self.domain = "."
        self.tcp = False
        self.timeout = CHECK_TIMEOUT
        self._failures = metrics.healthcheck_failures.labels("forward", proxy.addr)

    def check(self) -> Deferred[None]:
        proxy = self.proxy
        d = proxy.probe_exchange(ping(self.domain, self.recursion_desired), self.tcp, self.timeout)
        return d.addCallbacks(self._healthy, self._unhealthy)

    def _healthy(self, _reply: bytes) -> None:
        self.proxy.fails = 0
        self.proxy.answered = True

    def _unhealthy(self, failure: Failure) -> Failure:
        self._failures.inc()
        self.proxy.fails += 1
        return failure


class Probe:
    """CoreDNS's ``up.Probe``: runs a check until it succeeds, one run at a time."""

    def __init__(self, reactor: Any) -> None:
        self.reactor = reactor
        self.interval = 0.5
        self._state = _IDLE
        self._timer: Any = None
        self._running: Deferred[Any] | None = None

    def start(self, interval: float) -> None:
        self.interval = interval

    def do(self, check: Callable[[], Deferred[Any]]) -> None:
        """Start probing with ``check`` unless a probe is already running (or stopped)."""
        if self._state != _IDLE:
            return
        self._state = _ACTIVE
        self._run(check)

    def _run(self, check: Callable[[], Deferred[Any]]) -> None:
        self._timer = None
        d = maybeDeferred(check)
        self._running = d
        d.addCallbacks(self._done, self._again, errbackArgs=(check,))

    def _done(self, _result: Any) -> None:
        self._running = None
        if self._state == _ACTIVE:
            self._state = _IDLE

    def _again(self, _failure: Failure, check: Callable[[], Deferred[Any]]) -> None:
        self._running = None
        if self._state == _STOPPED:
            return
        self._timer = self.reactor.callLater(self.interval, self._run, check)

    @property
    def active(self) -> bool:
        return self._state == _ACTIVE

    def stop(self) -> Deferred[Any]:
        """No more checks; the Deferred fires when one in flight has finished."""
        self._state = _STOPPED
        if self._timer is not None and self._timer.active():
            self._timer.cancel()
        self._timer = None
        if self._running is None:
            return succeed(None)
        done: Deferred[Any] = Deferred()
        self._running.addBoth(lambda _: done.callback(None))
        return done
