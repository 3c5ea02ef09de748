"""The OpenTelemetry side of trace: a tracer provider per ``trace`` directive, exporting to Zipkin
(JSON, API v2) through a BatchSpanProcessor, whose thread does the HTTP posts."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from typing import Any

from ...clog import PluginLogger

log = PluginLogger("trace")


@dataclass
class TraceSettings:
    endpoint_type: str = "zipkin"
    endpoint: str = "http://localhost:9411/api/v2/spans"
    service: str = "coredns"
    service_endpoint: str = ""
    """``HOST:PORT`` of the server when ``bind`` names a host (Zipkin's local endpoint)."""
    every: int = 1
    client_server: bool = False
    datadog_analytics_rate: float = 0.0
    max_backlog_size: int = 0
    max_batch_size: int = 0
    max_batch_interval: float = 0.0


def make_provider(settings: TraceSettings) -> Any:
    """The tracer provider; for Zipkin with its exporter attached. A datadog endpoint gets a
    provider that records spans (so ``trace/traceid`` is set) but exports none."""
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider

    provider = TracerProvider(resource=Resource.create({"service.name": settings.service}))
    if settings.endpoint_type != "zipkin":
        log.warning(f"endpoint type '{settings.endpoint_type}' is accepted but not exported: "
                    "spans are made and dropped")
        return provider
    from opentelemetry.exporter.zipkin.json import ZipkinExporter
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    local: dict[str, Any] = {}
    if settings.service_endpoint:
        host, _, port = settings.service_endpoint.rpartition(":")
        host = host.strip("[]")
        try:
            address = ipaddress.ip_address(host)
            local["local_node_ipv6" if address.version == 6 else "local_node_ipv4"] = str(address)
            local["local_node_port"] = int(port)
        except ValueError as exc:
            log.warning(f"build Zipkin endpoint found err: {exc}")
    exporter = ZipkinExporter(endpoint=settings.endpoint, **local)
    backlog = settings.max_backlog_size or 1000
    batch = min(settings.max_batch_size or 100, backlog)
    interval_ms = (settings.max_batch_interval or 1.0) * 1000
    provider.add_span_processor(BatchSpanProcessor(
        exporter, max_queue_size=backlog, max_export_batch_size=batch, schedule_delay_millis=interval_ms,
    ))
    return provider
