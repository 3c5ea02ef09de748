"""CoreDNS's log lines on twisted.logger.

CoreDNS writes ``[INFO] plugin/reload: Running configuration ...`` to standard output, with no
timestamp. Plugins here log through twisted.logger (so twistd's log file, syslog and JSON observers
all work); ``CoreDNSObserver`` prints events in CoreDNS's shape when we own the output (the
``twisted-coredns`` command). ``[DEBUG]`` lines are dropped unless the ``debug`` plugin is on.
"""

from __future__ import annotations

import re
import sys
import time
from typing import IO, Any

from twisted.logger import ILogObserver, Logger, LogLevel, formatEvent
from zope.interface import implementer

_LEVELS = {
    LogLevel.debug: "[DEBUG]",
    LogLevel.info: "[INFO]",
    LogLevel.warn: "[WARNING]",
    LogLevel.error: "[ERROR]",
    LogLevel.critical: "[FATAL]",
}

debug_enabled = False
"""Set by the ``debug`` plugin: CoreDNS's ``log.D``."""


class PluginLogger:
    """``clog.NewWithPlugin``: messages prefixed ``plugin/NAME: ``."""

    def __init__(self, plugin: str | None = None) -> None:
        self.prefix = f"plugin/{plugin}: " if plugin else ""
        self._log = Logger(namespace=f"coredns.plugin.{plugin}" if plugin else "coredns")

    def _emit(self, level: LogLevel, text: str) -> None:
        # The event Logger.emit would make, made directly: emit re-checks the level against every
        # LogLevel constant on each call, a measurable share of a query when `log` is on.
        log = self._log
        log.observer(
            {
                "log_logger": log,
                "log_level": level,
                "log_namespace": log.namespace,
                "log_source": None,
                "log_format": "{coredns_text}",
                "log_time": time.time(),
                "coredns_text": self.prefix + text,
            }
        )

    def debug(self, text: str) -> None:
        if debug_enabled:
            self._emit(LogLevel.debug, text)

    def info(self, text: str) -> None:
        self._emit(LogLevel.info, text)

    def warning(self, text: str) -> None:
        self._emit(LogLevel.warn, text)

    def error(self, text: str) -> None:
        self._emit(LogLevel.error, text)

    def failure(self, text: str, failure: Any = None) -> None:
        # An error, not Logger.failure's default critical: [FATAL] means "exiting" in CoreDNS.
        self._log.failure("{coredns_text}", failure=failure, level=LogLevel.error,
                          coredns_text=self.prefix + text)


@implementer(ILogObserver)
class CoreDNSObserver:
    """Print events as CoreDNS does: ``[LEVEL] text``, one line each, no timestamp.

    Tracebacks are printed only with ``debug`` on (CoreDNS prints none); the one-line error is
    always there.
    """

    def __init__(self, stream: IO[str] | None = None, prefix: str = "") -> None:
        self.stream = stream
        self.prefix = prefix
        self._flush_pending = False
        self._reactor: Any = None

    def _flush(self) -> None:
        self._flush_pending = False
        stream = self.stream if self.stream is not None else sys.stdout
        try:
            stream.flush()
        except (OSError, ValueError):
            pass

    def _schedule_flush(self) -> None:
        # One flush per reactor iteration, not one write(2) per line: a busy server logs a whole
        # batch of queries read in one iteration with one system call, and a line still reaches
        # the output before the reactor waits for more input.
        reactor = self._reactor
        if reactor is None:
            # Never install a reactor from a log call: only use one that is already there.
            reactor = self._reactor = sys.modules.get("twisted.internet.reactor")
        if getattr(reactor, "running", False):
            self._flush_pending = True
            reactor.callLater(0, self._flush)
        else:
            self._flush()

    def __call__(self, event: dict[str, Any]) -> None:
        level = event.get("log_level", LogLevel.info)
        if level is LogLevel.debug and not debug_enabled:
            return
        # PluginLogger's events carry their finished text: skip formatEvent's parse (~3 µs, and the
        # log plugin emits one per query).
        if event.get("log_format") == "{coredns_text}":
            text = event.get("coredns_text", "")
        else:
            text = formatEvent(event)
            if level is LogLevel.info and _twisted_chatter(event, text):
                return  # (never a PluginLogger event: those skip the check)
        if not text:
            return
        failure = event.get("log_failure")
        if failure is not None and debug_enabled:
            text += "\n" + failure.getTraceback()
        stream = self.stream if self.stream is not None else sys.stdout
        try:
            stream.write(f"{self.prefix}{_LEVELS.get(level, '[INFO]')} {text}\n")
        except (OSError, ValueError):
            return
        if not self._flush_pending:
            self._schedule_flush()


_CHATTER = re.compile(
    r"(.* starting on \d+|\((UDP|TCP) Port \d+ Closed\)|(Starting|Stopping) (protocol|factory) .*"
    r"|Main loop terminated\.)"
)


def _twisted_chatter(event: dict[str, Any], text: str) -> bool:
    """Twisted's own per-port lines ("UDPConnection starting on 40213"): CoreDNS prints nothing
    like them, and the forward plugin would print one per upstream socket."""
    return _CHATTER.fullmatch(text) is not None


def line_only(event: dict[str, Any]) -> str:
    """The text of an event without the level, for tests and log relays."""
    return formatEvent(event)
