"""Reading ``health [ADDRESS] { lameduck DURATION }``.

The default address is ``:8080``; the path is ``/health``. Like CoreDNS, each ``health`` line
reads its address again (the last wins), and errors are CoreDNS's: Go's ``net.SplitHostPort``
text for a bad address, ``unable to parse lameduck duration value: ...`` for a bad duration.
"""

from __future__ import annotations

from typing import Any

from ...corefile.errors import CorefileError
from ...duration import parse_duration
from ...interfaces import IFront
from ...plugin import Controller
from ...server.http import split_host_port
from .endpoint import HealthPage, SelfCheck, lameduck

DEFAULT_ADDRESS = ":8080"
PATH = "/health"


def parse(controller: Controller) -> tuple[str, float]:
    address = ""
    lame = 0.0
    for directive in controller.directives:
        address = controller.host_port_arg(directive, address)
        for prop in directive.block or []:
            if prop.name != "lameduck":
                raise controller.unknown_property(prop)
            if len(prop.args) != 1:
                raise controller.arg_error(prop)
            text = prop.args[0].text
            try:
                lame = parse_duration(text)
            except ValueError as exc:
                raise CorefileError(f"unable to parse lameduck duration value: '{text}' : {exc}") from None
    return address or DEFAULT_ADDRESS, lame


def _url(address: str, port: int) -> str:
    host, _ = split_host_port(address)
    if not host or host in ("0.0.0.0", "::"):
        host = "localhost"
    if ":" in host:
        host = f"[{host}]"
    return f"http://{host}:{port}{PATH}"


def setup(controller: Controller) -> None:
    address, lame = parse(controller)
    reactor = controller.reactor
    running: list[tuple[IFront, HealthPage, SelfCheck]] = []

    def start(front: IFront) -> None:
        page = HealthPage()
        port = front.add_route(address, PATH, page, exclusive=True)
        check = SelfCheck(reactor, _url(address, port))
        check.start()
        running.append((front, page, check))

    def stop() -> Any:
        if running:
            front, page, check = running.pop()
            front.remove_route(address, PATH, page)
            return check.stop()
        return None

    def final_shutdown() -> Any:
        if lame > 0:
            return lameduck(reactor, lame)
        return None

    controller.on_process_start(start)
    controller.on_process_stop(stop)
    controller.on_final_shutdown(final_shutdown)
