"""Workers forked from a prepared process, so that they share what every worker imports.

A worker started as a fresh interpreter holds its own copy of everything it imports: about 30 MB
each, 8 workers 300 MB. The master cannot fork them itself (its reactor, its epoll and its
threads would cross into the children), so it starts one **fork server** at the first need: a
process that imports what a worker needs (the server, every registered plugin, dnspython,
prometheus_client, twisted.web), never the reactor, then moves all of it out of the garbage
collector's way (``gc.freeze``), so that its pages stay shared, and waits.

For each worker the master sends the fork server the worker's arguments and its file
descriptors (pipes, control channel, sockets) over a Unix socket. The fork server forks with
Linux's ``CLONE_PARENT``: the child's parent is the master, not the fork server. So the master
reaps it, sees its end, and signals it exactly as a worker it had spawned itself, and the
worker's ``PDEATHSIG`` and parent check keep pointing at the master. The child puts the
descriptors where ``launcher.worker`` expects them and runs its ``main``, reactor and all, with
nothing imported again.

Where this cannot work (not Linux, an architecture whose ``clone`` number is not known here, a
plugin that imports the reactor when imported, a fork server that died), workers are started as
before, as fresh interpreters: slower and bigger, the same otherwise.
"""

from __future__ import annotations

import argparse
import ctypes
import gc
import io
import json
import os
import platform
import signal
import socket
import sys
import traceback
from collections.abc import Sequence
from typing import Any

from twisted.internet import process as twisted_process
from twisted.internet.defer import Deferred, succeed
from twisted.internet.protocol import ProcessProtocol

_SYS_CLONE = {"x86_64": 56, "aarch64": 220}.get(platform.machine())
_CLONE_PARENT = 0x00008000
_PR_SET_PDEATHSIG = 1
_PR_SET_NAME = 15
READY = b"ready"
FD = 3
"""The fork server's end of the request socket."""
TIMEOUT = 30.0


def supported() -> bool:
    return sys.platform.startswith("linux") and _SYS_CLONE is not None


# -- the fork server --------------------------------------------------------------------------------


def _prepare() -> None:
    """Import what every worker imports, and every registered plugin's setup, without the
    reactor."""
    from twisted.python.reflect import namedAny

    import twisted_coredns.launcher.worker
    import twisted_coredns.server.service  # noqa: F401
    from twisted_coredns.instance import build  # noqa: F401
    from twisted_coredns.registry import default_registry

    for registered in default_registry():
        setup = getattr(registered.factory, "_setup", None)
        if isinstance(setup, str):
            try:
                namedAny(setup)
            except Exception:  # a broken plugin package: the worker reports it, as before
                pass
    # The reactor's modules may be imported: only importing twisted.internet.reactor (or calling
    # install) makes a reactor, with its epoll and waker, and that happens in the worker.
    for name in ("dns.message", "dns.rrset", "dns.zone", "twisted.web.server", "twisted.web.client",
                 "twisted.names.dns", "twisted.protocols.amp", "twisted.internet.stdio",
                 "twisted.internet.default", "twisted.internet.epollreactor", "twisted.internet.posixbase",
                 "twisted.internet.udp", "twisted.internet.tcp", "twisted.internet.unix",
                 "twisted.python.sendmsg", "twisted.internet._multicast", "twisted_coredns.launcher.cpus",
                 "twisted_coredns.metrics.snapshot", "twisted_coredns.server.http",
                 "twisted_coredns.duration"):
        try:
            __import__(name)
        except ImportError:
            pass
    # dnspython's rdata readers, all loaded and guarded (dns/dnspython.py), are shared pages too.
    from twisted_coredns.dns import load_rdata_types

    load_rdata_types()


def _libc() -> Any:
    libc = ctypes.CDLL(None, use_errno=True)
    libc.syscall.restype = ctypes.c_long
    return libc


def _clone_parent(libc: Any) -> int:
    """``fork()``, except that the child's parent is our parent (Linux ``CLONE_PARENT``)."""
    assert _SYS_CLONE is not None
    ctypes.pythonapi.PyOS_BeforeFork()
    pid = libc.syscall(ctypes.c_long(_SYS_CLONE), ctypes.c_long(_CLONE_PARENT | signal.SIGCHLD),
                       ctypes.c_long(0), ctypes.c_long(0), ctypes.c_long(0), ctypes.c_long(0))
    if pid == 0:
        ctypes.pythonapi.PyOS_AfterFork_Child()
    else:
        ctypes.pythonapi.PyOS_AfterFork_Parent()
    if pid < 0:
        raise OSError(ctypes.get_errno(), os.strerror(ctypes.get_errno()))
    return int(pid)


def _open_fds() -> list[int]:
    try:
        return [int(fd) for fd in os.listdir("/proc/self/fd")]
    except OSError:
        return list(range(3, 1024))


