"""Run one directive's setup from Corefile text: CoreDNS's ``caddy.NewTestController``.

A setup test in CoreDNS reads ``c := caddy.NewTestController("dns", input); err := setup(c)``. Here
it reads ``result = run_setup("greet example.org {\\n text hi\\n}")``: the text becomes the body
of a server block (``.`` unless ``keys`` says otherwise), every plugin in it is set up exactly as
the server would set it up, and the result holds the handler the directive made, the block's
settings, or the error, worded as CoreDNS words it (``plugin/greet: Corefile:3 - Error during
parsing: ...``). Nothing listens.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..config import BlockConfig
from ..corefile import CorefileError
from ..instance import Instance, build
from ..interfaces import IHandler
from ..registry import Registry

__all__ = ["SetupResult", "run_setup", "setup_error"]


@dataclass
class SetupResult:
    """What setting up a directive gave: its handler (None for a plugin that only configures the
    block, such as ``root``), the block's config, the whole instance; or the error."""

    error: CorefileError | None
    instance: Instance | None = None
    handler: IHandler | None = None

    @property
    def config(self) -> BlockConfig:
        if self.instance is None:
            raise AssertionError(f"setup failed: {self.error}")
        return self.instance.blocks[0]

    @property
    def message(self) -> str | None:
        """The error text, as the ``twisted-coredns`` command prints it, or None."""
        return None if self.error is None else str(self.error)

    def __bool__(self) -> bool:
        return self.error is None


def _handler_of(instance: Instance, name: str) -> IHandler | None:
    for handler in instance.blocks[0].handlers:
        if getattr(handler, "name", None) == name:
            return handler
    return None


def run_setup(
    text: str,
    *,
    keys: str = ".",
    registry: Registry | None = None,
    reactor: Any = None,
    filename: str = "Corefile",
    env: dict[str, str] | None = None,
) -> SetupResult:
    """Set up ``text`` (one or more directive lines) inside ``keys { ... }``.

    The directive's handler is the first handler named as the first directive of ``text``. A
    ``CorefileError`` (CoreDNS's error, with file and line) is returned in the result, not raised;
    anything else a setup raises is a bug and propagates (``PluginBug``)."""
    body = text.strip("\n")
    name = body.split(None, 1)[0] if body.strip() else ""
    corefile = f"{keys} {{\n{body}\n}}\n"
    try:
        instance = build(corefile, filename, registry=registry, reactor=reactor, env=env, dns_port=0)
    except CorefileError as exc:
        from ..plugin import PluginBug

        if isinstance(exc, PluginBug):
            raise
        return SetupResult(exc)
    return SetupResult(None, instance, _handler_of(instance, name))


def setup_error(text: str, **kw: Any) -> str | None:
    """The error text setting ``text`` up gives, or None when it sets up."""
    return run_setup(text, **kw).message
