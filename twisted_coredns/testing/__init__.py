"""What a plugin author needs in tests: a real server from Corefile text, and a real client.

- ``InProcessServer``: the server in this process's reactor (trial ``TestCase``s: ``yield
  server.start()``); it listens on 127.0.0.1 on a free port.
- ``SubprocessServer``: ``twisted-coredns`` as a child process, for integration tests from plain
  pytest or anywhere else; its output is kept for assertions on log lines.
- ``DNSClient``: a client on the reactor, for tests that ``await`` (pytest-twisted): raw wire
  bytes in and out (``exchange``) or dnspython messages (``query``), over UDP or TCP.
- ``query`` / ``query_in_thread``: dnspython over UDP or TCP (the latter from a thread, so a
  server in this reactor keeps serving while the client waits).
- ``make_request``: a ``Request`` for a handler unit test, no socket at all.
- ``exchange_wire``: raw query bytes in, raw reply bytes out, over UDP or TCP (blocking).
- ``serve``: an ``InProcessServer`` started and stopped at the test's cleanup; ``handler_of``:
  a plugin's handler in a built Corefile; ``stop_child``: TERM then KILL for a helper daemon;
  ``until``: ``wait_for`` without blocking the reactor.
- ``run_setup`` / ``setup_error`` / ``SetupResult``: one directive's setup from Corefile text,
  CoreDNS's ``caddy.NewTestController``; nothing listens.
- ``twisted_coredns.testing.fixtures``: the pytest fixtures (``coredns_server``, ``dns_client``,
  ``coredns``) for a plugin's conftest: ``pytest_plugins = ["twisted_coredns.testing.fixtures"]``.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Generator
from pathlib import Path
from typing import Any, TypeVar

import dns.flags
import dns.message
import dns.query
import dns.rdatatype
from twisted.internet.defer import inlineCallbacks

from ..instance import Instance, build
from ..registry import Registry
from ..request import Request
from .client import DNSClient, DNSTimeoutError
from .setup import SetupResult, run_setup, setup_error

LOOPBACK = "127.0.0.1"

_H = TypeVar("_H")


def make_query(
    name: str,
    rdtype: str | int = "A",
    rdclass: str | int = "IN",
    *,
    edns: int | bool = False,
    payload: int = 1232,
    want_dnssec: bool = False,
    flags: int | None = None,
) -> dns.message.QueryMessage:
    # dnspython turns EDNS on by itself when a payload is given, so say False explicitly.
    use_edns: int | bool = False if edns is False else (0 if edns is True else edns)
    q = dns.message.make_query(
        name, rdtype, rdclass, use_edns=use_edns, payload=payload, want_dnssec=want_dnssec  # type: ignore[arg-type]
    )
    if flags is not None:
        q.flags = flags
    return q


def make_request(
    name: str,
    rdtype: str | int = "A",
    *,
    remote: tuple[str, int] = (LOOPBACK, 40212),
    proto: str = "udp",
    edns: int | bool = False,
    **kw: Any,
) -> Request:
    """A parsed request, as a handler receives it."""
    return Request(make_query(name, rdtype, edns=edns, **kw).to_wire(), remote, proto)


def query(
    port: int,
    name: str,
    rdtype: str | int = "A",
    *,
    host: str = LOOPBACK,
    tcp: bool = False,
    timeout: float = 3.0,
    message: dns.message.Message | None = None,
    **kw: Any,
) -> dns.message.Message:
    """Ask a server and wait (blocking: use from a thread or against a subprocess server)."""
    q = message if message is not None else make_query(name, rdtype, **kw)
    if tcp:
        return dns.query.tcp(q, host, port=port, timeout=timeout)
    return dns.query.udp(q, host, port=port, timeout=timeout, ignore_unexpected=True)


def query_in_thread(port: int, name: str, rdtype: str | int = "A", **kw: Any) -> Any:
    """``query`` in a thread: a Deferred firing with the reply, for servers in this reactor."""
    from twisted.internet.threads import deferToThread

    return deferToThread(query, port, name, rdtype, **kw)


def exchange_wire(port: int, wire: bytes, *, tcp: bool = False, host: str = LOOPBACK,
                  timeout: float = 3.0) -> bytes:
    """Send the raw query ``wire`` and return the raw reply, blocking (run it in a thread when the
    server is in this reactor): one datagram over UDP, or over TCP one length-prefixed message
    each way. For bytes dnspython would not write or would rewrite when it parses them."""
    if not tcp:
        with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_DGRAM) as sock:
            sock.settimeout(timeout)
            sock.sendto(wire, (host, port))
            return sock.recv(65535)
    with socket.create_connection((host, port), timeout=timeout) as sock:
        sock.sendall(len(wire).to_bytes(2, "big") + wire)
        size = int.from_bytes(_recv_exactly(sock, 2), "big")
        return _recv_exactly(sock, size)


def _recv_exactly(sock: socket.socket, size: int) -> bytes:
    data = b""
    while len(data) < size:
        chunk = sock.recv(size - len(data))
        if not chunk:
            raise ConnectionError("connection closed early")
        data += chunk
    return data


def free_port(host: str = LOOPBACK) -> int:
    """A port free for both UDP and TCP right now."""
    from ..server.sockets import close_pair, listen_pair, pair_port

    pair = listen_pair(host, 0)
    port = pair_port(pair)
    close_pair(pair)
    return port


def wait_for(predicate: Any, timeout: float = 10.0, what: str = "", interval: float = 0.02) -> Any:
    """Call ``predicate`` until it returns something true, and return that; ``AssertionError``
    naming ``what`` after ``timeout`` seconds. For tests outside the reactor (subprocess servers):
    a wait on a condition, never a fixed sleep."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out waiting for {what or predicate}")