def _place(fds: Sequence[int], targets: Sequence[int]) -> None:
    """Put ``fds[i]`` at ``targets[i]``, and close every other descriptor."""
    import fcntl

    high = max([*fds, *targets, 2]) + 1
    moved = [fcntl.fcntl(fd, fcntl.F_DUPFD, high) for fd in fds]
    for fd, target in zip(moved, targets, strict=True):
        os.dup2(fd, target)
    keep = set(targets)
    for fd in _open_fds():
        if fd not in keep:
            try:
                os.close(fd)
            except OSError:
                pass


def _run_worker(request: dict[str, Any], fds: list[int], libc: Any) -> None:
    """In the child: become the worker. Never returns."""
    code = 70
    try:
        for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGUSR1, signal.SIGCHLD):
            signal.signal(signum, signal.SIG_DFL)
        _place(fds, request["targets"])
        os.environ.clear()
        os.environ.update(request["env"])
        sys.stdin = io.TextIOWrapper(io.FileIO(0, "r", closefd=False), encoding="utf-8")
        sys.stdout = io.TextIOWrapper(io.FileIO(1, "w", closefd=False), encoding="utf-8",
                                      errors="backslashreplace")
        sys.stderr = io.TextIOWrapper(io.FileIO(2, "w", closefd=False), encoding="utf-8",
                                      errors="backslashreplace", line_buffering=True)
        argv = request["argv"]
        sys.argv = argv
        name = f"coredns-worker-{request.get('index', '')}".encode()[:15]
        libc.prctl(_PR_SET_NAME, ctypes.c_char_p(name), 0, 0, 0)
        from .worker import main

        code = main(argv[3:])
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 1
    except BaseException:
        try:
            traceback.print_exc()
        except BaseException:
            pass
    finally:
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except BaseException:
                pass
        os._exit(code)


def serve(parent_pid: int) -> int:
    """The fork server as its own program (``python -m``): import, then serve."""
    libc = _libc()
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
    if os.getppid() != parent_pid:
        return 0
    sock = socket.socket(fileno=FD)
    _prepare()
    if "twisted.internet.reactor" in sys.modules:
        # A plugin installed the reactor as it was imported: forking now would share its epoll.
        sys.stderr.write("fork server: a plugin imports the reactor at import time; not forking\n")
        return 3
    gc.collect()
    gc.freeze()
    # On standard output, which the master reads in its reactor: it never waits for this.
    os.write(1, READY + b"\n")
    return _serve(sock, libc)


def _serve(sock: socket.socket, libc: Any) -> int:
    while True:
        try:
            data, fds, _flags, _addr = socket.recv_fds(sock, 1 << 16, 256)
        except OSError:
            return 1
        if not data:
            return 0
        try:
            request = json.loads(data)
            pid = _clone_parent(libc)
        except Exception as exc:
            for fd in fds:
                os.close(fd)
            sock.sendall(f"error {exc}".encode())
            continue
        if pid == 0:
            _run_worker(request, fds, libc)
        for fd in fds:
            os.close(fd)
        sock.sendall(str(pid).encode())


def fork_early() -> ForkServer | None:
    """The fork server forked from this process, before it has a reactor: then the master, the
    fork server and every worker share the pages of everything imported so far (``prepare``
    first). For ``twisted-coredns``, which gets here before anything makes a reactor; None where
    that cannot be done (the fork server is then started as a program when first needed)."""
    if not supported() or os.environ.get("TWISTED_COREDNS_NO_FORKSERVER") == "1":
        return None
    if "twisted.internet.reactor" in sys.modules:
        return None
    mine, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    parent = os.getpid()
    sys.stdout.flush()
    sys.stderr.flush()
    gc.collect()
    gc.freeze()
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            mine.close()
            libc = _libc()
            libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
            libc.prctl(_PR_SET_NAME, ctypes.c_char_p(b"coredns-forksrv"), 0, 0, 0)
            for signum in (signal.SIGINT, signal.SIGHUP, signal.SIGUSR1):
                signal.signal(signum, signal.SIG_IGN)
            if os.getppid() == parent:
                code = _serve(theirs, libc)
        except BaseException:
            pass
        finally:
            os._exit(code)
    theirs.close()
    server = ForkServer(None, sock=mine, pid=pid)
    return server


def prepare() -> None:
    """Import what the workers will need, before ``fork_early``."""
    _prepare()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="twisted_coredns.launcher.forkserver")
    parser.add_argument("--parent-pid", type=int, required=True)
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    return serve(args.parent_pid)


# -- the master's side --------------------------------------------------------------------------------


class _ForkServerProtocol(ProcessProtocol):
    def __init__(self, server: ForkServer) -> None:
        self.server = server

    def childDataReceived(self, childFD: int, data: bytes) -> None:
        if childFD == 1 and data.strip() == READY:
            self.server.became_ready()
            return
        # Otherwise it only says something when it cannot work; the master's stderr gets it.
        try:
            sys.stderr.write(data.decode("utf-8", "replace"))
            sys.stderr.flush()
        except (OSError, ValueError):
            pass

    def processEnded(self, reason: Any) -> None:
        self.server.ended()


