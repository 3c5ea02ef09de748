"""``/metrics``: the text exposition of every process, from the front process."""

from __future__ import annotations

from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST
from twisted.web.resource import Resource
from twisted.web.server import NOT_DONE_YET

from ...clog import PluginLogger
from ...interfaces import IFront

_log = PluginLogger("prometheus")


class MetricsPage(Resource):
    isLeaf = True

    def __init__(self, front: IFront) -> None:
        super().__init__()
        self.front = front

    def render_GET(self, request: Any) -> Any:
        def write(body: bytes) -> None:
            if request.finished or request._disconnected:
                return
            request.setHeader(b"content-type", CONTENT_TYPE_LATEST.encode("ascii"))
            request.write(body)
            request.finish()

        def failed(failure: Any) -> None:
            _log.error(f"Failed to collect metrics: {failure.getErrorMessage()}")
            if not request.finished and not request._disconnected:
                request.setResponseCode(500)
                request.write(b"An error has occurred while serving metrics.\n")
                request.finish()

        self.front.metrics().addCallbacks(write, failed)
        return NOT_DONE_YET

    render_HEAD = render_GET
