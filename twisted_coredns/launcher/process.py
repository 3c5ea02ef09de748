"""What every process of the server shares: logging in CoreDNS's shape, and the pidfile."""

from __future__ import annotations

import os
import sys
from typing import Any

from twisted.logger import globalLogBeginner

from ..clog import CoreDNSObserver, PluginLogger

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
