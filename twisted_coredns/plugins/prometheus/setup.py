"""Reading ``prometheus [ADDRESS] { runtime_metrics }``, once per server block.

The default address is ``localhost:9153``; an address is checked as Go's ``net.SplitHostPort``
checks it, with its error text. Several blocks may name the same address: one listener serves them.
"""

from __future__ import annotations

from typing import Any

from prometheus_client import GC_COLLECTOR, PLATFORM_COLLECTOR, PROCESS_COLLECTOR

from ...config import BlockConfig
from ...interfaces import IFront
from ...metrics import PROCESS_REGISTRY
from ...metrics.queries import plugin_enabled, set_build_info
from ...plugin import Controller
from .endpoint import MetricsPage
from .handler import Metrics

DEFAULT_ADDRESS = "localhost:9153"
PATH = "/metrics"

# What Go's client exports by default (go_*, process_*) has its Python counterpart here.
PROCESS_REGISTRY.register(PROCESS_COLLECTOR)
PROCESS_REGISTRY.register(PLATFORM_COLLECTOR)
_runtime_metrics = False

_enabled: dict[tuple[str, str, str, str], int] = {}
"""coredns_plugin_enabled label sets, counted by the configurations that set them: a reload
starts the new configuration before it stops the old one."""


def _enable_runtime_metrics() -> None:
    """``runtime_metrics``: the garbage collector's families too. A process-wide latch, as in
    CoreDNS: once on, it stays on until the process ends."""
    global _runtime_metrics
    if not _runtime_metrics:
        PROCESS_REGISTRY.register(GC_COLLECTOR)
        _runtime_metrics = True


def parse(controller: Controller) -> tuple[str, bool]:
    directive = controller.once()
    address = controller.host_port_arg(directive, DEFAULT_ADDRESS)
    runtime = False
    for prop in directive.block or []:
        if prop.name == "runtime_metrics":
            if prop.args:
                raise controller.arg_error(prop.args[-1])
            if prop.open_brace is not None:
                # Caddy's RemainingArgs stops at a '{', which the block loop then reads as an option.
                raise controller.err(prop.open_brace, "unknown option: {")
            runtime = True
        else:
            raise controller.err(prop.token, f"unknown option: {prop.name}")
    return address, runtime


def _labels(config: BlockConfig) -> list[tuple[str, str, str, str]]:
    from ...config import format_listen_address

    view = config.settings.get("view", "")
    out = []
    for host in config.listen_hosts:
        for addr in config.addresses:
            server = format_listen_address(addr.transport, host, addr.port)
            for handler in config.handlers:
                out.append((server, addr.zone, view, handler.name))
    return out


def setup(controller: Controller) -> Metrics:
    address, runtime = parse(controller)
    if runtime:
        _enable_runtime_metrics()
    config = controller.config
    page: list[MetricsPage] = []
    labels: list[tuple[str, str, str, str]] = []

    def start(front: IFront) -> None:
        set_build_info()
        page[:] = [MetricsPage(front)]
        front.add_route(address, PATH, page[0])
        labels[:] = _labels(config)
        for values in labels:
            _enabled[values] = _enabled.get(values, 0) + 1
            plugin_enabled.labels(*values).set(1)

    def stop() -> Any:
        for values in labels:
            _enabled[values] -= 1
            if not _enabled[values]:
                del _enabled[values]
                plugin_enabled.remove(*values)
        labels.clear()
        if page:
            frontless = page.pop()
            frontless.front.remove_route(address, PATH, frontless)

    controller.on_process_start(start)
    controller.on_process_stop(stop)
    metrics = Metrics(view=config.settings.get("view", ""))
    # view is set up after prometheus (plugin.cfg order): its name is known once the block is.
    controller.on_startup(lambda: setattr(metrics, "view", config.view_name))
    return metrics
