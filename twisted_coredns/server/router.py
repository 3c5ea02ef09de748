"""From a parsed request to a response: EDNS version, class, zone, chain (CoreDNS's ServeDNS).

Synchronous answers stay synchronous: a chain that returns a ``Response`` is answered without a
Deferred. A handler that raises, or whose Deferred fails, gives SERVFAIL and one logged line; the
server keeps serving.
"""

from __future__ import annotations

from typing import Any

from twisted.internet.defer import Deferred
from twisted.logger import Logger, LogLevel
from twisted.python.failure import Failure

from ..config import BlockConfig, ListenGroup
from ..dns.constants import BADVERS, CLASS_IN, DS, REFUSED, SERVFAIL
from ..dns.names import Zones, parent_of
from ..metrics.queries import panics, record_dropped
from ..request import Request
from ..response import Response, error_reply, then

_log = Logger(namespace="coredns")


def _admits(block: BlockConfig, request: Request) -> bool:
    if block.collect_metadata is not None:
        block.collect_metadata(request)
    for accepts in block.filters:
        if not accepts(request):
            return False
    return True


class ZoneRouter:
    """The zones of one listen address and the chains that serve them."""

    def __init__(self, group: ListenGroup) -> None:
        self.address = group.address
        self.table: dict[str, BlockConfig] = group.zone_table()
        # Non-IN classes are refused unless a plugin that answers them is loaded (CoreDNS's
        # EnableChaos, set by chaos, forward and proxy).
        self.enable_chaos = any(b.enable_chaos for b in self.table.values())
        self.pending = 0
        """Queries waiting on a Deferred: a graceful stop waits for them."""
        if group.filtered:
            # Views (or metadata) here: several blocks may serve one zone, each asked in turn.
            # Without them the look-up stays one dict probe per label.
            self.candidates = group.zone_candidates()
            # Names under no zone but the root skip the walk up their labels.
            self.named_zones = Zones([zone for zone in self.candidates if zone != "."])
            self.lookup = self._lookup_filtered  # type: ignore[method-assign]

    def lookup(self, request: Request) -> BlockConfig | None:
        """The longest zone that holds the name; the root zone last. A DS query goes to the most
        general zone that holds it (the parent side of a cut), as CoreDNS routes it."""
        table = self.table
        name = request.name
        ds = request.qtype == DS
        found: BlockConfig | None = None
        found_zone = "."
        # A backslash may escape a dot, which is then no label boundary: such names walk up
        # label by label through parent_of, the rest with a plain find.
        escaped = "\\" in name
        while name != ".":
            block = table.get(name)
            if block is not None:
                if not ds or not block.handlers:
                    request.zone = name
                    return block
                found, found_zone = block, name
            name = parent_of(name) if escaped else (name[name.find(".") + 1 :] or ".")
        if found is not None:
            request.zone = found_zone
            return found
        return table.get(".")

    def _lookup_filtered(self, request: Request) -> BlockConfig | None:
        """CoreDNS's ServeDNS loop over ``s.zones[zone]``: for each zone that holds the name,
        longest first, the first block (in Corefile order) whose metadata is collected and whose
        filters all pass; DS queries keep looking for the most general one; the root zone last."""
        candidates = self.candidates
        name = request.name
        ds = request.qtype == DS
        found: BlockConfig | None = None
        found_zone = "."
        if not self.named_zones.covers(name):
            name = "."
        while name != ".":
            for block in candidates.get(name, ()):
                if not block.handlers:
                    request.zone = name
                    return block
                if _admits(block, request):
                    if not ds:
                        request.zone = name
                        return block
                    found, found_zone = block, name
                    break
            name = parent_of(name)
        if found is not None:
            request.zone = found_zone
            return found
        for block in candidates.get(".", ()):
            if block.handlers and _admits(block, request):
                request.zone = "."
                return block
        return None

    def dispatch(self, request: Request) -> Response | Deferred[Response]:
        """The response for ``request``: a Response now, or a Deferred that never fails."""
        if request.edns_version > 0:
            return error_reply(request, BADVERS)
        if request.qclass != CLASS_IN and not self.enable_chaos:
            return self._dropped(request, REFUSED)
        block = self.lookup(request)
        if block is None or not block.handlers:
            return self._dropped(request, REFUSED)
        try:
            result = block.handlers[0].serve(request)
        except Exception:
            return self._crashed(request, Failure())
        if type(result) is Response:
            return result
        return self._settle(request, result)

    def _settle(self, request: Request, result: Any) -> Response | Deferred[Response]:
        try:
            out = then(result, self._check)
        except Exception:
            return self._crashed(request, Failure())
        if isinstance(out, Deferred):
            self.pending += 1
            return out.addErrback(lambda f: self._crashed(request, f)).addBoth(self._settled)
        return out

    def _settled(self, result: Any) -> Any:
        self.pending -= 1
        return result

    @staticmethod
    def _dropped(request: Request, rcode: int) -> Response:
        """A query no chain serves: answered here, and counted under the zone ``dropped``."""
        response = error_reply(request, rcode)
        record_dropped(request, rcode, response)
        return response

    @staticmethod
    def _check(result: Any) -> Response:
        if isinstance(result, Response):
            return result
        raise TypeError(f"handler returned {type(result).__name__}, not a Response")

    def _crashed(self, request: Request, failure: Failure) -> Response:
        panics.inc()
        _log.failure(
            "plugin chain failed for {qname} {qtype}: {error}",
            failure=failure,
            qname=request.qname,
            qtype=request.type_name,
            error=failure.getErrorMessage(),
            # Logger.failure defaults to critical ([FATAL]); CoreDNS logs a recovered panic as an error.
            level=LogLevel.error,
        )
        response = error_reply(request, SERVFAIL, failure.value)
        # CoreDNS's recover answers through errorAndMetricsFunc: counted under zone "dropped".
        record_dropped(request, SERVFAIL, response)
        return response
