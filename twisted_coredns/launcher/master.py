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
import shutil
import signal
import sys
import tempfile
from collections.abc import Callable
from typing import IO, Any

from prometheus_client import CollectorRegistry, generate_latest
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
from twisted.internet.task import LoopingCall
from twisted.protocols import amp
from twisted.python.failure import Failure

from .. import metrics
from ..clog import PluginLogger
from ..corefile import CorefileError
from ..instance import Instance, build, read_corefile
from ..metrics import PROCESS_REGISTRY, REGISTRY, snapshot
from ..metrics.snapshot import WorkerMetrics
from ..server.http import HTTPListeners
from ..server.service import CoreDNSService, DNSServer, startup_banner
from ..server.sockets import SocketPair, close_pair, listen_pair, pair_port
from ..server.transports import transport
from .control import (
    CONTROL_IN,
    CONTROL_OUT,
    FIRST_SOCKET_FD,
    ChildPipeTransport,
    Flush,
    NotReady,
    QuietAMP,
    Ready,
    Stop,
)
from .forkserver import ForkServer, spawn_worker
from .process import PidFile

_log = PluginLogger("multisocket")
_core_log = PluginLogger()

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

    def stop(self, grace: float, closing: list[str] | None = None) -> Deferred[None]:
        """Graceful: Stop over the pipe when it is up, SIGTERM otherwise; SIGKILL if it lingers.
        ``closing``: the addresses whose socket this worker holds the last copy of."""
        done = self.when_ended()
        if self.ended or self.stopping:
            return done
        self.stopping = True
        if self.ready_at is not None and self.control.transport is not None:
            self.control.callRemote(Stop, grace=grace, closing=closing or [])
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
    """The front process, as a Twisted service (``twisted-coredns`` runs it itself, ``twistd
    coredns`` gets it from ``makeService``).

    It owns the listening sockets (a list per address that survives reloads) and the HTTP
    listeners, and serves a Corefile one of two ways: in this process (no address asks for more
    than one socket), or through N worker processes. A reload may move from one way to the other:
    the new configuration starts on the same sockets, and the old one is retired only once the new
    one serves, so the kernel never finds a port closed and no queued query is dropped.
    """

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
        default_host: str = "",
        source: Callable[[], tuple[str, str]] | None = None,
        rebuild: Callable[[str, str], Instance] | None = None,
        handle_sigusr1: bool = True,
        forkserver: ForkServer | None = None,
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
        self.default_host = default_host
        self._source = source
        self._rebuild = rebuild
        self.last_reload_error = ""
        self._handle_sigusr1 = handle_sigusr1
        self._previous_usr1: Any = None
        self.exit_code = 0
        self.sockets: dict[str, list[SocketPair]] = {}
        """Per listen address, the socket pairs the workers share; it survives reloads."""
        self.generation = 0
        self.workers: dict[int, WorkerProcess] = {}
        self.local: CoreDNSService | None = None
        """The servers of the current configuration when it is served in this process."""
        self.retired: set[WorkerProcess] = set()
        self.http = HTTPListeners(reactor)
        self.forkserver = forkserver if forkserver is not None else ForkServer(reactor)
        self.forkserver.reactor = reactor
        """Forks the workers from one prepared process, so that they share its memory."""
        self.starting: Instance | None = None
        """The configuration whose process hooks are running (owner of the routes they add)."""
        self.state = "starting"
        self.worker_metrics: WorkerMetrics | None = None
        self._delays: dict[int, float] = {}
        self._restarts: dict[int, Any] = {}
        self._reloading = False
        self._flusher: Any = None
        self._stdout = stdout
        self._stderr = stderr
        self.started: Deferred[None] | None = None
        self.serving = False
        """The first start is complete (a reload may begin)."""

    # -- sockets --------------------------------------------------------------------------------

    def _bind(self, instance: Instance) -> list[tuple[str, SocketPair]]:
        """Bind what ``instance`` needs and is not bound yet; return what was bound."""
        bound: list[tuple[str, SocketPair]] = []
        try:
            for group in instance.groups:
                pairs = self.sockets.setdefault(group.address, [])
                while len(pairs) < group.num_sockets:
                    # With port 0 the first pair picks the port. The others join it, bound by the
                    # worker that reads them when it starts (sockets.bind_late).
                    port = pair_port(pairs[0]) if pairs else group.port
                    kinds = transport(group.transport)
                    pair = listen_pair(group.host, port, bind=not pairs, udp=kinds.uses_udp,
                                       tcp=kinds.uses_tcp)
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
            close_pair(pair)

    def _close_unused(self) -> dict[int, list[str]]:
        """Close our copies of the sockets the current Corefile no longer serves (an address
        gone, or N lower), and say which: socket index -> addresses. The retiring servers hold
        the last copies, read them to the end, and close them as they stop."""
        wanted = {g.address: g.num_sockets for g in self.instance.groups}
        closing: dict[int, list[str]] = {}
        for address in list(self.sockets):
            keep = wanted.get(address, 0)
            pairs = self.sockets[address]
            for index, pair in enumerate(pairs[keep:], start=keep):
                closing.setdefault(index, []).append(address)
                close_pair(pair)
            if keep:
                self.sockets[address] = pairs[:keep]
            else:
                del self.sockets[address]
        return closing

    def ports(self) -> dict[str, int]:
        """Each listen address and the port it is bound to."""
        return {a: pair_port(pairs[0]) for a, pairs in self.sockets.items()}

    @property
    def servers(self) -> list[DNSServer]:
        """The DNS servers of this process (none while workers serve)."""
        return self.local.servers if self.local is not None else []

    def socket_counts(self) -> dict[str, int]:
        return {a: len(pairs) for a, pairs in self.sockets.items()}

    # -- serving in this process ----------------------------------------------------------------

    @inlineCallbacks
    def _serve_here(self, instance: Instance) -> Any:
        """Start ``instance``'s servers in this reactor, on copies of the first socket pair of each
        address (the reactor reads the same kernel sockets the master keeps)."""
        sockets = {g.address: [_dup(self.sockets[g.address][0])] for g in instance.groups}
        service = CoreDNSService(instance, self.reactor, quiet=True, sockets=sockets)
        yield service.startService()
        return service

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
        spec: dict[str, list[int | None]] = {}
        fd = FIRST_SOCKET_FD
        ports = self.ports()
        for address, pair in self._assignment(instance, index).items():
            # A kind the transport does not use is no descriptor in the worker: null in the spec.
            fds: list[int | None] = []
            for sock in pair:
                if sock is None:
                    fds.append(None)
                    continue
                child_fds[fd] = sock.fileno()
                fds.append(fd)
                fd += 1
            spec[address] = [*fds, ports[address]]
        args = [
            sys.executable, "-m", "twisted_coredns.launcher.worker",
            "--index", str(index),
            "--master-pid", str(os.getpid()),
            "--filename", instance.filename,
            "--dns-port", str(self.dns_port),
            "--sockets", json.dumps(spec),
        ]
        if self.worker_metrics is not None:
            args += ["--metrics-dir", str(self.worker_metrics.folder)]
        proto = WorkerProcess(self, index, generation, instance.corefile)
        spawn_worker(self.reactor, self.forkserver, index, proto, args, dict(os.environ), child_fds)
        return proto

    def _spawn_generation(self, instance: Instance, generation: int) -> dict[int, WorkerProcess]:
        if self.worker_metrics is None:
            self.worker_metrics = WorkerMetrics(tempfile.mkdtemp(prefix="coredns-metrics-"))
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
        if self.worker_metrics is not None:
            self.worker_metrics.worker_ended(worker.pid)
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
            self._delays[worker.index] = 0.0
        else:
            # The first quick death is restarted at once too (a kill just after a start is no
            # crash loop); from the second on, 1 s, doubling up to 60 s.
            delay = self._delays.get(worker.index, 0.0)
            self._delays[worker.index] = min(max(delay * 2, MIN_RESTART_DELAY), MAX_RESTART_DELAY)
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

    def _retire(
        self, workers: list[WorkerProcess], closing: dict[int, list[str]] | None = None
    ) -> Deferred[Any]:
        for worker in workers:
            self.retired.add(worker)
        closing = closing or {}
        return DeferredList([w.stop(self.grace, closing.get(w.index)) for w in workers])

    # -- one configuration served, either way ---------------------------------------------------

    @inlineCallbacks
    def _begin(self, instance: Instance, generation: int) -> Any:
        """Serve ``instance`` beside whatever serves now; return (workers, local service)."""
        if uses_workers(instance):
            yield self.forkserver.when_ready()
            workers = self._spawn_generation(instance, generation)
            try:
                yield self._await_ready(workers)
            except WorkerStartError:
                self.retired.update(workers.values())
                yield DeferredList([w.stop(0) for w in workers.values()])
                raise
            return workers, None
        return {}, (yield self._serve_here(instance))

    @inlineCallbacks
    def _end(
        self, workers: dict[int, WorkerProcess], local: CoreDNSService | None,
        closing: dict[int, list[str]] | None = None,
    ) -> Any:
        """Retire a configuration's servers: in-flight queries finish (at most the grace).
        ``closing`` maps a socket index to the addresses whose socket of that index is going
        away (the retiring servers hold its last copy)."""
        closing = closing or {}
        ds = [self._retire(list(workers.values()), closing)]
        if local is not None:
            ds.append(local.drain(self.grace, keep_reading=closing.get(0, [])))
        yield DeferredList(ds)

    # -- what the process-wide plugins ask (IFront) ---------------------------------------------

    def add_route(self, address: str, path: str, resource: Any, exclusive: bool = False) -> int:
        return self.http.add_route(address, path, resource, owner=self.starting, exclusive=exclusive)

    @inlineCallbacks
    def _process_start(self, instance: Instance) -> Any:
        self.starting = instance
        try:
            yield instance.process_start(self)
        finally:
            self.starting = None

    def remove_route(self, address: str, path: str, resource: Any) -> None:
        self.http.remove_route(address, path, resource)

    @inlineCallbacks
    def not_ready(self) -> Any:
        if self.local is not None:
            return self.local.instance.not_ready()
        names: set[str] = set()
        asks = []
        for worker in self.workers.values():
            if worker.ready_at is None or worker.ended or worker.control.transport is None:
                names.add("multisocket")
            else:
                asks.append(self._ask(worker, NotReady))
        for result in (yield DeferredList(asks)):
            ok, value = result
            if ok and value is not None:
                names.update(value["names"])
            else:
                names.add("multisocket")
        return sorted(names)

    def _ask(self, worker: WorkerProcess, command: type[amp.Command], timeout: float = 1.0) -> Deferred[Any]:
        d = worker.control.callRemote(command)
        timer = self.reactor.callLater(timeout, d.cancel)
        d.addBoth(lambda r: (timer.cancel() if timer.active() else None, r)[1])
        return d.addErrback(lambda f: None)

    @inlineCallbacks
    def metrics(self) -> Any:
        """The exposition text of every process: this one's, and the workers' summed."""
        if self.worker_metrics is None:
            return exposition(PROCESS_REGISTRY, REGISTRY)
        flushes = [
            self._ask(w, Flush) for w in self.workers.values() if w.ready_at is not None and not w.ended
        ]
        yield DeferredList(flushes)
        # After a reload back into this process, its own counts join what the workers counted.
        extra = [snapshot.take(REGISTRY)] if self.local is not None else []
        summed = CollectorRegistry(auto_describe=False)
        summed.register(self.worker_metrics.summed(*extra))
        return exposition(PROCESS_REGISTRY, summed)

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
        if self._handle_sigusr1:
            # At once: SIGUSR1's default action would kill the process during the start. Under
            # twistd this replaces its log rotation on USR1: CoreDNS's meaning wins (design.md).
            self._previous_usr1 = signal.signal(signal.SIGUSR1, self._sigusr1)
        self.started = self._start()

    def _sigusr1(self, signum: int, frame: Any) -> None:
        self.reactor.callFromThread(self.reload, "SIGUSR1")

    def _start(self) -> Deferred[Any]:
        return self.start_serving().addErrback(self._start_failed)

    def _start_failed(self, failure: Failure) -> None:
        value = failure.value
        if isinstance(value, FirstError):
            value = value.subFailure.value
        if not isinstance(value, (WorkerStartError, OSError, CorefileError)):
            failure.raiseException()
        _core_log.error(f"Start failed: {value}")
        self.exit_code = 1
        if self.running:
            self.reactor.stop()

    def start(self) -> Deferred[Any]:
        """Start as a service, and fail (rather than stop the reactor) when the start fails: for
        servers embedded in another program, and tests."""
        Service.startService(self)
        return self.start_serving()

    @inlineCallbacks
    def start_serving(self) -> Any:
        if not self.sockets:
            self._bind(self.instance)
        self.generation = 1
        if uses_workers(self.instance):
            yield self.forkserver.when_ready()
            self.workers = self._spawn_generation(self.instance, self.generation)
            yield self._await_ready(self.workers)
        else:
            self.local = yield self._serve_here(self.instance)
        yield self._process_start(self.instance)
        self._started(self.workers)
        self.serving = True
        self.state = "serving"
        self._watch_workers()
        if not self.quiet:
            self._print(self._banner(self.instance))

    def _watch_workers(self) -> None:
        """Have the workers write their metrics every second, so a killed one loses little."""
        if self._flusher is None and self.worker_metrics is not None:
            self._flusher = LoopingCall(self._flush_all)
            self._flusher.clock = self.reactor
            self._flusher.start(1.0, now=False)

    def _flush_all(self) -> None:
        for worker in self.workers.values():
            if worker.ready_at is not None and not worker.ended:
                self._ask(worker, Flush)

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
        if self.state == "serving":
            # CoreDNS's OnFinalShutdown: health's lameduck keeps the DNS listeners open here, while
            # /ready already says "Shutting down".
            self.state = "lameduck"
            try:
                yield self.instance.final_shutdown()
            except Exception as exc:
                _core_log.error(f"Shutdown: {exc}")
        self.state = "stopping"
        if self._flusher is not None and self._flusher.running:
            self._flusher.stop()
        self._cancel_restarts()
        workers = list(self.workers.values())
        self.workers = {}
        local, self.local = self.local, None
        yield DeferredList([self._retire(workers + list(self.retired))]
                           + ([local.drain(self.grace)] if local is not None else []))
        try:
            yield self.instance.process_stop()
        except Exception as exc:
            _core_log.error(f"Shutdown: {exc}")
        yield self.http.close()
        self.forkserver.stop()
        self.close_sockets()
        if self.worker_metrics is not None:
            shutil.rmtree(self.worker_metrics.folder, ignore_errors=True)

    def close_sockets(self) -> None:
        for pairs in self.sockets.values():
            for pair in pairs:
                close_pair(pair)
        self.sockets.clear()

    # -- reload ---------------------------------------------------------------------------------

    @inlineCallbacks
    def reload(self, trigger: str = "SIGUSR1") -> Any:
        """Re-read the Corefile and switch to it; on any error keep serving. True when it took,
        False when it failed, None when nothing was tried (not serving yet, or another reload
        under way): the caller may try again later."""
        if not self.serving:
            _core_log.error(f"{trigger}: not reloading: the servers are not started yet")
            return None
        if self._reloading:
            return None
        self._reloading = True
        try:
            return (yield self._reload(trigger))
        finally:
            self._reloading = False

    def corefile_source(self) -> tuple[str, str]:
        """The Corefile as the loader reads it now: ``(text, filename)``. Raises ``OSError``."""
        if self._source is not None:
            return self._source()
        if self.conf == "stdin":
            return self.instance.corefile, self.instance.filename
        return read_corefile(self.conf)

    def _read_and_build(self) -> Instance:
        text, filename = self.corefile_source()
        if self._rebuild is not None:
            return self._rebuild(text, filename)
        return build(text, filename, dns_port=self.dns_port, reactor=self.reactor,
                     default_host=self.default_host)

    @inlineCallbacks
    def _reload(self, trigger: str) -> Any:
        if trigger == "SIGUSR1":
            _core_log.info(f"{trigger}: Reloading")
        _core_log.info("Reloading")
        bound: list[tuple[str, SocketPair]] = []
        try:
            instance = self._read_and_build()
            bound = self._bind(instance)
        except (CorefileError, OSError) as exc:
            self._reload_failed(trigger, exc)
            return False
        try:
            workers, local = yield self._begin(instance, self.generation + 1)
        except (WorkerStartError, OSError, CorefileError) as exc:
            self._unbind(bound)
            self._reload_failed(trigger, exc)
            return False
        old_instance, old_workers, old_local = self.instance, dict(self.workers), self.local
        routes = self.http.routes()
        try:
            yield self._process_start(instance)
        except Exception as exc:
            # The new configuration's endpoints could not start (an address in use): its hooks are
            # undone and the old configuration's routes put back as they were, still serving.
            try:
                yield instance.process_stop()
            except Exception as stop_error:
                _core_log.error(f"Restart failed: {stop_error}")
            self.http.restore(routes)
            yield self._end(workers, local)
            self._unbind(bound)
            self._reload_failed(trigger, _cause(exc))
            return False
        self._cancel_restarts()
        self.workers = workers
        self.local = local
        self.instance = instance
        self.generation += 1
        self._started(workers)
        self._watch_workers()
        yield old_instance.process_stop()
        closing = self._close_unused()
        yield self._end(old_workers, old_local, closing)
        _core_log.info("Reloading complete")
        return True

    def _reload_failed(self, trigger: str, exc: BaseException) -> None:
        reload_failed.inc()
        self.last_reload_error = str(exc)
        _core_log.error(f"Restart failed: {exc}")
        if trigger == "SIGUSR1":
            _core_log.error(f"{trigger}: {exc}")


