"""The multisocket master: N worker processes serving one port through SO_REUSEPORT.

CoreDNS's ``multisocket N`` opens N sockets on one address inside one Go process. Python's GIL
makes N sockets in one process no faster than one, so here N sockets mean N processes:

- the master validates the whole Corefile (every error before any worker starts), binds N
  SO_REUSEPORT UDP+TCP socket pairs per listen address, and spawns max(N) workers;
- worker k (``launcher.worker``) adopts the k-th pair of every address whose N is above k
  (addresses with N=1 are served by worker 0), builds its own plugin chains, and says Ready;
- a worker that dies is logged and started again on the same sockets (the kernel keeps what was
  queued in them), at once if it had served for a while, else after a delay that doubles;
- SIGTERM/SIGINT stop every worker gracefully; SIGUSR1 reloads: validate the new Corefile, start
  a new generation of workers on the same sockets (binding only what is new), wait until all are
  ready, then stop the old ones. The socket list of each address survives reloads.

Worker output reaches the master's: each line relayed as written, with `` worker=K`` appended (the
line keeps CoreDNS's shape at its start, where log parsers look).
"""

from __future__ import annotations

import json
import os
import signal
import socket
import sys
from typing import IO, Any

from twisted.application.service import Service
from twisted.internet import error
from twisted.internet.defer import (
    CancelledError,
    Deferred,
    DeferredList,
    FirstError,
    fail,
    gatherResults,
    inlineCallbacks,
    succeed,
)
from twisted.internet.protocol import ProcessProtocol
from twisted.python.failure import Failure

from ..clog import PluginLogger
from ..corefile import CorefileError
from ..instance import Instance, build, read_corefile
from ..server.service import DNSServer, startup_banner
from ..server.sockets import listen_pair
from .control import CONTROL_IN, CONTROL_OUT, FIRST_SOCKET_FD, ChildPipeTransport, QuietAMP, Ready, Stop
from .process import PidFile

_log = PluginLogger("multisocket")
_core_log = PluginLogger()

SocketPair = tuple[socket.socket, socket.socket]

GRACE = 5.0
"""Seconds a stopping worker has to finish its in-flight queries (CoreDNS's graceTimeout)."""
KILL_AFTER = 5.0
"""Seconds after the grace before a worker that did not exit is killed."""
READY_TIMEOUT = 60.0
"""Seconds a new worker has to say Ready."""
THRESHOLD = 1.0
"""A worker that served at least this long is restarted at once (twisted.runner.procmon's rule)."""
MIN_RESTART_DELAY = 1.0
MAX_RESTART_DELAY = 60.0


def uses_workers(instance: Instance) -> bool:
    """Whether any listen address asks for more than one socket."""
    return any(group.num_sockets > 1 for group in instance.groups)


class WorkerStartError(Exception):
    """A worker ended, or never said Ready, before it served."""


class _MasterControl(QuietAMP):
    """The master's end of one worker's control pipe."""

    def __init__(self, worker: WorkerProcess) -> None:
        super().__init__()
        self.worker = worker

    @Ready.responder
    def ready(self, index: int, pid: int) -> dict[str, Any]:
        self.worker.became_ready()
        return {}


