"""Running one Corefile instance in this process's reactor: the path without multisocket.

Shared by the ``twisted-coredns`` command and by the multisocket worker: logging in CoreDNS's
shape, the pidfile, signals, and a clean exit code.
"""

from __future__ import annotations

import os
import signal
import sys
from typing import Any

from twisted.logger import globalLogBeginner

from ..clog import CoreDNSObserver, PluginLogger
from ..instance import Instance
from ..server.service import CoreDNSService

_log = PluginLogger()


def start_logging(stream: Any = None, prefix: str = "") -> None:
    """Send twisted.logger events to standard output as CoreDNS prints them."""
    globalLogBeginner.beginLoggingTo(
        [CoreDNSObserver(stream if stream is not None else sys.stdout, prefix)],
        discardBuffer=False,
        redirectStandardIO=False,
    )


class PidFile:
    """``-pidfile``: written at start, removed at a clean exit."""

    def __init__(self, path: str) -> None:
        self.path = path

    def write(self) -> None:
        if self.path:
            with open(self.path, "w", encoding="ascii") as f:
                f.write(f"{os.getpid()}\n")

    def remove(self) -> None:
        if self.path:
            try:
                os.unlink(self.path)
            except FileNotFoundError:
                pass


def run_single(instance: Instance, *, quiet: bool = False, pidfile: str = "", reactor: Any = None) -> int:
    """Serve ``instance`` until SIGTERM or SIGINT; return the exit code."""
    if reactor is None:
        from twisted.internet import reactor as default_reactor

        reactor = default_reactor
    service = CoreDNSService(instance, reactor, quiet=quiet)
    exit_code = [0]

    def fail(failure: Any) -> None:
        _log.error(f"Restart failed: {failure.getErrorMessage()}")
        exit_code[0] = 1
        reactor.stop()

    try:
        service.privilegedStartService()
    except OSError as exc:
        sys.stderr.write(f"listen {exc.strerror or exc}\n")
        return 1
    pid = PidFile(pidfile)
    pid.write()
    # SIGHUP is ignored by CoreDNS: "this signal is sometimes sent outside of the user's control".
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    reactor.callWhenRunning(lambda: service.startService().addErrback(fail))  # type: ignore[union-attr]
    reactor.addSystemEventTrigger("before", "shutdown", service.stopService)
    try:
        reactor.run()
    finally:
        pid.remove()
    return exit_code[0]
