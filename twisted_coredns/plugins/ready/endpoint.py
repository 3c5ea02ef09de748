"""The ``/ready`` page."""

from __future__ import annotations

from typing import Any

from twisted.web.resource import Resource
from twisted.web.server import NOT_DONE_YET

from ...clog import PluginLogger
from ...interfaces import IFront
from ...strconv import go_quote

_log = PluginLogger("ready")

SHUTTING_DOWN = ("lameduck", "stopping")
"""The front's states in which ``/ready`` says ``Shutting down``. While the front is still starting
(the routes are up a moment before the start completes) the plugins are asked as usual."""


class ReadyPage(Resource):
    """200 ``OK``; 503 with the names of the plugins not ready (comma-separated, sorted); 503
    ``Shutting down`` once the server is stopping, lameduck included."""

    isLeaf = True

    def __init__(self, front: IFront) -> None:
        super().__init__()
        self.front = front

    def render(self, request: Any) -> Any:
        request.setHeader(b"content-type", b"text/plain; charset=utf-8")
        if self.front.state in SHUTTING_DOWN:
            request.setResponseCode(503)
            return b"Shutting down"

        def answer(names: list[str]) -> None:
            if request.finished or request._disconnected:
                return
            if self.front.state in SHUTTING_DOWN:
                request.setResponseCode(503)
                request.write(b"Shutting down")
            elif names:
                text = ",".join(names)
                _log.info(f"Plugins not ready: {go_quote(text)}")
                request.setResponseCode(503)
                request.write(text.encode("utf-8"))
            else:
                request.setResponseCode(200)
                request.write(b"OK")
            request.finish()

        def failed(failure: Any) -> None:
            _log.error(f"Readiness check failed: {failure.getErrorMessage()}")
            answer(["ready"])

        self.front.not_ready().addCallbacks(answer, failed)
        return NOT_DONE_YET
