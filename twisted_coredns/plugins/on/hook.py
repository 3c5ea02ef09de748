"""One ``on`` command: run as a child process with the server's stdin, stdout and stderr.

A command that ends in ``&`` runs in the background: the server goes on at once. Any other is
waited for before the event completes (startup, or shutdown), as caddy waits for it, but the wait
is a Deferred: the reactor keeps serving.
"""

from __future__ import annotations

import os
import shutil
import uuid
from typing import Any

from twisted.internet import defer
from twisted.internet.error import ProcessDone, ProcessTerminated
from twisted.internet.protocol import ProcessProtocol
from twisted.python.failure import Failure

from ...clog import PluginLogger

log = PluginLogger("on")

EVENTS = {"startup": "instancestartup", "shutdown": "shutdown", "certrenew": "certrenew"}
"""caddy's ``SupportedEvents``: the word in the Corefile and the event it names."""


class _Ended(ProcessProtocol):
    def __init__(self) -> None:
        self.ended: defer.Deferred[None] = defer.Deferred()

    def processEnded(self, reason: Failure) -> None:
        if reason.check(ProcessDone):
            self.ended.callback(None)
        elif reason.check(ProcessTerminated):
            value: Any = reason.value
            if value.exitCode is not None:
                self.ended.errback(RuntimeError(f"exit status {value.exitCode}"))
            else:
                self.ended.errback(RuntimeError(f"signal: {value.signal}"))
        else:
            self.ended.errback(reason)


class Hook:
    """``command args`` for one event; ``background`` when the line ended in ``&``."""

    def __init__(self, event: str, command: str, args: list[str], reactor: Any) -> None:
        self.event = event
        self.id = str(uuid.uuid4())
        self.background = bool(args) and args[-1] == "&"
        self.command = command
        self.args = args[:-1] if self.background else args
        self.reactor = reactor

    def __call__(self) -> Any:
        """Run the command; a Deferred that fires when it ended (at once when in the background).
        A failure is logged, as caddy logs a hook's error, and never stops the server."""
        shown = f'"{self.command} {" ".join(self.args)}" with ID {self.id}'
        kind = "Nonblocking" if self.background else "Blocking"
        log.info(f"{kind} Command {shown}")
        try:
            ended = self._spawn()
        except OSError as exc:
            self._failed(Failure(exc))
            return None
        if self.background:
            ended.addErrback(self._failed)
            return None
        return ended.addErrback(self._failed)

    def _spawn(self) -> defer.Deferred[None]:
        executable = self.command if os.sep in self.command else shutil.which(self.command)
        if executable is None:
            raise FileNotFoundError(f'exec: "{self.command}": executable file not found in $PATH')
        protocol = _Ended()
        self.reactor.spawnProcess(protocol, executable, [self.command, *self.args], env=os.environ,
                                  childFDs={0: 0, 1: 1, 2: 2})
        return protocol.ended

    def _failed(self, failure: Failure) -> None:
        log.error(f"error on 'on-{self.id}' hook: {failure.getErrorMessage()}")
