"""pytest fixtures for plugin authors: a server and a client for tests written with pytest-twisted.

A plugin's tests are plain pytest functions; the ones that talk to a server are coroutines that
pytest-twisted runs on the reactor, so the server in this process keeps serving while the test
awaits its reply (no threads, no subprocess). Enable it in the plugin's ``conftest.py``::

    pytest_plugins = ["twisted_coredns.testing.fixtures"]

and run pytest with pytest-twisted active (it is, once installed, unless ``-p no:twisted``)::

    @pytest.mark.corefile("example.org {\\n    greet\\n}\\n")
    @pytest_twisted.ensureDeferred
    async def test_hello(coredns_server):
        reply = await coredns_server.query("a.example.org.", "TXT")

The Corefile is, first found: the test's ``corefile`` marker, a ``coredns_corefile`` fixture the
module or a conftest defines, or ``DEFAULT_COREFILE``. ``coredns`` runs ``twisted-coredns`` as a
child process instead, for tests that need its command line, signals or log output; it needs no
pytest-twisted.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import dns.message
import pytest
import pytest_twisted
from twisted.internet import defer

from ..instance import Instance
from . import LOOPBACK, InProcessServer, SubprocessServer
from .client import DNSClient

__all__ = [
    "DEFAULT_COREFILE",
    "CoreDNSServer",
    "coredns",
    "coredns_corefile",
    "coredns_host",
    "coredns_server",
    "dns_client",
]

DEFAULT_COREFILE = ". {\n    whoami\n}\n"
MARKER = "corefile"


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", f"{MARKER}(text): the Corefile coredns_server serves for this test")


def pytest_runtest_setup(item: pytest.Item) -> None:
    # Without pytest-twisted nothing runs the async fixture, and pytest's own complaint does not
    # say which plugin is missing. Not tryfirst: a test skipped by its marks is skipped, not failed.
    uses_server = "coredns_server" in getattr(item, "fixturenames", ())
    if uses_server and not item.config.pluginmanager.hasplugin("twisted"):
        pytest.fail("coredns_server needs pytest-twisted active: install it and do not pass -p no:twisted",
                    pytrace=False)


def _marked_corefile(request: pytest.FixtureRequest) -> str | None:
    marker = request.node.get_closest_marker(MARKER)
    if marker is None:
        return None
    text = marker.args[0] if marker.args else marker.kwargs.get("text")
    if not isinstance(text, str):
        raise pytest.UsageError(f"@pytest.mark.{MARKER} takes the Corefile text, got {marker!r}")
    return text


class CoreDNSServer:
    """The running in-process server a test gets from ``coredns_server``, and a client for it.

    ``port`` is the first listen address's port; ``ports`` maps every listen address, as the
    Corefile gives it (``dns://127.0.0.1:0`` for a key without a port), to the port it got.
    ``query`` and ``exchange`` go to ``port`` unless given another.
    """

    def __init__(self, server: InProcessServer, host: str, *, reactor: Any = None,
                 timeout: float = 3.0) -> None:
        self.server = server
        self.host = host
        self._reactor = reactor
        self._timeout = timeout

    @property
    def port(self) -> int:
        return self.server.port

    @property
    def ports(self) -> dict[str, int]:
        return self.server.ports

    @property
    def instance(self) -> Instance:
        return self.server.instance

    def client(self, port: int | None = None) -> DNSClient:
        return DNSClient(self.host, self.port if port is None else port, reactor=self._reactor,
                         timeout=self._timeout)

    async def query(self, name: str, rdtype: str | int = "A", *, tcp: bool = False,
                    port: int | None = None, **kw: Any) -> dns.message.Message:
        """``DNSClient.query``: ``kw`` goes to ``testing.make_query`` (rdclass, edns, payload,
        want_dnssec, flags)."""
        return await self.client(port).query(name, rdtype, tcp=tcp, **kw)

    async def exchange(self, wire: bytes, *, tcp: bool = False, port: int | None = None) -> bytes:
        """``DNSClient.exchange``: the bytes sent as they are, the reply's bytes back."""
        return await self.client(port).exchange(wire, tcp=tcp)


@pytest.fixture
def coredns_corefile(request: pytest.FixtureRequest) -> str:
    """The Corefile ``coredns_server`` serves; override it with a fixture of the same name."""
    marked = _marked_corefile(request)
    return DEFAULT_COREFILE if marked is None else marked


@pytest.fixture
def coredns_host() -> str:
    """The address keys without ``bind`` listen on (override with ``"::1"`` for IPv6)."""
    return LOOPBACK


@pytest_twisted.async_yield_fixture
async def coredns_server(coredns_corefile: str, coredns_host: str,
                         request: pytest.FixtureRequest) -> AsyncIterator[CoreDNSServer]:
    """The Corefile's servers, started in this reactor on free ports, stopped after the test."""
    marked = _marked_corefile(request)
    # The marker wins over a module's coredns_corefile, which would otherwise hide it.
    corefile = coredns_corefile if marked is None else marked
    server = InProcessServer(corefile, host=coredns_host)
    await defer.maybeDeferred(server.start)
    try:
        yield CoreDNSServer(server, coredns_host)
    finally:
        await defer.maybeDeferred(server.stop)


@pytest.fixture
def dns_client() -> Callable[..., DNSClient]:
    """``dns_client(port, host="127.0.0.1", *, timeout=3.0)``: a ``DNSClient`` for that server."""

    def make(port: int, host: str = LOOPBACK, *, timeout: float = 3.0) -> DNSClient:
        return DNSClient(host, port, timeout=timeout)

    return make


@pytest.fixture
def coredns(tmp_path: Any) -> Iterator[Callable[..., SubprocessServer]]:
    """``coredns(corefile, **kw)`` starts ``twisted-coredns`` in a child process (a
    ``SubprocessServer``, in its own directory under ``tmp_path``); all are stopped after the test::

        def test_hello(coredns):
            server = coredns("hello.example { hello }")
            assert server.query("hello.example.").rcode() == 0
    """
    started: list[SubprocessServer] = []

    def start(corefile: str, **kw: Any) -> SubprocessServer:
        directory = tmp_path / f"server{len(started)}"
        directory.mkdir()
        server = SubprocessServer(corefile, directory=directory, **kw)
        started.append(server)
        return server.start()

    yield start
    for server in started:
        server.stop()
