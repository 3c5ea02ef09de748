"""Shared pieces of the tests of the small plugins (whoami, debug, root, bind, chaos, any): where
their data lives (the setup rows ported from CoreDNS's setup tests are in setup_cases.json, run by
``twisted_coredns.testing.setup.check_setup_rows``), the README example Corefiles, and a log
capture in CoreDNS's output shape."""

from __future__ import annotations

import io
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, cast

from twisted.logger import ILogObserver, globalLogPublisher

from twisted_coredns.clog import CoreDNSObserver
from twisted_coredns.instance import Instance, build

DATA = Path(__file__).resolve().parent.parent / "data"


def build_block(body: str, **kw: Any) -> Instance:
    """``body`` inside a root server block, as CoreDNS's test controller sees a plugin's input."""
    return build(". {\n" + body + "\n}", **kw)


def readme_corefiles(prefix: str) -> list[Path]:
    """The README example Corefiles of one plugin (``bind_1.corefile`` ...)."""
    found = sorted((DATA / "readme_corefiles").glob(f"{prefix}_*.corefile"))
    assert found, f"no README Corefiles for {prefix}"
    return found


@contextmanager
def captured_log() -> Iterator[io.StringIO]:
    """Log events printed as the ``twisted-coredns`` command prints them, into a string."""
    out = io.StringIO()
    observer = cast(ILogObserver, CoreDNSObserver(out))
    globalLogPublisher.addObserver(observer)
    try:
        yield out
    finally:
        globalLogPublisher.removeObserver(observer)
