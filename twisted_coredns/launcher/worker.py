"""One multisocket worker process: ``python -m twisted_coredns.launcher.worker``.

The master validated the Corefile and bound the sockets; a worker builds its own plugin chains
from the same Corefile text (read from its standard input), adopts the listening sockets it
inherited, tells the master it is ready, and serves until the master says stop (or goes away).

Which worker answered a query is visible with a CH TXT query for ``worker.multisocket.``: the
reply holds ``worker=K`` and ``pid=P``. It is answered before the plugin chain, only in workers,
and costs the IN-class hot path nothing but one integer comparison.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import sys
from typing import Any

from twisted.internet.defer import Deferred, inlineCallbacks
from twisted.internet.protocol import connectionDone
from twisted.python.failure import Failure

from ..clog import PluginLogger
from ..dns import CLASS_CH, QNAME, records
from ..request import Request
from ..response import reply
from ..server.router import ZoneRouter
from ..server.sockets import SocketPair
from .control import CONTROL_IN, CONTROL_OUT, Flush, NotReady, QuietAMP, Ready, Stop

_log = PluginLogger("multisocket")

WHOAMI_NAME = "worker.multisocket."
GRACE = 5.0
"""Seconds in-flight queries get to finish after a stop (CoreDNS's graceTimeout)."""

_PR_SET_PDEATHSIG = 1


class WorkerRouter(ZoneRouter):
    """The zone router of a worker: it also answers ``worker.multisocket. CH TXT``."""

    def __init__(self, group: Any, index: int) -> None:
        super().__init__(group)
        self._identity = records.txt(QNAME, 0, f"worker={index}", f"pid={os.getpid()}", rclass=CLASS_CH)

    def dispatch(self, request: Request) -> Any:
        if request.qclass == CLASS_CH and request.name == WHOAMI_NAME:
            return reply(request, answer=(self._identity,), aa=True, plugin="multisocket")
        return ZoneRouter.dispatch(self, request)


class WorkerControl(QuietAMP):
    """The worker's end of the control pipe."""

    def __init__(self, worker: Worker) -> None:
        super().__init__()
        self.worker = worker

    @Stop.responder
    def stop(self, grace: float, closing: list[str] | None = None) -> dict[str, Any]:
        self.worker.stop(grace, closing or [])
        return {}

    @NotReady.responder
    def not_ready(self) -> dict[str, Any]:
        return {"names": self.worker.service.instance.not_ready()}

    @Flush.responder
    def flush(self) -> dict[str, Any]:
        self.worker.write_metrics()
        return {}

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        super().connectionLost(reason)
        # The master is gone (killed, even with SIGKILL): no worker outlives it.
        self.worker.stop(GRACE)


class Worker:
    """The service of one worker, and how it ends."""

    def __init__(self, index: int, service: Any, reactor: Any, metrics_dir: str = "") -> None:
        self.index = index
        self.service = service
        self.reactor = reactor
        self.metrics_path = os.path.join(metrics_dir, f"worker-{os.getpid()}.json") if metrics_dir else ""
        self.control: WorkerControl | None = None
        self._draining: Deferred[None] | None = None
        for server in service.servers:
            server.router = WorkerRouter(server.group, index)

    @inlineCallbacks
    def start(self) -> Any:
        yield self.service.startService()
        if self.control is not None:
            yield self.control.callRemote(Ready, index=self.index, pid=os.getpid())

    def stop(self, grace: float = GRACE, closing: list[str] | None = None) -> None:
        """Stop taking queries, let those in flight finish, stop the reactor (exit 0)."""
        if self._draining is None:
            self._draining = self._drain(grace, closing or [])
            self._draining.addBoth(self._stop_reactor)

    def _stop_reactor(self, _: object) -> None:
        from twisted.internet.error import ReactorNotRunning

        try:
            self.reactor.stop()
        except ReactorNotRunning:
            pass  # a SIGTERM got there first

    def drain(self) -> Deferred[None]:
        """For the reactor's shutdown: the same drain, started by SIGTERM."""
        if self._draining is None:
            self._draining = self._drain(GRACE)
        return self._draining

    @inlineCallbacks
    def _drain(self, grace: float, closing: list[str] | None = None) -> Any:
        # The master (and a successor) still hold the sockets, so nothing queued is lost; the
        # closing ones are read until this worker's exit closes them.
        yield self.service.drain(grace, keep_reading=closing or ())
        # The last word on what this worker counted: the master adds it to the ended workers'.
        self.write_metrics()

    def write_metrics(self) -> None:
        if not self.metrics_path:
            return
        from ..metrics import REGISTRY, snapshot

        try:
            snapshot.write(REGISTRY, self.metrics_path)
        except OSError as exc:
            _log.error(f"worker {self.index}: cannot write metrics: {exc}")


def _die_with_master(master_pid: int) -> None:
    """SIGTERM this process when its parent dies (Linux), and exit now if it already has."""
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
    except (OSError, AttributeError):
        pass  # not Linux: the control pipe closing still stops the worker
    if os.getppid() != master_pid:
        sys.exit(0)


def _adopt_sockets(spec: dict[str, list[int | None]]) -> dict[str, list[SocketPair]]:
    sockets: dict[str, list[SocketPair]] = {}
    for address, (udp_fd, tcp_fd, _port) in spec.items():
        udp = socket.socket(fileno=udp_fd) if udp_fd is not None else None
        tcp = socket.socket(fileno=tcp_fd) if tcp_fd is not None else None
        for sock in (udp, tcp):
            if sock is not None:
                sock.setblocking(False)
        sockets[address] = [(udp, tcp)]
    return sockets


def _arguments(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="twisted_coredns.launcher.worker")
    parser.add_argument("--index", type=int, required=True)
    parser.add_argument("--master-pid", type=int, required=True)
    parser.add_argument("--filename", default="Corefile")
    parser.add_argument("--dns-port", type=int, default=53)
    parser.add_argument("--sockets", default="{}", help="JSON: address -> [udp fd|null, tcp fd|null, port]")
    parser.add_argument("--metrics-dir", default="", help="where the master reads this worker's metrics")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = _arguments(sys.argv[1:] if argv is None else argv)
    _die_with_master(args.master_pid)
    from ..server.limits import raise_fd_limit, tune_gc

    raise_fd_limit()
    tune_gc()
    corefile = sys.stdin.buffer.read().decode("utf-8")

    from twisted.internet import reactor as default_reactor
    from twisted.internet import stdio

    from ..corefile import CorefileError
    from ..instance import build
    from ..server.service import CoreDNSService
    from .process import start_logging

    reactor: Any = default_reactor
    start_logging()
    try:
        instance = build(corefile, args.filename, dns_port=args.dns_port, reactor=reactor)
        spec = json.loads(args.sockets)
        sockets = _adopt_sockets(spec)
        ports = {address: port for address, (_u, _t, port) in spec.items()}
        service = CoreDNSService(instance, reactor, quiet=True, sockets=sockets, ports=ports)
    except CorefileError as exc:
        sys.stderr.write(f"{exc}\n")
        return 1
    worker = Worker(args.index, service, reactor, args.metrics_dir)
    worker.control = WorkerControl(worker)
    standard_io: Any = stdio.StandardIO
    standard_io(worker.control, stdin=CONTROL_IN, stdout=CONTROL_OUT, reactor=reactor)
    exit_code = [0]

    def failed(failure: Any) -> None:
        _log.error(f"worker {args.index} failed to start: {failure.getErrorMessage()}")
        exit_code[0] = 1
        reactor.stop()

    def started() -> None:
        # The master decides when workers stop or reload: a terminal's ^C reaches the whole
        # process group, and the master's graceful stop must not race the workers' own.
        for signum in (signal.SIGINT, signal.SIGHUP, signal.SIGUSR1):
            signal.signal(signum, signal.SIG_IGN)
        worker.start().addErrback(failed)

    reactor.callWhenRunning(started)
    reactor.addSystemEventTrigger("before", "shutdown", worker.drain)
    reactor.run()
    return exit_code[0]


if __name__ == "__main__":
    sys.exit(main())
