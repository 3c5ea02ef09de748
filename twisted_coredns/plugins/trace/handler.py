"""trace's handlers: the root span of a query, and the span of each plugin after it."""

from __future__ import annotations

from typing import Any

from twisted.python.failure import Failure
from zope.interface import implementer

from ...dns import rcode_name
from ...interfaces import IHandler
from ...plugin import Handler
from ...request import Request
from ...response import Response, then

SPAN_KEY = "trace/.span"
"""The request's current span, in its metadata: plugins of one query share it."""
TRACE_ID_KEY = "trace/traceid"

_FIELDS = ("name", "type", "rcode", "proto", "remote")
TAGS = {
    "zipkin": tuple(f"coredns.io/{field}" for field in _FIELDS),
    "datadog": tuple(f"coredns.io@{field}" for field in _FIELDS),
}
ROOT_SPAN = "servedns"


class Trace(Handler):
    name = "trace"

    def __init__(self, tracer: Any, every: int = 1, endpoint_type: str = "zipkin") -> None:
        self.tracer = tracer
        """An OpenTelemetry tracer, or None until the server starts."""
        self.every = every
        self.count = 0
        self.tags = TAGS.get(endpoint_type, TAGS["zipkin"])

    def serve(self, request: Request) -> Any:
        should_trace = False
        if self.every > 0:
            self.count += 1
            should_trace = self.count % self.every == 0
        if not should_trace or self.tracer is None or request.get_metadata(SPAN_KEY) is not None:
            return self.serve_next(request)
        from opentelemetry.trace import SpanKind

        span = self.tracer.start_span(ROOT_SPAN, kind=SpanKind.SERVER)
        request.set_metadata(TRACE_ID_KEY, f"{span.get_span_context().trace_id:032x}")
        request.set_metadata(SPAN_KEY, span)
        name, qtype, rcode, proto, remote = self.tags
        span.set_attribute(name, request.name)
        span.set_attribute(qtype, request.type_name)
        span.set_attribute(proto, request.proto)
        span.set_attribute(remote, request.ip)

        def finished(response: Response) -> Response:
            span.set_attribute(rcode, rcode_name(response.rcode))
            if response.error is not None:
                _mark_error(span, str(response.error))
            span.end()
            request.set_metadata(SPAN_KEY, None)
            return response

        def failed(failure: Failure) -> Failure:
            span.set_attribute(rcode, "SERVFAIL")
            _mark_error(span, failure.getErrorMessage())
            span.end()
            request.set_metadata(SPAN_KEY, None)
            return failure

        return self.serve_next_then(request, finished, failed)


def _mark_error(span: Any, message: str) -> None:
    # OpenTracing's error convention, as CoreDNS's zipkin tracer reports it.
    span.set_attribute("error", True)
    span.add_event("error", {"error.object": message})


@implementer(IHandler)
class PluginSpan:
    """The step to one plugin: a child span named after it while the query is traced; a plain
    call otherwise."""

    def __init__(self, handler: IHandler, trace: Trace) -> None:
        self.handler = handler
        self.trace = trace
        self.name = handler.name

    @property
    def next(self) -> Any:
        return self.handler.next

    @next.setter
    def next(self, value: Any) -> None:
        self.handler.next = value

    def serve(self, request: Request) -> Any:
        parent = request.get_metadata(SPAN_KEY)
        if parent is None:
            return self.handler.serve(request)
        from opentelemetry.trace import set_span_in_context

        tracer = self.trace.tracer
        span = tracer.start_span(self.name, context=set_span_in_context(parent))
        request.set_metadata(SPAN_KEY, span)

        def done(response: Response) -> Response:
            span.end()
            request.set_metadata(SPAN_KEY, parent)
            return response

        def failed(failure: Failure) -> Failure:
            _mark_error(span, failure.getErrorMessage())
            span.end()
            request.set_metadata(SPAN_KEY, parent)
            return failure

        try:
            result = self.handler.serve(request)
        except Exception:
            return failed(Failure())
        return then(result, done, failed)
