"""The ``/health`` page, its once-a-second self-check, and lameduck."""

from __future__ import annotations

from typing import Any

from twisted.internet.defer import Deferred
from twisted.internet.protocol import Protocol, connectionDone
from twisted.internet.task import LoopingCall, deferLater
from twisted.python.failure import Failure
from twisted.web.resource import Resource

from ... import metrics
from ...clog import PluginLogger
from ...duration import format_duration
from ...metrics import PROCESS_REGISTRY
from ...strconv import go_quote

_log = PluginLogger("health")

SLIM_TIME_BUCKETS = tuple(0.00025 * 10**i for i in range(5))
"""CoreDNS's ``plugin.SlimTimeBuckets``: 0.25 ms to 2.5 s, by tens."""
CHECK_TIMEOUT = 3.0
SLOW = 1.0
"""A local request slower than this is logged: the process is struggling with its load."""

duration = metrics.histogram(
    "health", "request_duration_seconds", "Histogram of the time (in seconds) each request took.",
    buckets=SLIM_TIME_BUCKETS, registry=PROCESS_REGISTRY,
)
failures = metrics.counter(
    "health", "request_failures_total", "The number of times the health check failed.",
    registry=PROCESS_REGISTRY,
)


class HealthPage(Resource):
    """200 ``OK`` for as long as the process serves, lameduck included."""

    isLeaf = True

    def render(self, request: Any) -> bytes:
        request.setResponseCode(200)
        request.setHeader(b"content-type", b"text/plain; charset=utf-8")
        return b"OK"


class SelfCheck:
    """Asks ``/health`` of this process every second, as CoreDNS's ``overloaded`` does: its
    duration is the metric, and a failure or a slow answer is logged."""

    def __init__(self, reactor: Any, url: str) -> None:
        from twisted.web.client import Agent, HTTPConnectionPool

        self.reactor = reactor
        self.url = url
        self.pool = HTTPConnectionPool(reactor, persistent=True)
        self.agent = Agent(reactor, connectTimeout=CHECK_TIMEOUT, pool=self.pool)
        self.loop = LoopingCall(self.check)
        self.loop.clock = reactor
        self._pending: Deferred[Any] | None = None

    def start(self) -> None:
        self.loop.start(1.0, now=False)

    def stop(self) -> Deferred[Any]:
        if self.loop.running:
            self.loop.stop()
        if self._pending is not None:
            self._pending.cancel()
        return self.pool.closeCachedConnections()

    def check(self) -> Deferred[Any] | None:
        if self._pending is not None:
            return None  # the last one is still out: it will be counted when it ends
        start = self.reactor.seconds()
        d = self.agent.request(b"GET", self.url.encode("ascii"))
        d.addCallback(_discard_body)
        timer = self.reactor.callLater(CHECK_TIMEOUT, d.cancel)

        def done(_: object) -> None:
            elapsed = self.reactor.seconds() - start
            duration.observe(elapsed)
            if elapsed > SLOW:
                _log.warning(f"Local health request to {go_quote(self.url)} took more than 1s: "
                             f"{format_duration(elapsed)}")

        def failed(failure: Any) -> None:
            if not self.loop.running:
                return
            duration.observe(self.reactor.seconds() - start)
            failures.inc()
            why = _client_error(self.url, failure)
            _log.warning(f"Local health request to {go_quote(self.url)} failed: {why}")

        def settled(result: object) -> None:
            if timer.active():
                timer.cancel()
            self._pending = None

        d.addCallbacks(done, failed).addBoth(settled)
        self._pending = d
        return d


class _DiscardBody(Protocol):
    """Reads a response's body to its end and drops it (Go's ``resp.Body.Close()``), so that the
    kept-alive connection serves the next check."""

    def __init__(self) -> None:
        self.finished: Deferred[None] = Deferred(self._abort)

    def _abort(self, _: object) -> None:
        transport: Any = self.transport
        if transport is not None:
            transport.stopProducing()

    def dataReceived(self, data: bytes) -> None:
        pass

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        from twisted.web.client import ResponseDone
        from twisted.web.http import PotentialDataLoss

        if self.finished.called:  # cancelled: the timeout, or stop
            return
        if reason.check(ResponseDone, PotentialDataLoss):
            self.finished.callback(None)
        else:
            self.finished.errback(reason)


def _discard_body(response: Any) -> Deferred[None]:
    protocol = _DiscardBody()
    response.deliverBody(protocol)
    return protocol.finished


def _client_error(url: str, failure: Any) -> str:
    """The error of a failed check as Go's ``http.Client`` words it (``Get "URL": ...``): a
    refused connection, the 3 s timeout at any stage, or else Twisted's own text."""
    from urllib.parse import urlsplit

    from twisted.internet.defer import CancelledError
    from twisted.internet.error import ConnectingCancelledError, ConnectionRefusedError, TimeoutError
    from twisted.web.client import RequestTransmissionFailed, ResponseFailed

    error = failure.value
    if isinstance(error, (RequestTransmissionFailed, ResponseFailed)) and error.reasons:
        error = error.reasons[0].value  # the cause, not the list Twisted wraps it in
    if isinstance(error, ConnectionRefusedError):
        why = f"dial tcp {urlsplit(url).netloc}: connect: connection refused"
    elif isinstance(error, (CancelledError, ConnectingCancelledError, TimeoutError)):
        why = "context deadline exceeded (Client.Timeout exceeded while awaiting headers)"
    else:
        why = str(error) or type(error).__name__
    return f"Get {go_quote(url)}: {why}"


def lameduck(reactor: Any, seconds: float) -> Deferred[Any]:
    """Wait ``seconds`` before the server stops: ``/health`` still says OK, DNS is still served,
    while load balancers take the endpoint out."""
    _log.info(f"Going into lameduck mode for {format_duration(seconds)}")
    return deferLater(reactor, seconds, lambda: None)
