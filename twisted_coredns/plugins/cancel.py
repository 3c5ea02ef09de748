"""cancel [TIMEOUT]: gives the rest of the chain TIMEOUT (default 5001ms) to answer a query, then
cancels it and answers SERVFAIL (CoreDNS's plugin/cancel, where a context deadline does this).

Cancelling the Deferred reaches whatever the chain is waiting on: a query ``forward`` has in
flight is forgotten by its connection at once (its ID freed, a late reply dropped).
"""

from __future__ import annotations

from typing import Any

from twisted.internet.defer import CancelledError, Deferred, ensureDeferred
from twisted.python.failure import Failure

from ..corefile import CorefileError
from ..dns import SERVFAIL
from ..duration import parse_duration_ns
from ..plugin import Controller, Handler
from ..request import Request
from ..response import HandlerResult, Response
from ..strconv import go_quote

DEFAULT_TIMEOUT = 5.001


class Cancel(Handler):
    name = "cancel"

    def __init__(self, timeout: float, clock: Any) -> None:
        self.timeout = timeout
        self.clock = clock

    def serve(self, request: Request) -> HandlerResult:
        result = self.serve_next(request)
        if type(result) is Response:
            return result  # answered at once: nothing to cancel, no Deferred made
        d: Deferred[Response] = result if isinstance(result, Deferred) else ensureDeferred(result)
        if d.called:
            return d
        timer = self.clock.callLater(self.timeout, d.cancel)

        def _done(outcome: Any) -> Any:
            if timer.active():
                timer.cancel()
            return outcome

        d.addBoth(_done)
        return d.addErrback(self._cancelled)

    def _cancelled(self, failure: Failure) -> Any:
        if failure.check(CancelledError):
            return Response.not_written(SERVFAIL, "context deadline exceeded", self.name)
        return failure


def setup(controller: Controller) -> Cancel:
    timeout = DEFAULT_TIMEOUT
    for directive in controller.directives:
        controller.no_block(directive)
        if len(directive.args) > 1:
            raise controller.arg_error(directive)
        if not directive.args:
            timeout = DEFAULT_TIMEOUT
            continue
        text = directive.args[0].text
        try:
            nanoseconds = parse_duration_ns(text)
        except ValueError:
            raise CorefileError(f"invalid duration: {go_quote(text)}") from None
        if nanoseconds <= 0:
            raise CorefileError(f"invalid negative duration: {go_quote(text)}")
        timeout = nanoseconds / 1e9
    return Cancel(timeout, controller.reactor)
