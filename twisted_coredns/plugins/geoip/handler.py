"""geoip's handler: a metadata provider that looks the query's address up and sets the
``geoip/...`` metadata; as a handler it passes every query on.

As in CoreDNS, the values are set by the *metadata* plugin's collection, before the server block
is chosen, so a *view* expression can read them (``metadata('geoip/country/code')``) and log
prints them (``{/geoip/city/name}``); without *metadata* in the block nothing is looked up.
"""

from __future__ import annotations

import ipaddress
from typing import Any

from zope.interface import implementer

from ...clog import PluginLogger
from ...plugin import Handler
from ...request import Request
from ..metadata import IMetadataProvider
from .database import ASN, CITY, asn_metadata, city_metadata

log = PluginLogger("geoip")

_ECS = 8
"""The EDNS0 client subnet option (RFC 7871)."""


def client_subnet(options: bytes) -> str | None:
    """The address of the first client subnet option among EDNS ``options``, or None."""
    off = 0
    while off + 4 <= len(options):
        code = int.from_bytes(options[off:off + 2], "big")
        length = int.from_bytes(options[off + 2:off + 4], "big")
        data = options[off + 4:off + 4 + length]
        off += 4 + length
        if code != _ECS or len(data) < 4:
            continue
        family = int.from_bytes(data[:2], "big")
        address = data[4:]
        if family == 1 and len(address) <= 4:
            return str(ipaddress.IPv4Address(address.ljust(4, b"\0")))
        if family == 2 and len(address) <= 16:
            return str(ipaddress.IPv6Address(address.ljust(16, b"\0")))
        log.debug(f"Failed to parse EDNS0 subnet address {address!r}")
        return None
    return None


@implementer(IMetadataProvider)
class GeoIP(Handler):
    name = "geoip"

    def __init__(self, reader: Any, provides: int, edns_subnet: bool = False) -> None:
        self.reader = reader
        self.provides = provides
        self.edns_subnet = edns_subnet

    def serve(self, request: Request) -> Any:
        return self.serve_next(request)

    def provide_metadata(self, request: Request) -> None:
        self.set_metadata(request)

    def set_metadata(self, request: Request) -> None:
        ip = request.remote[0]
        if self.edns_subnet and request.edns_options:
            ip = client_subnet(request.edns_options) or ip
        try:
            record = self.reader.get(ip)
        except ValueError as exc:
            log.debug(f"Setting up metadata failed due to database lookup error: {exc}")
            return
        if not isinstance(record, dict):
            # geoip2-golang decodes a missing record into empty structs: every label is empty.
            record = {}
        values: dict[str, str] = {}
        if self.provides & CITY:
            values.update(city_metadata(record))
        if self.provides & ASN:
            values.update(asn_metadata(record))
        for key, value in values.items():
            request.set_metadata(key, value)

    def close(self) -> None:
        self.reader.close()
