"""The errors plugin's handler: log the error behind a failed query, or count it.

An error is what a later handler reports in ``Response.error`` (CoreDNS's returned ``error``), or
an exception it raises (the query then gets SERVFAIL, as for any crash). Each is logged as
``[ERROR] plugin/errors: RCODE NAME TYPE: ERROR``, unless a ``consolidate`` pattern matches it: then
it is counted, and one line per period says how many there were. Periods are timed with the reactor
the plugin was set up with, so tests can drive them with a ``Clock``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from twisted.python.failure import Failure

from ...clog import PluginLogger
from ...dns import SERVFAIL
from ...duration import format_duration
from ...goregexp import GoRegexp
from ...plugin import Handler
from ...request import Request
from ...response import Response

__all__ = ["ErrorHandler", "Pattern"]


class Pattern:
    """One ``consolidate DURATION REGEXP [LEVEL] [show_first]`` line and its running count."""

    __slots__ = ("count", "level", "period_ns", "regexp", "show_first", "timer")

    def __init__(
        self, period_ns: int, regexp: GoRegexp, level: str = "error", show_first: bool = False
    ) -> None:
        self.period_ns = period_ns
        self.regexp = regexp
        self.level = level
        self.show_first = show_first
        self.count = 0
        self.timer: Any = None

    @property
    def period(self) -> float:
        return self.period_ns / 1e9

    def __repr__(self) -> str:
        return f"Pattern({format_duration(self.period_ns)}, {self.regexp.pattern!r}, {self.level})"


def _error_text(error: BaseException | str) -> str:
    text = str(error)
    if not text and isinstance(error, BaseException):
        return type(error).__name__
    return text


class ErrorHandler(Handler):
    name = "errors"

    def __init__(self, patterns: list[Pattern], reactor: Any, stacktrace: bool = False) -> None:
        self.patterns = patterns
        self.reactor = reactor
        self.stacktrace = stacktrace
        self.stopped = False
        self._log = PluginLogger("errors")
        self._levels: dict[str, Callable[[str], None]] = {
            "error": self._log.error,
            "warning": self._log.warning,
            "info": self._log.info,
            "debug": self._log.debug,
        }

    # -- serving ---------------------------------------------------------------------------------

    def serve(self, request: Request) -> Any:
        return self.serve_next_then(
            request, lambda response: self._check(request, response), lambda f: self._failed(f, request)
        )

    def _check(self, request: Request, response: Any) -> Any:
        if isinstance(response, Response) and response.error is not None:
            self.report(request, response.rcode, response.error)
        return response

    def _failed(self, failure: Failure, request: Request) -> Response:
        exc = failure.value
        assert isinstance(exc, BaseException)
        return self._crashed(request, exc, failure.getTraceback() if self.stacktrace else "")

    def _crashed(self, request: Request, exc: BaseException, stack: str) -> Response:
        # A raised exception is the handler's error; the query gets SERVFAIL.
        self.report(request, SERVFAIL, exc, stack if self.stacktrace else "")
        return Response.not_written(SERVFAIL, exc, self.name)

    # -- logging and consolidation -------------------------------------------------------------

    def report(self, request: Request, rcode: int, error: BaseException | str, stack: str = "") -> None:
        """Log (or count) one error, as CoreDNS's errorHandler does after ``NextOrFailure``."""
        text = _error_text(error)
        log: Callable[[str], None] = self._log.error
        for index, pattern in enumerate(self.patterns):
            if pattern.regexp.match_string(text):
                if self._consolidate(index):
                    return
                # show_first, or counting has stopped: log it now, at the pattern's level.
                log = self._levels[pattern.level]
                break
        line = f"{rcode} {request.name} {request.type_name}: {text}"
        if stack:
            line += "\n" + stack.rstrip("\n")
        log(line)

    def _consolidate(self, index: int) -> bool:
        """Count an error for pattern ``index``; False when the caller must log it itself."""
        if self.stopped:
            return False
        pattern = self.patterns[index]
        pattern.count += 1
        if pattern.count == 1:
            pattern.timer = self.reactor.callLater(max(pattern.period, 0.0), self._flush, index)
            return not pattern.show_first
        return True

    def _flush(self, index: int) -> None:
        """The period of pattern ``index`` is over: say how many errors it counted."""
        pattern = self.patterns[index]
        count, pattern.count = pattern.count, 0
        pattern.timer = None
        if count == 0:
            return
        if count > 1 or not pattern.show_first:
            self._levels[pattern.level](
                f"{count} errors like '{pattern.regexp.pattern}' occurred in last "
                f"{format_duration(pattern.period_ns)}"
            )

    def stop(self) -> None:
        """At shutdown: no more counting, and the counts so far are logged now."""
        self.stopped = True
        for index, pattern in enumerate(self.patterns):
            timer = pattern.timer
            if timer is not None and timer.active():
                timer.cancel()
                self._flush(index)