reload_failed = metrics.counter(
    "reload", "failed_total", "Counter of the number of failed reload attempts.", registry=PROCESS_REGISTRY
)


def _dup(pair: SocketPair) -> SocketPair:
    udp, tcp = pair
    return (udp.dup() if udp is not None else None, tcp.dup() if tcp is not None else None)


def _cause(exc: BaseException) -> BaseException:
    """The error inside a DeferredList's ``FirstError``."""
    if isinstance(exc, FirstError) and exc.subFailure.value is not None:
        return exc.subFailure.value
    return exc


def exposition(*registries: CollectorRegistry) -> bytes:
    """The text format of several registries, one after the other (their families are apart)."""
    return b"".join(generate_latest(r) for r in registries)


def run_master(
    instance: Instance,
    *,
    conf: str | None = None,
    dns_port: int = 53,
    quiet: bool = False,
    pidfile: str = "",
    reactor: Any = None,
    forkserver: ForkServer | None = None,
) -> int:
    """``twisted-coredns``: serve until SIGTERM or SIGINT; return the exit code."""
    if reactor is None:
        from twisted.internet import reactor as default_reactor

        reactor = default_reactor
    master = MasterService(instance, conf=conf, dns_port=dns_port, quiet=quiet, reactor=reactor,
                           forkserver=forkserver)
    try:
        master.privilegedStartService()
    except (OSError, CorefileError) as exc:
        sys.stderr.write(f"{exc}\n")
        return 1
    pid = PidFile(pidfile)
    pid.write()

    def stop(message: str) -> None:
        _core_log.info(message)
        if reactor.running:
            reactor.stop()

    # CoreDNS's signals: TERM and INT stop, USR1 reloads, HUP is ignored ("this signal is sometimes
    # sent outside of the user's control"). Python runs handlers between bytecodes, so each one
    # only hands its work to the reactor thread.
    handlers: dict[int, Callable[[], object]] = {
        signal.SIGTERM: lambda: stop("SIGTERM: Shutting down servers then terminating"),
        signal.SIGINT: lambda: stop("SIGINT: Shutting down"),
    }

    def _on_signal(action: Callable[[], object]) -> Callable[[int, object], None]:
        return lambda _n, _f: reactor.callFromThread(action)

    def install_signals() -> None:
        # After the reactor's own: it must keep its SIGCHLD handler, without which a worker that
        # exits after closing its pipes is never reaped (nor its end seen).
        for signum, action in handlers.items():
            signal.signal(signum, _on_signal(action))
        signal.signal(signal.SIGHUP, signal.SIG_IGN)

    reactor.callWhenRunning(install_signals)
    reactor.callWhenRunning(master.startService)
    reactor.addSystemEventTrigger("before", "shutdown", master.stopService)
    try:
        reactor.run()
    finally:
        pid.remove()
    return master.exit_code


__all__ = ["MasterService", "WorkerProcess", "exposition", "run_master", "uses_workers"]
