"""Setup for ``file``: the Corefile syntax, CoreDNS's errors, zones loaded before serving.

::

    file DBFILE [ZONES...] {
        reload DURATION
        reload_by_mtime
        fallthrough [ZONES...]
    }

A zone file that does not parse stops the server at start with its file and line. A file that
cannot be opened is an error only when ``reload`` is 0; otherwise CoreDNS warns, the zone answers
SERVFAIL, and the reload timer tries again.
"""

from __future__ import annotations

import os
from typing import Any

from ...address import host_zones
from ...clog import PluginLogger
from ...duration import format_duration, parse_duration
from ...plugin import Controller
from .handler import File, ZoneReloader, parse_error_text
from .zone import Zone, ZoneFileError

log = PluginLogger("file")

DEFAULT_RELOAD = 60.0


def _go_open_error(exc: OSError, path: str) -> str:
    return f"open {path}: {(exc.strerror or str(exc)).lower()}"


def setup(controller: Controller) -> File:
    zones: dict[str, Zone | None] = {}
    files: dict[str, str] = {}
    fall: list[str] = []
    reload = DEFAULT_RELOAD
    by_mtime = False
    open_error: str | None = None
    root = controller.config.root

    for directive in controller.directives:
        if not directive.args:
            raise controller.arg_error(directive)
        path = directive.args[0].text
        origins = controller.origins(list(directive.args[1:]))
        if not os.path.isabs(path) and root:
            path = os.path.join(root, path)
        path = os.path.normpath(path)
        for origin in origins:
            files[origin] = path
            zones[origin] = None
            if open_error is not None:
                continue
            try:
                zones[origin] = Zone.from_file(path, origin)
            except OSError as exc:
                open_error = _go_open_error(exc, path)
            except ZoneFileError as exc:
                raise ValueError(parse_error_text(path, origin, exc)) from None
        for prop in directive.block or ():
            name, values = prop.name, prop.values
            if name == "fallthrough":
                fall = [zone for value in values or ["."] for zone in host_zones(value)]
            elif name == "reload":
                if not values:
                    raise ValueError("reload duration value is expected")
                try:
                    reload = parse_duration(values[0])
                except ValueError as exc:
                    raise ValueError(f"plugin/file: {exc}") from None
            elif name == "reload_by_mtime":
                by_mtime = True
            elif name == "upstream":
                continue  # accepted and ignored, as CoreDNS does
            else:
                raise controller.unknown_property(prop)

    if open_error is not None:
        if reload == 0:
            raise ValueError(open_error)
        log.warning(f'Failed to open "{open_error}": trying again in {format_duration(reload)}')

    handler = File(zones, fall=fall, block=controller.config)
    schedule_reloads(controller, handler, files, reload, by_mtime)
    return handler


def find_transfer(controller: Controller) -> Any:
    """The block's ``transfer`` handler, if it has one (CoreDNS's ``Handler("transfer")``)."""
    for handler in controller.config.handlers:
        if getattr(handler, "name", None) == "transfer":
            return handler
    return None


def schedule_reloads(
    controller: Controller, handler: File, files: dict[str, str], interval: float, by_mtime: bool
) -> ZoneReloader:
    """At start: find the block's ``transfer`` plugin, send NOTIFY for every zone, start the
    reload timer. At stop: stop it."""
    reloader = ZoneReloader(handler, files, interval, by_mtime=by_mtime, reactor=controller.reactor)
    for origin, path in files.items():
        zone = handler.zones.get(origin)
        if zone is not None and by_mtime:
            try:
                reloader.mtimes[origin] = os.stat(path).st_mtime
            except OSError:
                pass

    def start() -> None:
        handler.transfer_handler = find_transfer(controller)
        if handler.transfer_handler is not None:
            for origin in handler.zones:
                handler.notify(origin)
        reloader.start()

    controller.on_startup(start)
    controller.on_shutdown(reloader.stop)
    return reloader
