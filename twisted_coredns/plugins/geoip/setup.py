"""geoip's setup: ``geoip DBFILE`` or ``geoip DBFILE { edns-subnet }``."""

from __future__ import annotations

from ...plugin import Controller
from ...strconv import go_quote
from .database import open_database
from .handler import GeoIP


def setup(controller: Controller) -> GeoIP:
    path = ""
    edns_subnet = False
    for directive in controller.directives:
        if not directive.args:
            raise controller.arg_error(directive)
        if path:
            raise controller.err(directive.args[0], "configuring multiple databases is not supported")
        path = directive.args[0].text
        if len(directive.args) > 1:
            raise controller.arg_error(directive)
        for prop in directive.block or ():
            if prop.name != "edns-subnet":
                raise controller.err(prop, f"unknown property {go_quote(prop.name)}")
            edns_subnet = True
    try:
        reader, provides = open_database(path)
    except ValueError as exc:
        raise controller.err(controller.directives[-1].last_token(), str(exc)) from None
    geoip = GeoIP(reader, provides, edns_subnet)
    controller.on_shutdown(geoip.close)
    return geoip