class ForkServer:
    """The master's handle on its fork server: started on first use, asked for each worker."""

    def __init__(self, reactor: Any, *, sock: socket.socket | None = None, pid: int | None = None) -> None:
        self.reactor = reactor
        self.sock = sock
        self.process: Any = pid
        self.ready = sock is not None
        """Forked early (``fork_early``), it is ready at once; started as a program, once it says so."""
        self.broken = not supported() or os.environ.get("TWISTED_COREDNS_NO_FORKSERVER") == "1"
        self._waiting: list[Deferred[None]] = []
        if sock is not None:
            sock.settimeout(TIMEOUT)

    def when_ready(self, timeout: float = TIMEOUT) -> Deferred[None]:
        """Start the fork server if it is not running; fire when it can fork (or never will:
        then ``broken`` is set and workers are spawned instead). Never fails."""
        self.start()
        if self.ready or self.broken:
            return succeed(None)
        d: Deferred[None] = Deferred()
        self._waiting.append(d)
        assert self.reactor is not None
        timer = self.reactor.callLater(timeout, self._give_up)
        d.addBoth(lambda r: (timer.cancel() if timer.active() else None, r)[1])
        return d

    def became_ready(self) -> None:
        self.ready = True
        self._release()

    def _release(self) -> None:
        waiting, self._waiting = self._waiting, []
        for d in waiting:
            if not d.called:
                d.callback(None)

    def start(self) -> None:
        if self.broken or self.process is not None:
            return
        mine, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        try:
            self.process = self.reactor.spawnProcess(
                _ForkServerProtocol(self), sys.executable,
                [sys.executable, "-m", "twisted_coredns.launcher.forkserver",
                 "--parent-pid", str(os.getpid())],
                env=dict(os.environ), childFDs={0: "w", 1: "r", 2: "r", FD: theirs.fileno()},
            )
        except OSError:
            mine.close()
            self.broken = True
            return
        finally:
            theirs.close()
        mine.settimeout(TIMEOUT)
        self.sock = mine

    def fork(self, argv: list[str], fdmap: dict[int, int], env: dict[str, str], index: int) -> int:
        """A worker with ``fdmap`` (its descriptor -> ours) running ``argv``; its pid. Raises
        ``OSError`` when the fork server cannot do it."""
        sock = self.sock
        if self.broken or not self.ready or sock is None:
            raise OSError("no fork server")
        try:
            targets = sorted(fdmap)
            request = {"argv": argv, "targets": targets, "env": env, "index": index}
            socket.send_fds(sock, [json.dumps(request).encode()], [fdmap[t] for t in targets])
            reply = sock.recv(256)
        except OSError:
            self._give_up()
            raise
        if not reply or reply.startswith(b"error"):
            if not reply:
                self._give_up()
            raise OSError(f"fork server: {reply.decode(errors='replace') or 'gone'}")
        return int(reply)

    def _give_up(self) -> None:
        self.broken = True
        self.stop()
        self._release()

    def ended(self) -> None:
        self.broken = True
        if self.sock is not None:
            self.sock.close()
            self.sock = None
        self._release()

    def stop(self) -> None:
        if self.sock is not None:
            self.sock.close()  # the fork server reads the end of its socket and exits
            self.sock = None
        if isinstance(self.process, int):
            # Forked early, it is our child but not Twisted's: reap it here.
            try:
                os.waitpid(self.process, 0)
            except OSError:
                pass
            self.process = None


class ForkedProcess(twisted_process.Process):
    """A worker process forked by the fork server, to Twisted the same as one it spawned: the
    pipes are made as ``spawnProcess`` makes them, and the child is our child."""

    def __init__(self, forkserver: ForkServer, index: int, *args: Any, **kwargs: Any) -> None:
        self._forkserver = forkserver
        self._index = index
        super().__init__(*args, **kwargs)

    def _fork(self, path: Any, uid: Any, gid: Any, executable: Any, args: Any, environment: Any,
              **kwargs: Any) -> None:
        self.pid = self._forkserver.fork(list(args), dict(kwargs["fdmap"]), dict(environment), self._index)
        self.status = -1


def spawn_worker(reactor: Any, forkserver: ForkServer | None, index: int, proto: Any, args: list[str],
                 env: dict[str, str], child_fds: dict[int, Any]) -> Any:
    """Start a worker: forked when the fork server can, spawned as a fresh interpreter otherwise."""
    if forkserver is not None and not forkserver.broken:
        try:
            return ForkedProcess(forkserver, index, reactor, sys.executable, args, env, None, proto,
                                 childFDs=child_fds)
        except OSError:
            pass
    return reactor.spawnProcess(proto, sys.executable, args, env=env, childFDs=child_fds)


if __name__ == "__main__":
    sys.exit(main())
