"""What the multisocket master and its workers say to each other, over a pair of pipes, in AMP.

The worker's descriptors 3 (master to worker) and 4 (worker to master) carry the conversation;
0 brings it the Corefile text, 1 and 2 take its log lines. The worker says ``Ready`` once it has
adopted its sockets and serves; the master says ``Stop`` to end it gracefully. Either side seeing
the pipe close takes it as the other's death: a worker whose master is gone exits.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from twisted.internet.interfaces import ITransport
from twisted.protocols import amp
from zope.interface import implementer

CONTROL_IN = 3
"""The worker's descriptor the master writes to."""
CONTROL_OUT = 4
"""The worker's descriptor the master reads from."""
FIRST_SOCKET_FD = 5
"""Where the worker's inherited listening sockets start: UDP, TCP, UDP, TCP..."""


class Ready(amp.Command):
    """Worker to master: my sockets are adopted and served."""

    arguments = [(b"index", amp.Integer()), (b"pid", amp.Integer())]
    response = []


class Stop(amp.Command):
    """Master to worker: stop reading new queries, finish those in flight (at most ``grace``
    seconds), exit 0. The sockets of the ``closing`` addresses are no longer served by anyone:
    the worker holds their last copy, so it reads them to the end and its exit closes them."""

    arguments = [(b"grace", amp.Float()), (b"closing", amp.ListOf(amp.Unicode(), optional=True))]
    response = []
    requiresAnswer = False


class NotReady(amp.Command):
    """Master to worker: the names of your plugins that are not ready (for ``/ready``)."""

    arguments = []
    response = [(b"names", amp.ListOf(amp.Unicode()))]


class Flush(amp.Command):
    """Master to worker: write your metrics snapshot now (a scrape is waiting)."""

    arguments = []
    response = []


class QuietAMP(amp.AMP):
    """AMP without its "connection established/lost" log lines, which would reach the user's
    output at every worker start and stop."""

    def makeConnection(self, transport: Any) -> None:
        amp.BinaryBoxProtocol.makeConnection(self, transport)

    def connectionLost(self, reason: Any = None) -> None:
        amp.BinaryBoxProtocol.connectionLost(self, reason)
        self.transport = None


@implementer(ITransport)
class ChildPipeTransport:
    """The master's side of the control pipe, as the transport an AMP protocol writes to."""

    def __init__(self, process: Any) -> None:
        self.process = process
        self.disconnecting = False

    def write(self, data: bytes) -> None:
        if not self.disconnecting:
            self.process.writeToChild(CONTROL_IN, data)

    def writeSequence(self, data: Iterable[bytes]) -> None:
        self.write(b"".join(data))

    def loseConnection(self) -> None:
        if not self.disconnecting:
            self.disconnecting = True
            self.process.closeChildFD(CONTROL_IN)

    def getPeer(self) -> Any:
        return ("process", getattr(self.process, "pid", None))

    def getHost(self) -> Any:
        return ("process", None)


__all__ = [
    "CONTROL_IN",
    "CONTROL_OUT",
    "FIRST_SOCKET_FD",
    "ChildPipeTransport",
    "Flush",
    "NotReady",
    "QuietAMP",
    "Ready",
    "Stop",
]
