"""Setup for ``auto``: CoreDNS's syntax and errors.

::

    auto [ZONES...] {
        directory DIR [REGEXP ORIGIN_TEMPLATE]
        reload DURATION
    }

The default pattern is ``db\\.(.*)`` with the template ``{1}``: ``db.example.org`` serves
``example.org.``.
"""

from __future__ import annotations

import os
import re

from ...clog import PluginLogger
from ...duration import parse_duration
from ...goregexp import GoRegexpError, compile_go
from ...plugin import Controller
from ..file.setup import find_transfer
from .handler import Auto, template_from_corefile

log = PluginLogger("auto")

_MAX_REGEXP_LEN = 10000
DEFAULT_RELOAD = 60.0


def setup(controller: Controller) -> Auto:
    directory = ""
    pattern = re.compile(r"db\.(.*)")
    template = "${1}"
    reload: float | None = None
    origins: list[str] = []
    root = controller.config.root
    for directive in controller.directives:
        origins = controller.origins(list(directive.args))
        for prop in directive.block or ():
            name = prop.name
            args = list(prop.args)
            if name == "directory":
                if not args:
                    raise controller.arg_error(prop)
                directory = args[0].text
                if not os.path.isabs(directory) and root:
                    directory = os.path.join(root, directory)
                try:
                    os.stat(directory)
                except FileNotFoundError:
                    log.warning(f"Directory does not exist: {directory}")
                except OSError as exc:
                    reason = (exc.strerror or str(exc)).lower()
                    raise controller.err(
                        args[0], f"Unable to access root path '{directory}': stat {directory}: {reason}"
                    ) from None
                if len(args) > 1:
                    text = args[1].text
                    if len(text) > _MAX_REGEXP_LEN:
                        raise controller.err(args[1], "regexp too large")
                    try:
                        compiled = re.compile(compile_go(text).python)
                    except GoRegexpError as exc:
                        raise ValueError(str(exc)) from None
                    if compiled.groups == 0:
                        raise controller.err(args[1], "Need at least one sub expression")
                    if len(args) < 3:
                        raise controller.arg_error(args[1])
                    pattern = compiled
                    template = template_from_corefile(args[2].text)
                if len(args) > 3:
                    raise controller.arg_error(args[3])
            elif name == "reload":
                if not prop.values:
                    raise ValueError("reload duration value is expected")
                try:
                    seconds = parse_duration(prop.values[0])
                except ValueError as exc:
                    raise ValueError(f"plugin/file: {exc}") from None
                if seconds < 0:
                    raise ValueError("plugin/file: invalid duration")
                reload = seconds
            elif name == "upstream":
                continue
            else:
                raise controller.unknown_property(prop)

    handler = Auto(
        origins,
        directory,
        pattern,
        template,
        DEFAULT_RELOAD if reload is None else reload,
        block=controller.config,
        reactor=controller.reactor,
    )

    def start() -> object:
        handler.transfer_handler = find_transfer(controller)
        return handler.start()

    controller.on_startup(start)
    controller.on_shutdown(handler.stop)
    return handler
