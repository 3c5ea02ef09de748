"""Setup for ``transfer``::

    transfer [ZONE...] {
        to ADDRESS...
        source ADDRESS
    }

``to`` may be given several times; ``*`` lets any client transfer, and the other addresses
(``1.2.3.4``, ``1.2.3.4:5300``, ``[::1]:5300``) get NOTIFY messages. ``source`` is the local
address those are sent from. Several ``transfer`` directives may share a block; a request goes to
the one whose zone matches it most closely. CoreDNS wraps some of these errors in its plugin
prefix twice; so does this, word for word.
"""

from __future__ import annotations

import ipaddress

from ...corefile.model import Directive, Token
from ...interfaces import ITransferer
from ...plugin import Controller, plugin_error
from ...strconv import go_quote
from .handler import Rule, Transfer


def host_port(text: str, default_port: str = "53") -> str:
    """CoreDNS's ``parse.HostPort``: an IP address with a port (``default_port`` when none),
    as Go's ``net.JoinHostPort`` writes it; ``ValueError`` with CoreDNS's text otherwise."""
    from ..forward.addresses import AddressError, join_host_port, split_host_port

    try:
        host, port = split_host_port(text)
    except AddressError:
        if not _is_ip(text):
            raise ValueError(f"must specify an IP address: `{text}'") from None
        return join_host_port(text, default_port)
    if not port:
        port = default_port
    if not _is_ip(host):
        raise ValueError(f"must specify an IP address: `{host}'")
    return join_host_port(host, port)


def _is_ip(text: str) -> bool:
    try:
        ipaddress.ip_address(text.split("%", 1)[0])
    except ValueError:
        return False
    return True


def _twice(controller: Controller, where: Token, message: str) -> Exception:
    # plugin.Error("transfer", c.Err(...)) inside a setup that wraps it again
    return plugin_error("transfer", controller.err(where, message))


def parse_rule(controller: Controller, directive: Directive) -> Rule:
    rule = Rule(controller.origins(directive.args))
    for prop in directive.block or ():
        if prop.name == "to":
            if not prop.args:
                raise controller.arg_error(prop)
            for arg in prop.args:
                rule.to.append("*" if arg.text == "*" else host_port(arg.text))
        elif prop.name == "source":
            if len(prop.args) != 1:
                raise controller.arg_error(prop)
            if rule.source is not None:
                raise _twice(controller, prop.last_token(), "source already specified")
            source = prop.args[0].text
            if not _is_ip(source) or "%" in source:
                raise _twice(controller, prop.last_token(), f"invalid source address {go_quote(source)}")
            rule.source = source
        else:
            raise _twice(controller, prop.token, f"unknown property {go_quote(prop.name)}")
    if not rule.to:
        where = directive.close_brace or directive.last_token()
        raise _twice(controller, where, "'to' is required")
    return rule


def setup(controller: Controller) -> Transfer:
    rules = [parse_rule(controller, d) for d in controller.directives]
    handler = Transfer(rules, controller.reactor)
    config = controller.config

    def find_transferers() -> None:
        handler.transferers = [h for h in config.handlers if ITransferer.providedBy(h)]
        secrets = config.settings.get("tsig") or {}
        if secrets:
            import dns.tsig

            name, secret = next(iter(secrets.items()))
            handler.key = dns.tsig.Key(name, secret, dns.tsig.HMAC_SHA256)

    controller.on_startup(find_transferers)
    controller.on_shutdown(handler.stop)
    return handler
