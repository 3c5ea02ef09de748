"""Test-only plugins and a registry that holds them beside the installed ones."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import dns.rrset
from twisted.internet import reactor
from twisted.internet.defer import Deferred
from twisted.internet.task import deferLater

from twisted_coredns.plugin import Controller, Handler, Plugin
from twisted_coredns.registry import Registry, default_registry
from twisted_coredns.request import Request
from twisted_coredns.response import Response, reply


class Crash(Handler):
    name = "crash"

    def serve(self, request: Request) -> Response:
        if request.name.startswith("crash."):
            raise RuntimeError("handler exploded")
        return self.serve_next(request)


class Slow(Handler):
    """Answers after a delay given as the first label (``d150.x.`` is 150 ms)."""

    name = "slow"

    def serve(self, request: Request) -> Deferred[Response]:
        first = request.name.split(".", 1)[0]
        delay = int(first[1:]) / 1000 if first[1:].isdigit() else 0.0
        return deferLater(reactor, delay, lambda: reply(request, aa=True, plugin=self.name,
                                                          answer=[_txt(request.qname, first)]))


class Big(Handler):
    """Answers with N TXT records of 100 bytes (``n30.big.`` is 30)."""

    name = "big"

    def serve(self, request: Request) -> Response:
        first = request.name.split(".", 1)[0]
        n = int(first[1:]) if first[1:].isdigit() else 1
        rrset = dns.rrset.from_text(request.qname, 60, "IN", "TXT", *[f'"{"x" * 100}{i}"' for i in range(n)])
        return reply(request, answer=[rrset], aa=True, plugin=self.name)


class Async(Handler):
    name = "asyncanswer"

    async def serve(self, request: Request) -> Response:
        await deferLater(reactor, 0.01, lambda: None)
        return reply(request, aa=True, plugin=self.name)


class Silent(Handler):
    """Writes nothing: CoreDNS's not-written SERVFAIL with an error."""

    name = "silent"

    def serve(self, request: Request) -> Response:
        return Response.not_written(2, "silent refuses to write", self.name)


def _txt(owner: str, text: str) -> Any:
    return dns.rrset.from_text(owner, 0, "IN", "TXT", f'"{text}"')


def _simple(handler_cls: type[Handler]) -> Any:
    def setup(controller: Controller) -> Handler:
        for d in controller.directives:
            controller.no_args(d)
        return handler_cls()

    return setup


def test_registry() -> Registry:
    """The installed plugins plus the test-only ones above, placed before whoami (which answers
    every query it gets)."""
    reg = Registry(list(default_registry()))
    for cls in (Crash, Slow, Big, Async, Silent):
        reg.add(Plugin(cls.name, _simple(cls), before="whoami"), "tests")
    return reg


test_registry.__test__ = False  # type: ignore[attr-defined]


def write_file(directory: str, name: str, text: str) -> str:
    """``text`` written to ``directory/name`` (UTF-8); its path, for a Corefile to name."""
    path = os.path.join(directory, name)
    Path(path).write_text(text, encoding="utf-8")
    return path
