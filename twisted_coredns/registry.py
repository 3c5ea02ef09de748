"""Finding plugins: Twisted dropins first, entry points too, one registry.

Built-in plugins are named by a dropin of ours under ``twisted/plugins/``, exactly as a third-party
package names its own, so both travel the same road. Entry points in the group
``twisted_coredns.plugins`` feed the same registry for packaging tools that cannot ship dropins
(uv's hard links and read-only images defeat ``dropin.cache``; see docs/design.md). Every object
must provide ``IPluginFactory``; a name claimed twice keeps the first and logs the other.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from importlib.metadata import entry_points
from typing import Any

from twisted.logger import Logger

from .interfaces import IPluginFactory
from .order import plugin_order

ENTRY_POINT_GROUP = "twisted_coredns.plugins"
_log = Logger(namespace="coredns")


@dataclass(frozen=True)
class Registered:
    factory: Any
    source: str  # "dropin:MODULE" or "entry-point:VALUE"

    @property
    def name(self) -> str:
        return str(self.factory.name)


class Registry:
    """Directive name → plugin factory, and the order plugins run in."""

    def __init__(self, plugins: list[Registered] | None = None) -> None:
        self._plugins: dict[str, Registered] = {}
        for item in plugins or ():
            self.add(item.factory, item.source)

    def add(self, factory: Any, source: str = "code") -> None:
        if not IPluginFactory.providedBy(factory):
            raise TypeError(f"{source}: {factory!r} does not provide IPluginFactory")
        name = factory.name
        if name in self._plugins:
            kept = self._plugins[name]
            if kept.factory is not factory:
                _log.warn(
                    "plugin {name} from {source} ignored: already registered from {kept}",
                    name=name,
                    source=source,
                    kept=kept.source,
                )
            return
        self._plugins[name] = Registered(factory, source)

    def __contains__(self, name: object) -> bool:
        return name in self._plugins

    def __getitem__(self, name: str) -> Any:
        return self._plugins[name].factory

    def __iter__(self) -> Iterator[Registered]:
        return iter(self._plugins.values())

    def names(self) -> list[str]:
        return list(self._plugins)

    def order(self) -> list[str]:
        """Registered plugins in the order they run."""
        full = plugin_order((r.name, getattr(r.factory, "order", None)) for r in self)
        return [n for n in full if n in self._plugins]


def _from_dropins() -> Iterator[Registered]:
    from twisted.plugin import getPlugins

    import twisted.plugins

    for factory in getPlugins(IPluginFactory, twisted.plugins):
        module = getattr(factory, "module", type(factory).__module__)
        yield Registered(factory, f"dropin:{module}")


def _from_entry_points() -> Iterator[Registered]:
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        try:
            obj = ep.load()
        except Exception:
            _log.failure("plugin entry point {value} failed to load", value=ep.value)
            continue
        if not IPluginFactory.providedBy(obj):
            _log.error("plugin entry point {value} does not provide IPluginFactory", value=ep.value)
            continue
        yield Registered(obj, f"entry-point:{ep.value}")


def discover() -> Registry:
    """Every plugin installed: ours first, so a third party cannot shadow a built-in by accident."""
    found = [*_from_dropins(), *_from_entry_points()]
    found.sort(key=lambda r: 0 if "twisted_coredns." in r.source else 1)
    return Registry(found)


_default: Registry | None = None


def default_registry() -> Registry:
    """The registry of this process, discovered once."""
    global _default
    if _default is None:
        _default = discover()
    return _default
