"""trace's setup: ``trace [ENDPOINT-TYPE] [ENDPOINT] { ... }``, with CoreDNS's errors."""

from __future__ import annotations

from typing import Any

from twisted.internet import threads

from ...duration import parse_duration
from ...interfaces import IHandler
from ...plugin import Controller
from ...strconv import atoi, go_quote, parse_uint
from .handler import PluginSpan, Trace
from .tracer import TraceSettings, make_provider

_DEFAULT_ENDPOINTS = {"zipkin": "localhost:9411", "datadog": "localhost:8126"}
_GO_BOOLS = {"1": True, "t": True, "T": True, "TRUE": True, "true": True, "True": True,
             "0": False, "f": False, "F": False, "FALSE": False, "false": False, "False": False}


def normalize_endpoint(endpoint_type: str, endpoint: str) -> str:
    if endpoint_type not in _DEFAULT_ENDPOINTS:
        raise ValueError(f"tracing endpoint type '{endpoint_type}' is not supported")
    endpoint = endpoint or _DEFAULT_ENDPOINTS[endpoint_type]
    if endpoint_type == "zipkin" and "http" not in endpoint:
        endpoint = f"http://{endpoint}/api/v2/spans"
    return endpoint


def _parse_float(text: str) -> float:
    try:
        if text.strip() != text or "_" in text:
            raise ValueError
        return float(text)
    except ValueError:
        raise ValueError(f"strconv.ParseFloat: parsing {go_quote(text)}: invalid syntax") from None


def parse_settings(controller: Controller) -> TraceSettings:
    settings = TraceSettings()
    host = controller.config.listen_hosts[0] if controller.config.listen_hosts else ""
    if host:
        port = controller.config.addresses[0].port
        settings.service_endpoint = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    for directive in controller.directives:
        args = directive.values
        if len(args) > 2:
            raise controller.arg_error(directive)
        endpoint_type = args[0].lower() if len(args) == 2 else "zipkin"
        settings.endpoint_type = endpoint_type
        settings.endpoint = normalize_endpoint(endpoint_type, args[-1] if args else "")
        for prop in directive.block or ():
            values = prop.values
            if prop.name in ("every", "service", "zipkin_max_backlog_size", "zipkin_max_batch_size",
                             "zipkin_max_batch_interval"):
                if len(values) != 1:
                    raise controller.arg_error(prop)
                value = values[0]
                if prop.name == "every":
                    settings.every = parse_uint(value, 64)
                elif prop.name == "service":
                    settings.service = value
                elif prop.name == "zipkin_max_backlog_size":
                    settings.max_backlog_size = atoi(value)
                elif prop.name == "zipkin_max_batch_size":
                    settings.max_batch_size = atoi(value)
                else:
                    settings.max_batch_interval = parse_duration(value)
            elif prop.name == "client_server":
                if len(values) > 1:
                    raise controller.arg_error(prop)
                settings.client_server = True
                if values:
                    if values[0] not in _GO_BOOLS:
                        raise ValueError(f"strconv.ParseBool: parsing {go_quote(values[0])}: invalid syntax")
                    settings.client_server = _GO_BOOLS[values[0]]
            elif prop.name == "datadog_analytics_rate":
                if len(values) > 1:
                    raise controller.arg_error(prop)
                rate = _parse_float(values[0]) if values else 0.0
                if not 0 <= rate <= 1:
                    raise ValueError(f"datadog analytics rate must be between 0 and 1, '{rate:f}' "
                                     "is not supported")
                settings.datadog_analytics_rate = rate
            else:
                raise controller.unknown_property(prop)
    return settings


def setup(controller: Controller) -> Trace:
    settings = parse_settings(controller)
    trace = Trace(None, settings.every, settings.endpoint_type)
    def wrap(handler: IHandler) -> IHandler:
        return PluginSpan(handler, trace)

    controller.config.link_wrapper = wrap
    provider: list[Any] = []

    def start() -> None:
        made = make_provider(settings)
        provider.append(made)
        trace.tracer = made.get_tracer("coredns.trace")

    def stop() -> Any:
        trace.tracer = None
        if provider:
            # shutdown flushes the last batch over HTTP: in a thread, not on the reactor.
            return threads.deferToThread(provider.pop().shutdown)
        return None

    controller.on_startup(start)
    controller.on_shutdown(stop)
    return trace
