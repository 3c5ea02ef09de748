"""From Corefile text to set-up server blocks and listen groups (CoreDNS's caddy.Start, minus the
sockets).

Every error surfaces here, before anything binds: a bad Corefile never leaves half a server
running, and the multisocket master can validate a Corefile before it spawns workers.
"""

from __future__ import annotations

import os
import traceback
from dataclasses import dataclass, field
from typing import Any

from twisted.internet.defer import Deferred, DeferredList, inlineCallbacks, maybeDeferred

from . import clog
from .address import AddressError, parse_zone_address
from .config import BlockConfig, ListenGroup, check_transports, check_zones, group_by_listen_address
from .corefile import CorefileError, ServerBlock, parse
from .corefile.parser import decode
from .interfaces import IReady
from .plugin import Controller, PluginBug, plugin_error
from .registry import Registry, default_registry

DEFAULT_CONF = "Corefile"


def default_corefile(port: int | str = 53) -> str:
    """What CoreDNS serves when there is no Corefile."""
    return f".:{port} {{\nwhoami\nlog\n}}\n"


@dataclass
class Instance:
    """A Corefile set up: its blocks (with their chains) and the addresses to listen on."""

    corefile: str
    filename: str
    blocks: list[BlockConfig]
    groups: list[ListenGroup]
    registry: Registry
    _seen_ready: set[int] = field(default_factory=set)

    def start(self) -> Deferred[Any]:
        """Run the plugins' startup hooks, in block order."""
        # CoreDNS's NewServer: debug mode follows the Corefile being started, so a reload that
        # drops the debug plugin turns it off again.
        clog.debug_enabled = any(b.debug for b in self.blocks)
        return _run_hooks([fn for b in self.blocks for fn in b.startup])

    def stop(self) -> Deferred[Any]:
        return _run_hooks([fn for b in self.blocks for fn in b.shutdown])

    # -- in the process that owns the listeners (see Controller.on_process_start) ---------------

    def process_start(self, front: Any) -> Deferred[Any]:
        return _run_in_order([lambda fn=fn: fn(front) for b in self.blocks for fn in b.process_start])

    def process_stop(self) -> Deferred[Any]:
        return _run_hooks([fn for b in self.blocks for fn in b.process_stop])

    def final_shutdown(self) -> Deferred[Any]:
        return _run_hooks([fn for b in self.blocks for fn in b.final_shutdown])

    def not_ready(self) -> list[str]:
        """The names of the plugins not ready yet, sorted, in the blocks that use ``ready``.

        With ``monitor until-ready`` (the default) a plugin that said it is ready is not asked
        again; ``continuously`` asks every time (CoreDNS's ``ready`` list)."""
        names: set[str] = set()
        for block in self.blocks:
            if not block.watch_ready:
                continue
            keep_asking = block.settings.get("ready.monitor") == "continuously"
            for handler in block.handlers:
                if not IReady.providedBy(handler) or id(handler) in self._seen_ready:
                    continue
                if handler.ready():
                    if not keep_asking:
                        self._seen_ready.add(id(handler))
                else:
                    names.add(handler.name)
        return sorted(names)


def _run_hooks(hooks: list[Any]) -> Deferred[Any]:
    return DeferredList([maybeDeferred(fn) for fn in hooks], fireOnOneErrback=True, consumeErrors=True)


@inlineCallbacks
def _run_in_order(hooks: list[Any]) -> Any:
    """One after the other: the first error stops the rest and is the result (CoreDNS runs its
    OnStartup callbacks so, and a start fails on the first)."""
    for fn in hooks:
        yield maybeDeferred(fn)


def _inspect(blocks: list[ServerBlock], dns_port: int, default_host: str) -> list[BlockConfig]:
    configs = []
    for index, block in enumerate(blocks):
        addresses = []
        for key in block.keys:
            try:
                addresses.extend(parse_zone_address(key.text, dns_port))
            except AddressError as exc:
                raise CorefileError(f"error inspecting server blocks: {exc}", key.file, key.line) from None
        configs.append(BlockConfig(index, block, addresses, listen_hosts=[default_host]))
    return configs


def build(
    corefile: str,
    filename: str = DEFAULT_CONF,
    *,
    registry: Registry | None = None,
    dns_port: int = 53,
    reactor: Any = None,
    env: dict[str, str] | None = None,
    default_host: str = "",
) -> Instance:
    """Parse ``corefile``, set up every plugin of every block, group the listen addresses.

    Raises ``CorefileError`` with CoreDNS's message for anything wrong. ``default_host`` is where
    blocks without ``bind`` listen ("" is every address, as in CoreDNS; tests use 127.0.0.1).
    """
    registry = registry if registry is not None else default_registry()
    if reactor is None:
        from twisted.internet import reactor as default_reactor

        reactor = default_reactor
    env = env if env is not None else dict(os.environ)
    blocks = parse(corefile, filename, directives=registry.names(), env=env)
    if not blocks:
        blocks = parse(default_corefile(dns_port), filename, directives=registry.names())
    configs = _inspect(blocks, dns_port, default_host)
    # CoreDNS sets plugins up directive by directive (plugin.cfg order), each over every block.
    for name in registry.order():
        factory = registry[name]
        for config in configs:
            directives = config.block.directives_named(name)
            if not directives:
                continue
            controller = Controller(name, directives, config, reactor)
            try:
                handler = factory.setup(controller)
            except (CorefileError, ValueError, OSError) as exc:
                raise plugin_error(name, exc) from None
            except Exception as exc:
                # Anything else (a TypeError above all) is the plugin's bug, not the Corefile's.
                raise PluginBug(name, exc, traceback.format_exc(), debug=config.debug) from exc
            config.plugins.append(name)
            if handler is not None:
                config.handlers.append(handler)
    for config in configs:
        config.link()
    check_zones(configs)
    groups = group_by_listen_address(configs)
    check_transports(groups)
    return Instance(corefile, filename, configs, groups, registry)


def read_corefile(conf: str | None) -> tuple[str, str]:
    """CoreDNS's loaders: ``-conf FILE`` must exist (``stdin`` reads standard input); without it,
    ``./Corefile`` if present, else the default Corefile (empty text here).

    Read as bytes and decoded as Go reads them, as an imported file is: a lone CR stays a space
    (text mode would make it a line, and every error after it name the wrong line), and a byte
    that is not UTF-8 is U+FFFD in the error, not a traceback."""
    import sys

    if conf == "stdin":
        return decode(sys.stdin.buffer.read()), "stdin"
    if conf:
        with open(conf, "rb") as f:
            return decode(f.read()), conf
    try:
        with open(DEFAULT_CONF, "rb") as f:
            return decode(f.read()), DEFAULT_CONF
    except FileNotFoundError:
        return "", DEFAULT_CONF
