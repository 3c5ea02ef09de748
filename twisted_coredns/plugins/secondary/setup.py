"""Setup for ``secondary``::

    secondary [ZONES...] {
        transfer from ADDRESS [ADDRESS...]
        catalog [MEMBER-ZONES...]
        fallthrough [ZONES...]
    }

``transfer from`` may be given several times; the primaries are tried in order. When the block
has a ``tsig`` secret, transfers and SOA checks are signed with the first one (hmac-sha256).
"""

from __future__ import annotations

import dns.name
import dns.tsig

from ...corefile.model import Directive
from ...dns.names import normalize
from ...plugin import Controller
from ...strconv import go_quote
from ..transfer.setup import host_port
from .handler import Secondary, log


def _transfer_from(controller: Controller, prop: Directive) -> list[str]:
    """CoreDNS's ``parse.TransferIn``."""
    if not prop.args:
        raise controller.arg_error(prop)
    if prop.args[0].text != "from":
        raise controller.err(prop.args[0], f"unknown property {prop.args[0].text}")
    froms = prop.args[1:]
    if not froms:
        raise controller.arg_error(prop)
    out = []
    for arg in froms:
        if arg.text == "*":
            raise ValueError("can't use '*' in transfer from")
        out.append(host_port(arg.text))
    return out


def setup(controller: Controller) -> Secondary:
    primaries: dict[str, list[str]] = {}
    fall: list[str] = []
    catalogs: list[str] = []
    for directive in controller.directives:
        origins = controller.origins(directive.args)
        for origin in origins:
            primaries.setdefault(origin, [])
        has_transfer = False
        for prop in directive.block or ():
            if prop.name == "transfer":
                froms = _transfer_from(controller, prop)
                for origin in origins:
                    primaries[origin].extend(froms)
                has_transfer = True
            elif prop.name == "catalog":
                for arg in prop.args:
                    if not arg.text.strip("."):
                        raise ValueError(f"invalid catalog member zone {go_quote(arg.text)}")
                    normalize(arg.text)
                catalogs.extend(origins)
            elif prop.name == "fallthrough":
                fall.extend(controller.origins(prop.args) if prop.args else ["."])
            else:
                raise controller.err(prop.token, f"unknown property '{prop.name}'")
        if not has_transfer:
            where = directive.close_brace or directive.last_token()
            raise controller.err(where, "secondary zones require a transfer from property")
    for origin in catalogs:
        log.warning(f"catalog zone {origin}: member zones are not followed (no RFC 9432 consumer here)")
    config = controller.config
    handler = Secondary(primaries, fall=fall, block=config, reactor=controller.reactor)

    def started() -> None:
        named = {getattr(h, "name", ""): h for h in config.handlers}
        handler.transfer_handler = named.get("transfer")
        secrets = config.settings.get("tsig") or {}
        if secrets:
            name, secret = next(iter(secrets.items()))
            handler.key = dns.tsig.Key(dns.name.from_text(name), secret, dns.tsig.HMAC_SHA256)
        handler.start()

    controller.on_startup(started)
    controller.on_shutdown(handler.stop)
    return handler
