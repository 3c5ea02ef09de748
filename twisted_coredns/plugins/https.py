"""https: options of a block's DNS-over-HTTPS server (CoreDNS's plugin/https).

``https { max_connections N }``: connections open at once on one listener, 200 by default, 0 for
no cap. The value is kept in the block's settings; the DoH server (``server/doh.py``) reads it.
"""

from __future__ import annotations

from ..plugin import Controller
from ..server.doh import MAX_CONNECTIONS
from ..strconv import atoi


def setup(controller: Controller) -> None:
    settings = controller.config.settings
    for directive in controller.directives:
        if directive.args:
            raise controller.arg_error(directive)
        for prop in directive.block or []:
            if prop.name != "max_connections":
                raise controller.err(prop.token, f"unknown property '{prop.name}'")
            if len(prop.args) != 1:
                raise controller.arg_error(prop)
            text = prop.args[0].text
            try:
                value = atoi(text)
            except ValueError as exc:
                message = f"invalid max_connections value '{text}': {exc}"
                raise controller.err(prop.args[0], message) from None
            if value < 0:
                message = f"max_connections must be a non-negative integer: {value}"
                raise controller.err(prop.args[0], message)
            if MAX_CONNECTIONS in settings:
                message = "max_connections already defined for this server block"
                raise controller.err(prop.token, message)
            settings[MAX_CONNECTIONS] = value
