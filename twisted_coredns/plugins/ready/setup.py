"""Reading ``ready [ADDRESS] { monitor until-ready|continuously }``, once per server block.

The default address is ``:8181``; the path is ``/ready``. ``until-ready`` (the default) stops
asking a plugin once it said ready; ``continuously`` asks at every request. Blocks that name the
same address share one listener.
"""

from __future__ import annotations

from typing import Any

from ...interfaces import IFront
from ...plugin import Controller
from .endpoint import ReadyPage

DEFAULT_ADDRESS = ":8181"
PATH = "/ready"
MONITOR_TYPES = ("until-ready", "continuously")


def parse(controller: Controller) -> tuple[str, str]:
    directive = controller.directives[0]
    address = controller.host_port_arg(directive, DEFAULT_ADDRESS)
    monitor = "until-ready"
    for prop in directive.block or []:
        if prop.name != "monitor":
            raise controller.unknown_property(prop)
        if len(prop.args) != 1:
            raise controller.arg_error(prop)
        monitor = prop.args[0].text
        if monitor not in MONITOR_TYPES:
            raise controller.err(prop.args[0], f"monitor type '{monitor}' not supported")
    # After the first directive is read: CoreDNS finds a mistake in it before the second one.
    controller.once()
    return address, monitor


def setup(controller: Controller) -> None:
    address, monitor = parse(controller)
    config = controller.config
    config.watch_ready = True
    config.settings["ready.monitor"] = monitor
    pages: list[ReadyPage] = []

    def start(front: IFront) -> None:
        page = ReadyPage(front)
        front.add_route(address, PATH, page)
        pages.append(page)

    def stop() -> Any:
        if pages:
            page = pages.pop()
            page.front.remove_route(address, PATH, page)

    controller.on_process_start(start)
    controller.on_process_stop(stop)
