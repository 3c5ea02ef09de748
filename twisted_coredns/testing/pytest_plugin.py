"""pytest fixtures for plugin authors: ``pytest_plugins = ["twisted_coredns.testing.pytest_plugin"]``.

``coredns`` starts ``twisted-coredns`` in a child process from Corefile text and stops it after
the test::

    def test_hello(coredns):
        server = coredns("hello.example { hello }")
        assert server.query("hello.example.").rcode() == 0
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from . import SubprocessServer


@pytest.fixture
def coredns(tmp_path: Any) -> Iterator[Callable[..., SubprocessServer]]:
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