@inlineCallbacks
def until(predicate: Any, timeout: float = 15.0, what: str = "condition", *, interval: float = 0.02,
          reactor: Any = None) -> Generator[Any, Any, Any]:
    """``wait_for`` on the reactor, for an in-process server: look at ``predicate()`` (it may
    return a Deferred) every ``interval`` seconds, letting the reactor run between looks, until
    it is true; fires with its value, or fails with AssertionError after ``timeout`` seconds."""
    if reactor is None:
        from twisted.internet import reactor
    from twisted.internet.task import deferLater

    deadline = reactor.seconds() + timeout
    while True:
        value = predicate()
        if hasattr(value, "addCallback"):
            value = yield value
        if value:
            return value
        if reactor.seconds() > deadline:
            raise AssertionError(f"{what} not met within {timeout}s")
        yield deferLater(reactor, interval, lambda: None)


def worker_pids(master: int) -> set[int]:
    """The live multisocket workers of the master process ``master`` (its children, less the
    fork server that forks them), from /proc."""
    found = set()
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text(encoding="ascii", errors="replace")
            cmdline = Path(f"/proc/{entry}/cmdline").read_bytes()
            comm = Path(f"/proc/{entry}/comm").read_text(encoding="ascii", errors="replace").strip()
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()
        if int(fields[1]) != master or fields[0] == "Z":
            continue
        if comm == "coredns-forksrv" or (b"launcher.forkserver" in cmdline and comm != "coredns-worker-"):
            continue
        found.add(int(entry))
    return found


class InProcessServer:
    """Servers for ``corefile`` in this process's reactor, on 127.0.0.1.

    Keys without a port get a free one (CoreDNS's ``.:0``). ``port`` is the first listen
    address's port; ``ports`` maps every listen address to its port.
    """

    def __init__(
        self,
        corefile: str,
        *,
        registry: Registry | None = None,
        reactor: Any = None,
        host: str = LOOPBACK,
        filename: str = "Corefile",
        dns_port: int = 0,
    ) -> None:
        if reactor is None:
            from twisted.internet import reactor as default_reactor

            reactor = default_reactor
        from ..launcher.master import MasterService

        self.corefile = corefile

        def source() -> tuple[str, str]:
            return self.corefile, filename

        def rebuild(text: str, name: str) -> Instance:
            return build(text, name, registry=registry, dns_port=dns_port, reactor=reactor, default_host=host)

        self.instance: Instance = rebuild(corefile, filename)
        self.service = MasterService(
            self.instance, reactor=reactor, quiet=True, dns_port=dns_port, default_host=host,
            source=source, rebuild=rebuild, handle_sigusr1=False,
        )

    def start(self) -> Any:
        self.service.privilegedStartService()
        return self.service.start()

    def stop(self) -> Any:
        return self.service.stopService()

    def reload(self, corefile: str | None = None) -> Any:
        """Switch to ``corefile`` (or the same text again) as a SIGUSR1 would; a Deferred True
        when it took."""
        if corefile is not None:
            self.corefile = corefile
        return self.service.reload("SIGUSR1")

    @property
    def port(self) -> int:
        return next(iter(self.service.ports().values()))

    @property
    def ports(self) -> dict[str, int]:
        return self.service.ports()

    def http_port(self, address: str) -> int | None:
        """The port the HTTP listener of ``address`` (``127.0.0.1:0`` say) is bound to."""
        return self.service.http.port_of(address)

    def query(self, name: str, rdtype: str | int = "A", **kw: Any) -> Any:
        """A Deferred firing with the reply (the client runs in a thread)."""
        kw.setdefault("port", self.port)
        port = kw.pop("port")
        return query_in_thread(port, name, rdtype, **kw)


