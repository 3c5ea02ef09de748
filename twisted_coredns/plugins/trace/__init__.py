"""trace: a span per traced query and one per plugin it went through, exported to Zipkin
(CoreDNS's plugin/trace, on OpenTelemetry's Python SDK).

- ``setup``: ``trace [ENDPOINT-TYPE] [ENDPOINT] { every; service; client_server;
  datadog_analytics_rate; zipkin_max_backlog_size; zipkin_max_batch_size;
  zipkin_max_batch_interval }``;
- ``tracer``: the OpenTelemetry tracer provider and its Zipkin exporter (a BatchSpanProcessor:
  spans are sent from its own thread, never from the reactor's);
- ``handler``: the ``servedns`` span with CoreDNS's tags, and ``PluginSpan``, the step between
  two plugins that opens a child span named after the plugin (what CoreDNS's
  ``plugin.NextOrFailure`` does while a span is active). Setup sets it as the block's
  ``link_wrapper``; blocks without trace have no such step.
"""
