"""autopath's handler.

A query whose name lies in the first element of the search path is taken for the client's first
try: the rest of the chain is asked for the name with each search element in turn, the last being
none at all, and the first reply that is not NXDOMAIN is the answer, with a CNAME from the name
asked to the name found. When every try fails, the first reply is the answer.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ...dns import NXDOMAIN, Zones, is_subdomain
from ...plugin import Handler
from ...request import Request
from ...response import Response, error_reply, from_message
from .metrics import success

SearchFunc = Callable[[Request], "list[str] | None"]
"""A plugin's search path for one query (``autopath @PLUGIN``); it ends with ``""``."""


def trim_zone(qname: str, zone: str) -> str:
    """CoreDNS's ``dnsutil.TrimZone``: ``qname`` without ``zone`` and the dot before it."""
    labels = [label for label in zone.split(".") if label] if zone != "." else []
    keep = qname.rstrip(".").split(".")
    if len(labels) >= len(keep):
        raise ValueError(f"trimzone: overshot qname: {qname}for zone {zone}")
    return ".".join(keep[: len(keep) - len(labels)])


class AutoPath(Handler):
    name = "autopath"

    def __init__(self, zones: list[str], search: list[str] | None = None) -> None:
        self.zones = Zones(zones)
        self.search = search or []
        self.search_func: SearchFunc | None = None

    def serve(self, request: Request) -> Any:
        if not self.zones.covers(request.name):
            return self.serve_next(request)
        search = self.search if self.search_func is None else (self.search_func(request) or [])
        if not search or not (request.name == search[0] or is_subdomain(request.name, search[0])):
            return self.serve_next(request)
        return self._walk(request, search)

    async def _walk(self, request: Request, search: list[str]) -> Response:
        original = request.qname
        try:
            base = trim_zone(original, search[0])
        except ValueError as exc:
            return error_reply(request, 2, exc)
        first: Response | None = None
        for index, element in enumerate(search):
            asked = f"{base}.{element}" if element else f"{base}."
            response = await self.serve_next(request.replace(qname=asked))
            if index == 0:
                first = response
            if not response.written or response.rcode == NXDOMAIN:
                continue
            success.labels(request.server).inc()
            return self._cnamed(request, original, response)
        assert first is not None
        return first

    def _cnamed(self, request: Request, original: str, response: Response) -> Response:
        import dns.name
        import dns.rdata
        import dns.rdataclass
        import dns.rdatatype
        import dns.rrset

        message = response.message()
        owner = dns.name.from_text(original)
        for rrset in message.answer:
            if rrset.name == owner:  # dnspython compares names case-insensitively
                continue
            cname = dns.rrset.from_rdata(
                owner, rrset.ttl,
                dns.rdata.from_text(dns.rdataclass.IN, dns.rdatatype.CNAME, rrset.name.to_text()),
            )
            message.answer.insert(0, cname)
            break
        if message.question:
            message.question[0].name = owner
        return from_message(request, message, plugin=response.plugin, error=response.error)