class SubprocessServer:
    """``twisted-coredns -conf FILE`` as a child process.

    The Corefile is written to a temporary directory (or ``directory``); keys without a port
    listen on ``self.port`` (a free port, passed as ``-dns.port``). ``start()`` waits until the
    server answers over UDP.
    """

    def __init__(
        self,
        corefile: str,
        *,
        directory: str | os.PathLike[str] | None = None,
        port: int | None = None,
        args: list[str] | None = None,
        env: dict[str, str] | None = None,
        python: str | None = None,
        host: str = LOOPBACK,
    ) -> None:
        self.host = host  # where start() probes and query() asks (a Corefile may ``bind`` elsewhere)
        self.port = port if port is not None else free_port(host)
        self._tmp = None if directory else tempfile.TemporaryDirectory(prefix="coredns-test-")
        self.directory = Path(directory) if directory else Path(self._tmp.name)  # type: ignore[union-attr]
        self.corefile = self.directory / "Corefile"
        self.corefile.write_text(corefile, encoding="utf-8")
        self.output = self.directory / "output.log"
        self.args = args or []
        self.env = {**os.environ, **(env or {})}
        self.python = python or sys.executable
        self.process: subprocess.Popen[bytes] | None = None

    def command(self) -> list[str]:
        return [self.python, "-m", "twisted_coredns", "-conf", str(self.corefile),
                "-dns.port", str(self.port), *self.args]

    def start(self, timeout: float = 20.0, probe: str = "probe.invalid.") -> SubprocessServer:
        with open(self.output, "wb") as out:
            self.process = subprocess.Popen(
                self.command(), stdout=out, stderr=subprocess.STDOUT, cwd=self.directory, env=self.env
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"server exited with {self.process.returncode}:\n{self.log()}")
            try:
                query(self.port, probe, host=self.host, timeout=0.2)
                return self
            except (dns.exception.Timeout, OSError):
                continue
        self.stop()
        raise RuntimeError(f"server did not answer within {timeout}s:\n{self.log()}")

    def log(self) -> str:
        try:
            return self.output.read_text(encoding="utf-8", errors="replace")
        except FileNotFoundError:
            return ""

    def wait_for_log(self, text: str, timeout: float = 5.0) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            log = self.log()
            if text in log:
                return log
            time.sleep(0.05)
        raise AssertionError(f"{text!r} not in the server's output:\n{self.log()}")

    def query(self, name: str, rdtype: str | int = "A", **kw: Any) -> dns.message.Message:
        kw.setdefault("host", self.host)
        return query(self.port, name, rdtype, **kw)

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 10.0) -> int | None:
        if self.process is None:
            return None
        if self.process.poll() is None:
            self.process.send_signal(sig)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        code = self.process.returncode
        self.process = None
        return code

    def __enter__(self) -> SubprocessServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
        if self._tmp is not None:
            self._tmp.cleanup()


@inlineCallbacks
def serve(case: Any, corefile: str, **kw: Any) -> Generator[Any, Any, InProcessServer]:
    """An ``InProcessServer`` for ``corefile`` (``kw`` as its constructor takes them), started, and
    stopped when ``case`` (a trial ``TestCase``) cleans up, unless the test stopped it already:
    ``server = yield serve(self, text)`` (a Deferred, so ``await`` works as well)."""
    server = InProcessServer(corefile, **kw)
    yield server.start()
    case.addCleanup(lambda: server.stop() if server.service.running else None)
    return server


def handler_of(instance: Instance, kind: type[_H]) -> _H:
    """The first handler of type ``kind`` in any server block of ``instance`` (a built Corefile,
    ``InProcessServer.instance``); AssertionError when there is none."""
    for block in instance.blocks:
        for handler in block.handlers:
            if isinstance(handler, kind):
                return handler
    raise AssertionError(f"no {kind.__name__} handler")


def stop_child(process: subprocess.Popen[Any] | None, grace: float = 10.0) -> None:
    """End a helper daemon started for a test (knotd, unbound, etcd): TERM, then KILL when it is
    still there after ``grace`` seconds; nothing when it has ended already."""
    if process is None or process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(grace)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def run_cli(args: list[str], *, cwd: str | os.PathLike[str] | None = None, timeout: float = 30.0,
            env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """``twisted-coredns ARGS`` to completion (for flags such as -plugins, or a bad Corefile)."""
    return subprocess.run(
        [sys.executable, "-m", "twisted_coredns", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, **(env or {})},
    )


__all__ = [
    "LOOPBACK",
    "DNSClient",
    "DNSTimeoutError",
    "InProcessServer",
    "SetupResult",
    "SubprocessServer",
    "exchange_wire",
    "free_port",
    "handler_of",
    "make_query",
    "make_request",
    "query",
    "query_in_thread",
    "run_cli",
    "run_setup",
    "serve",
    "setup_error",
    "stop_child",
    "until",
]


