"""dns64's setup: ``dns64 [PREFIX]`` or ``dns64 [PREFIX] { prefix PREFIX; translate_all;
allow_ipv4 }``, with CoreDNS's errors."""

from __future__ import annotations

import ipaddress

from ...corefile.model import Directive, Token
from ...plugin import Controller
from .handler import DNS64


def _prefix(controller: Controller, token: Token | Directive, text: str) -> ipaddress.IPv6Network:
    try:
        if "/" not in text:
            raise ValueError(text)
        network = ipaddress.ip_network(text, strict=False)
    except ValueError:
        raise ValueError(f"invalid CIDR address: {text}") from None
    if network.version != 6:
        raise controller.err(token, f'invalid netmask 32 IPv6 address: "{network}"')
    n = network.prefixlen
    if n % 8 != 0 or n < 32 or n > 96:
        raise controller.err(token, f'invalid prefix length "{network}"')
    assert isinstance(network, ipaddress.IPv6Network)
    return network


def setup(controller: Controller) -> DNS64:
    dns64 = DNS64()
    for directive in controller.directives:
        args = directive.args
        if len(args) > 1:
            raise controller.arg_error(directive)
        if len(args) == 1:
            dns64.prefix = _prefix(controller, args[0], args[0].text)
            # With PREFIX given, CoreDNS does not read the block as one: each of its lines is
            # taken as a directive of its own, so a line with one argument sets the prefix and
            # the options are not set.
            for prop in directive.block or ():
                if len(prop.args) > 1:
                    raise controller.arg_error(prop)
                if len(prop.args) == 1:
                    dns64.prefix = _prefix(controller, prop.args[0], prop.args[0].text)
            continue
        for prop in directive.block or ():
            if prop.name == "prefix":
                if not prop.args:
                    raise controller.arg_error(prop)
                dns64.prefix = _prefix(controller, prop.args[0], prop.args[0].text)
                rest = prop.args[1:]
            elif prop.name == "translate_all":
                dns64.translate_all = True
                rest = prop.args
            elif prop.name == "allow_ipv4":
                dns64.allow_ipv4 = True
                rest = prop.args
            else:
                raise controller.unknown_property(prop)
            if rest:
                # CoreDNS reads a word after an option as the next option.
                raise controller.err(rest[0], f"unknown property '{rest[0].text}'")
    config = controller.config

    def find_top() -> None:
        dns64.top = config.chain

    controller.on_startup(find_top)
    return dns64
