"""Running one Corefile instance in this process's reactor: the path without multisocket.

Shared by the ``twisted-coredns`` command and by the multisocket worker: logging in CoreDNS's
shape, the pidfile, signals, and a clean exit code.
"""

from __future__ import annotations

import os
import signal
import sys
from collections.abc import Callable
from typing import Any

from twisted.logger import globalLogBeginner

from ..clog import CoreDNSObserver, PluginLogger
from ..corefile import CorefileError
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
        """Write our pid; a path that cannot be written is logged and the server goes on, as
        CoreDNS does."""
        if not self.path:
            return
        try:
            with open(self.path, "w", encoding="ascii") as f:
                f.write(f"{os.getpid()}\n")
        except OSError as exc:
            _log.error(f"Could not write pidfile: {exc}")

    def remove(self) -> None:
        if self.path:
            try:
                os.unlink(self.path)
            except FileNotFoundError:
                pass


def run_single(
    instance: Instance,
    *,
    quiet: bool = False,
    pidfile: str = "",
    reactor: Any = None,
    rebuild: Callable[[], Instance] | None = None,
) -> int:
    """Serve ``instance`` until SIGTERM or SIGINT; return the exit code.

    SIGUSR1 reloads, as in CoreDNS: ``rebuild()`` reads and sets up the Corefile again; on error
    the running servers keep serving. The new servers bind their own SO_REUSEPORT sockets next to
    the old ones and start before the old ones stop, so no query finds the port closed.
    """
    if reactor is None:
        from twisted.internet import reactor as default_reactor

        reactor = default_reactor
    current = [CoreDNSService(instance, reactor, quiet=quiet)]
    exit_code = [0]

    def fail(failure: Any) -> None:
        _log.error(f"Restart failed: {failure.getErrorMessage()}")
        exit_code[0] = 1
        reactor.stop()

    try:
        current[0].privilegedStartService()
    except OSError as exc:
        sys.stderr.write(f"{exc}\n")
        return 1
    pid = PidFile(pidfile)
    pid.write()

    def reload() -> None:
        _log.info("SIGUSR1: Reloading")
        if rebuild is None:
            return
        try:
            service = CoreDNSService(rebuild(), reactor, quiet=quiet)
            service.privilegedStartService()
        except (CorefileError, OSError) as exc:
            _log.error(f"Restart failed: {exc}")
            return

        def swap(_: object) -> Any:
            old, current[0] = current[0], service
            _log.info("Reloading complete")
            return old.stopService()

        service.startService().addCallbacks(
            swap, lambda f: _log.error(f"Restart failed: {f.getErrorMessage()}")
        )

    def stop(message: str) -> None:
        _log.info(message)
        reactor.stop()

    # CoreDNS's signals: TERM and INT stop, USR1 reloads, HUP is ignored ("this signal is sometimes
    # sent outside of the user's control"). Python runs handlers between bytecodes, so each one
    # only hands its work to the reactor thread.
    handlers = {
        signal.SIGTERM: lambda: stop("SIGTERM: Shutting down servers then terminating"),
        signal.SIGINT: lambda: stop("SIGINT: Shutting down"),
        signal.SIGUSR1: reload,
    }
    def _on_signal(action: Callable[[], object]) -> Callable[[int, object], None]:
        return lambda _n, _f: reactor.callFromThread(action)

    for signum, action in handlers.items():
        signal.signal(signum, _on_signal(action))
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    reactor.callWhenRunning(lambda: current[0].startService().addErrback(fail))
    reactor.addSystemEventTrigger("before", "shutdown", lambda: current[0].stopService())
    try:
        reactor.run(installSignalHandlers=False)
    finally:
        pid.remove()
    return exit_code[0]
