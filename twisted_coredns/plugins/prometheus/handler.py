"""The handler: pass the query on, count the reply (CoreDNS's ``metrics.ServeDNS``)."""

from __future__ import annotations

from typing import Any

from ...metrics.queries import record
from ...plugin import Handler
from ...request import Request
from ...response import Response, then


class Metrics(Handler):
    """Counts every reply of the rest of the chain, by zone, type, rcode and the plugin that
    wrote it. A synchronous answer is counted with no Deferred made."""

    name = "prometheus"

    def __init__(self, view: str = "") -> None:
        self.view = view

    def serve(self, request: Request) -> Any:
        nxt = self.next
        result = nxt.serve(request) if nxt is not None else self.serve_next(request)
        if type(result) is Response:
            record(request, result, self.view)
            return result
        return then(result, lambda response: self._count(request, response))

    def _count(self, request: Request, response: Response) -> Response:
        record(request, response, self.view)
        return response