class WorkerProcess(ProcessProtocol):
    """One worker as the master sees it: its pipes, its output, its readiness, its end."""

    def __init__(self, master: MasterService, index: int, generation: int, corefile: str) -> None:
        self.master = master
        self.index = index
        self.generation = generation
        self.corefile = corefile
        self.pid: int | None = None
        self.ready_at: float | None = None
        self.ended = False
        self.stopping = False
        self.starting = True
        """Part of a start (first or reload) still waiting for all its workers: if it dies before
        it is ready, that start fails; it is not restarted."""
        self.control = _MasterControl(self)
        self._ready_waiters: list[Deferred[None]] = []
        self._end_waiters: list[Deferred[None]] = []
        self._partial = {1: b"", 2: b""}

    # -- what the master waits for --------------------------------------------------------------

    def when_ready(self) -> Deferred[None]:
        if self.ready_at is not None:
            return succeed(None)
        if self.ended:
            return fail(WorkerStartError(f"worker {self.index} exited"))
        d: Deferred[None] = Deferred()
        self._ready_waiters.append(d)
        return d

    def when_ended(self) -> Deferred[None]:
        if self.ended:
            return succeed(None)
        d: Deferred[None] = Deferred()
        self._end_waiters.append(d)
        return d

    def became_ready(self) -> None:
        self.ready_at = self.master.reactor.seconds()
        waiters, self._ready_waiters = self._ready_waiters, []
        for d in waiters:
            if not d.called:  # a start that timed out cancelled it
                d.callback(None)

    # -- ProcessProtocol ------------------------------------------------------------------------

    def connectionMade(self) -> None:
        transport: Any = self.transport
        self.pid = transport.pid
        transport.writeToChild(0, self.corefile.encode("utf-8"))
        transport.closeChildFD(0)
        self.control.makeConnection(ChildPipeTransport(transport))

    def childDataReceived(self, childFD: int, data: bytes) -> None:
        if childFD == CONTROL_OUT:
            self.control.dataReceived(data)
            return
        if childFD not in self._partial:
            return
        lines = (self._partial[childFD] + data).split(b"\n")
        self._partial[childFD] = lines.pop()
        for line in lines:
            self.master.relay(self.index, line, childFD)

    def childConnectionLost(self, childFD: int) -> None:
        if childFD == CONTROL_OUT:
            self.control.connectionLost(Failure(error.ConnectionDone()))

    def processEnded(self, reason: Failure) -> None:
        for fd, rest in self._partial.items():
            if rest:
                self.master.relay(self.index, rest, fd)
        self._partial = {1: b"", 2: b""}
        self.ended = True
        ready, self._ready_waiters = self._ready_waiters, []
        for d in ready:
            if not d.called:
                d.errback(WorkerStartError(f"worker {self.index} {_describe(reason)} before it was ready"))
        ended, self._end_waiters = self._end_waiters, []
        for d in ended:
            d.callback(None)
        self.master.worker_ended(self, reason)

    # -- stopping -------------------------------------------------------------------------------

    def stop(self, grace: float) -> Deferred[None]:
        """Graceful: Stop over the pipe when it is up, SIGTERM otherwise; SIGKILL if it lingers."""
        done = self.when_ended()
        if self.ended or self.stopping:
            return done
        self.stopping = True
        if self.ready_at is not None and self.control.transport is not None:
            self.control.callRemote(Stop, grace=grace)
        else:
            self.signal(signal.SIGTERM)
        killer = self.master.reactor.callLater(grace + KILL_AFTER, self.signal, signal.SIGKILL)
        done.addBoth(lambda r: killer.cancel() if killer.active() else None)
        return done

    def signal(self, signum: int) -> None:
        transport: Any = self.transport
        if transport is None or self.ended:
            return
        try:
            transport.signalProcess(signum)
        except (error.ProcessExitedAlready, OSError):
            pass


def _describe(reason: Failure) -> str:
    value = reason.value
    if isinstance(value, error.ProcessTerminated) and value.signal is not None:
        try:
            name = signal.Signals(value.signal).name
        except ValueError:
            name = str(value.signal)
        return f"was killed by {name}"
    code = getattr(value, "exitCode", None)
    return f"exited with status {code if code is not None else 0}"


