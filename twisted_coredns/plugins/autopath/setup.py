"""autopath's setup: ``autopath [ZONE...] RESOLV-CONF``.

RESOLV-CONF is a file in resolv.conf's format (its ``search`` line, or a ``domain`` line, gives the
path), or ``@PLUGIN``: a plugin of the same block with an ``autopath(request)`` method that gives
the search path for each query (CoreDNS's ``AutoPather``; ``erratic`` has one here, and a
third-party plugin may). The plugin is looked up when the server starts, as CoreDNS does.
"""

from __future__ import annotations

from ...dns import normalize
from ...plugin import Controller
from .handler import AutoPath


def read_search_path(path: str) -> list[str]:
    """The search path of a resolv.conf file, as miekg's ``ClientConfigFromFile`` reads it."""
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            text = f.read()
    except OSError as exc:
        reason = (exc.strerror or str(exc)).lower()
        raise ValueError(f'failed to parse "{path}": open {path}: {reason}') from None
    search: list[str] = []
    for line in text.splitlines():
        fields = line.split()
        if not fields or fields[0].startswith(("#", ";")):
            continue
        if fields[0] == "domain":
            search = fields[1:2]
        elif fields[0] == "search":
            search = fields[1:]
    return [normalize(name) for name in search]


def setup(controller: Controller) -> AutoPath:
    autopath = AutoPath([])
    source = ""
    for directive in controller.directives:
        args = directive.values
        if not args:
            raise ValueError("no resolv-conf specified")
        resolv = args[-1]
        if resolv.startswith("@"):
            source = resolv[1:]
        else:
            autopath.search = [*read_search_path(resolv), ""]  # "" last: the name as asked
        autopath = AutoPath(controller.origins(directive.args[:-1]), autopath.search)
    config = controller.config
    name = controller.name

    def find_source() -> None:
        if not source:
            return
        for handler in config.handlers:
            if handler.name == source:
                search_func = getattr(handler, "autopath", None)
                if search_func is None:
                    raise ValueError(f"plugin/{name}: {source} does not implement the AutoPather interface")
                autopath.search_func = search_func
                return

    controller.on_startup(find_source)
    return autopath
