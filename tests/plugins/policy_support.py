"""Shared by the tests of acl, metadata, template and view: a server per Corefile, over real
sockets, the README Corefiles of tests/data/<plugin>/, and the examples of docs/plugins/<plugin>.md."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from twisted.internet.defer import inlineCallbacks
from twisted.trial import unittest

from twisted_coredns.testing import InProcessServer, serve

DATA = Path(__file__).resolve().parent.parent / "data"
DOCS = Path(__file__).resolve().parents[2] / "docs" / "plugins"


def corefiles(plugin: str) -> list[Path]:
    found = sorted((DATA / plugin).glob(f"{plugin}_*.corefile"))
    assert found, f"no README Corefiles for {plugin}"
    return found


def doc_corefiles(plugin: str) -> list[str]:
    """The ``~~~ corefile`` examples of docs/plugins/PLUGIN.md, in order."""
    text = (DOCS / f"{plugin}.md").read_text(encoding="utf-8")
    found = re.findall(r"^~~~ corefile\n(.*?)^~~~$", text, flags=re.M | re.S)
    assert found, f"no corefile examples in {plugin}.md"
    return found


class ServerCase(unittest.TestCase):
    """One server for the whole class, started before its first test."""

    corefile = ""
    host = "127.0.0.1"
    server: InProcessServer

    @inlineCallbacks
    def setUp(self) -> Any:
        self.server = yield serve(self, self.corefile, host=self.host)

    def ask(self, name: str, rdtype: str = "A", **kw: Any) -> Any:
        kw.setdefault("host", self.host)
        return self.server.query(name, rdtype, **kw)

    @inlineCallbacks
    def starts(self, corefile: Path | str) -> Any:
        """The Corefile (a file, or its text) sets up and serves: a query gets an answer of some
        kind."""
        text = corefile.read_text() if isinstance(corefile, Path) else corefile
        server = InProcessServer(text, host=self.host)
        yield server.start()
        try:
            reply = yield server.query("probe.example.", "SOA", host=self.host, timeout=5)
            self.assertIsNotNone(reply)
        finally:
            yield server.stop()