class MasterService(Service):
    """The master of the multisocket workers, as a Twisted service (``twisted-coredns`` runs it
    itself; ``twistd coredns`` gets it from ``makeService``)."""

    name = "coredns-master"

    def __init__(
        self,
        instance: Instance,
        *,
        conf: str | None = None,
        dns_port: int = 53,
        quiet: bool = False,
        reactor: Any = None,
        stdout: IO[str] | None = None,
        stderr: IO[str] | None = None,
        grace: float = GRACE,
    ) -> None:
        if reactor is None:
            from twisted.internet import reactor as default_reactor

            reactor = default_reactor
        self.instance = instance
        self.conf = conf
        self.dns_port = dns_port
        self.quiet = quiet
        self.reactor = reactor
        self.grace = grace
        self.exit_code = 0
        self.sockets: dict[str, list[SocketPair]] = {}
        """Per listen address, the socket pairs the workers share; it survives reloads."""
        self.generation = 0
        self.workers: dict[int, WorkerProcess] = {}
        self.retired: set[WorkerProcess] = set()
        self._delays: dict[int, float] = {}
        self._restarts: dict[int, Any] = {}
        self._reloading = False
        self._previous_usr1: Any = None
        self._stdout = stdout
        self._stderr = stderr
        self.started: Deferred[None] | None = None
        self.serving = False
        """Every worker of the first start said Ready (a reload may begin)."""

    # -- sockets --------------------------------------------------------------------------------

    def _bind(self, instance: Instance) -> list[tuple[str, SocketPair]]:
        """Bind what ``instance`` needs and is not bound yet; return what was bound."""
        bound: list[tuple[str, SocketPair]] = []
        try:
            for group in instance.groups:
                pairs = self.sockets.setdefault(group.address, [])
                while len(pairs) < group.num_sockets:
                    # With port 0 the first pair picks the port; the others join it.
                    port = int(pairs[0][0].getsockname()[1]) if pairs else group.port
                    pair = listen_pair(group.host, port)
                    pairs.append(pair)
                    bound.append((group.address, pair))
        except BaseException:
            self._unbind(bound)
            raise
        return bound

    def _unbind(self, pairs: list[tuple[str, SocketPair]]) -> None:
        for address, pair in pairs:
            if pair in self.sockets.get(address, []):
                self.sockets[address].remove(pair)
                if not self.sockets[address]:
                    del self.sockets[address]
            for sock in pair:
                sock.close()

    def _close_unused(self) -> None:
        """Close the sockets the current Corefile no longer serves (an address gone, or N lower):
        a socket nobody reads would swallow the queries the kernel hashes to it."""
        wanted = {g.address: g.num_sockets for g in self.instance.groups}
        for address in list(self.sockets):
            keep = wanted.get(address, 0)
            pairs = self.sockets[address]
            for pair in pairs[keep:]:
                for sock in pair:
                    sock.close()
            if keep:
                self.sockets[address] = pairs[:keep]
            else:
                del self.sockets[address]

    def ports(self) -> dict[str, int]:
        """Each listen address and the port it is bound to."""
        return {a: int(pairs[0][0].getsockname()[1]) for a, pairs in self.sockets.items()}

    def socket_counts(self) -> dict[str, int]:
        return {a: len(pairs) for a, pairs in self.sockets.items()}

    # -- workers --------------------------------------------------------------------------------

    @staticmethod
    def worker_count(instance: Instance) -> int:
        return max((g.num_sockets for g in instance.groups), default=1)

    def _assignment(self, instance: Instance, index: int) -> dict[str, SocketPair]:
        return {
            g.address: self.sockets[g.address][index] for g in instance.groups if index < g.num_sockets
        }

    def _spawn(self, instance: Instance, index: int, generation: int) -> WorkerProcess:
        child_fds: dict[int, int | str] = {0: "w", 1: "r", 2: "r", CONTROL_IN: "w", CONTROL_OUT: "r"}
        spec: dict[str, list[int]] = {}
        fd = FIRST_SOCKET_FD
        for address, (udp, tcp) in self._assignment(instance, index).items():
            child_fds[fd], child_fds[fd + 1] = udp.fileno(), tcp.fileno()
            spec[address] = [fd, fd + 1]
            fd += 2
        args = [
            sys.executable, "-m", "twisted_coredns.launcher.worker",
            "--index", str(index),
            "--master-pid", str(os.getpid()),
            "--filename", instance.filename,
            "--dns-port", str(self.dns_port),
            "--sockets", json.dumps(spec),
        ]
        proto = WorkerProcess(self, index, generation, instance.corefile)
        self.reactor.spawnProcess(proto, sys.executable, args, env=dict(os.environ), childFDs=child_fds)
        return proto

    def _spawn_generation(self, instance: Instance, generation: int) -> dict[int, WorkerProcess]:
        return {k: self._spawn(instance, k, generation) for k in range(self.worker_count(instance))}

    @inlineCallbacks
    def _await_ready(self, workers: dict[int, WorkerProcess]) -> Any:
        waiting = gatherResults([w.when_ready() for w in workers.values()], consumeErrors=True)
        timer = self.reactor.callLater(READY_TIMEOUT, waiting.cancel)
        try:
            yield waiting
        except FirstError as exc:
            if exc.subFailure.check(CancelledError):
                raise WorkerStartError(f"workers not ready within {READY_TIMEOUT:g}s") from None
            raise WorkerStartError(exc.subFailure.getErrorMessage()) from None
        except CancelledError:
            raise WorkerStartError(f"workers not ready within {READY_TIMEOUT:g}s") from None
        finally:
            if timer.active():
                timer.cancel()

    def worker_ended(self, worker: WorkerProcess, reason: Failure) -> None:
        if worker in self.retired:
            self.retired.discard(worker)
            return
        if not self.running or self.workers.get(worker.index) is not worker:
            return
        if worker.starting and worker.ready_at is None:
            return  # its start fails, and says why
        self._schedule_restart(worker, reason)

    def _schedule_restart(self, worker: WorkerProcess, reason: Failure | None) -> None:
        served = self.reactor.seconds() - worker.ready_at if worker.ready_at is not None else 0.0
        if served >= THRESHOLD:
            delay = 0.0
            self._delays[worker.index] = MIN_RESTART_DELAY
        else:
            delay = self._delays.get(worker.index, MIN_RESTART_DELAY)
            self._delays[worker.index] = min(delay * 2, MAX_RESTART_DELAY)
        how = _describe(reason) if reason is not None else "exited"
        _log.error(f"worker {worker.index} (pid {worker.pid}) {how}; restarting it in {delay:g}s")
        self._restarts[worker.index] = self.reactor.callLater(
            delay, self._respawn, worker.index, worker.generation
        )

    def _respawn(self, index: int, generation: int) -> None:
        self._restarts.pop(index, None)
        if not self.running or generation != self.generation:
            return
        worker = self._spawn(self.instance, index, generation)
        worker.starting = False
        self.workers[index] = worker
        worker.when_ready().addCallbacks(
            lambda _: _log.info(f"worker {index} (pid {worker.pid}) restarted"), lambda f: None
        )

    def _started(self, workers: dict[int, WorkerProcess]) -> None:
        """A start succeeded: from now on its workers are restarted when they die."""
        for worker in workers.values():
            worker.starting = False
            if worker.ended and worker not in self.retired:
                self._schedule_restart(worker, None)

    def _cancel_restarts(self) -> None:
        for call in self._restarts.values():
            if call.active():
                call.cancel()
        self._restarts.clear()

    def _retire(self, workers: list[WorkerProcess]) -> Deferred[Any]:
        for worker in workers:
            self.retired.add(worker)
        return DeferredList([w.stop(self.grace) for w in workers])

    # -- output ---------------------------------------------------------------------------------

    def relay(self, index: int, line: bytes, fd: int) -> None:
        """A worker's output line, tagged with the worker."""
        text = line.decode("utf-8", "replace").rstrip("\r")
        if not text:
            return
        stream = (self._stderr or sys.stderr) if fd == 2 else (self._stdout or sys.stdout)
        try:
            stream.write(f"{text} worker={index}\n")
            stream.flush()
        except (OSError, ValueError):
            pass

    def _print(self, text: str) -> None:
        stream = self._stdout or sys.stdout
        try:
            stream.write(text + "\n")
            stream.flush()
        except (OSError, ValueError):
            pass

    # -- the service ----------------------------------------------------------------------------

    def privilegedStartService(self) -> None:
        """Bind every socket now: before twistd drops privileges, so port 53 works."""
        self._bind(self.instance)
        super().privilegedStartService()

    def startService(self) -> None:
        super().startService()
        # At once: SIGUSR1's default action would kill the master during the start.
        self._previous_usr1 = signal.signal(signal.SIGUSR1, self._sigusr1)
        self.started = self._start()

    @inlineCallbacks
    def _start(self) -> Any:
        try:
            if not self.sockets:
                self._bind(self.instance)
            self.generation = 1
            workers = self._spawn_generation(self.instance, self.generation)
            self.workers = workers
            yield self._await_ready(workers)
        except (WorkerStartError, OSError, CorefileError) as exc:
            _core_log.error(f"Start failed: {exc}")
            self.exit_code = 1
            if self.running:
                self.reactor.stop()
            return
        self._started(workers)
        self.serving = True
        if not self.quiet:
            self._print(self._banner(self.instance))

    def _banner(self, instance: Instance) -> str:
        servers = []
        for group in instance.groups:
            server = DNSServer(group, self.reactor)
            server.sockets = self.sockets[group.address][:1]
            servers.append(server)
        return startup_banner(instance, servers)

    @inlineCallbacks
    def stopService(self) -> Any:
        super().stopService()
        self.serving = False
        if self._previous_usr1 is not None:
            signal.signal(signal.SIGUSR1, self._previous_usr1)
            self._previous_usr1 = None
        self._cancel_restarts()
        workers = list(self.workers.values())
        self.workers = {}
        yield self._retire(workers + list(self.retired))
        self.close_sockets()

    def close_sockets(self) -> None:
        for pairs in self.sockets.values():
            for pair in pairs:
                for sock in pair:
                    sock.close()
        self.sockets.clear()

    # -- reload ---------------------------------------------------------------------------------

    def _sigusr1(self, signum: int, frame: Any) -> None:
        self.reactor.callFromThread(self.reload, "SIGUSR1")

    @inlineCallbacks
    def reload(self, trigger: str = "SIGUSR1") -> Any:
        """Re-read the Corefile and roll every worker over to it; on any error keep serving."""
        if not self.serving:
            _core_log.error(f"{trigger}: not reloading: the servers are not started yet")
            return False
        if self._reloading:
            return False
        self._reloading = True
        try:
            return (yield self._reload(trigger))
        finally:
            self._reloading = False

    @inlineCallbacks
    def _reload(self, trigger: str) -> Any:
        _core_log.info(f"{trigger}: Reloading")
        _core_log.info("Reloading")
        bound: list[tuple[str, SocketPair]] = []
        try:
            if self.conf == "stdin":
                text, filename = self.instance.corefile, self.instance.filename
            else:
                text, filename = read_corefile(self.conf)
            instance = build(text, filename, dns_port=self.dns_port, reactor=self.reactor)
            bound = self._bind(instance)
        except (CorefileError, OSError) as exc:
            self._reload_failed(trigger, exc)
            return False
        workers = self._spawn_generation(instance, self.generation + 1)
        try:
            yield self._await_ready(workers)
        except WorkerStartError as exc:
            self.retired.update(workers.values())
            yield DeferredList([w.stop(0) for w in workers.values()])
            self._unbind(bound)
            self._reload_failed(trigger, exc)
            return False
        old = list(self.workers.values())
        self._cancel_restarts()
        self.workers = workers
        self.instance = instance
        self.generation += 1
        self._started(workers)
        yield self._retire(old)
        self._close_unused()
        _core_log.info("Reloading complete")
        return True

    def _reload_failed(self, trigger: str, exc: BaseException) -> None:
        _core_log.error(f"Restart failed: {exc}")
        _core_log.error(f"{trigger}: {exc}")


def run_master(
    instance: Instance,
    *,
    conf: str | None = None,
    dns_port: int = 53,
    quiet: bool = False,
    pidfile: str = "",
    reactor: Any = None,
) -> int:
    """``twisted-coredns`` with multisocket: run the master until SIGTERM or SIGINT."""
    if reactor is None:
        from twisted.internet import reactor as default_reactor

        reactor = default_reactor
    master = MasterService(instance, conf=conf, dns_port=dns_port, quiet=quiet, reactor=reactor)
    try:
        master.privilegedStartService()
    except OSError as exc:
        sys.stderr.write(f"{exc}\n")
        return 1
    except CorefileError as exc:
        sys.stderr.write(f"{exc}\n")
        return 1
    pid = PidFile(pidfile)
    pid.write()
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    reactor.callWhenRunning(master.startService)
    reactor.addSystemEventTrigger("before", "shutdown", master.stopService)
    try:
        reactor.run()
    finally:
        pid.remove()
    return master.exit_code


__all__ = ["MasterService", "WorkerProcess", "run_master", "uses_workers"]
