"""``acl [ZONES...] { ACTION [type QTYPE...] [net SOURCE...] }``, with CoreDNS's error texts."""

from __future__ import annotations

import ipaddress

from ...corefile.model import Directive
from ...dns import Zones, type_name, type_value
from ...plugin import Controller
from ...strconv import go_quote
from .handler import ACL, ALLOW, BLOCK, DROP, FILTER, Network, Policy, Rule

_ACTIONS = {"allow": ALLOW, "block": BLOCK, "filter": FILTER, "drop": DROP}
_EVERYWHERE: tuple[Network, ...] = (ipaddress.ip_network("0.0.0.0/0"), ipaddress.ip_network("::/0"))


def _is_section(token: str) -> bool:
    return token.lower() in ("type", "net")


def _qtype(controller: Controller, prop: Directive, token: str) -> int:
    """miekg's ``StringToType``: a known mnemonic, exactly as it is written there."""
    try:
        value = type_value(token)
    except ValueError:
        value = -1
    if value < 0 or type_name(value) != token:
        raise controller.err(prop.token, f"unexpected token {go_quote(token)}; expect legal QTYPE")
    return value


def _network(controller: Controller, prop: Directive, token: str) -> Network:
    """Go's ``net.ParseCIDR``, a bare address taken as a /32 or /128."""
    if "/" not in token:
        token += "/128" if ":" in token else "/32"
    address, _, bits = token.partition("/")
    try:
        if not bits.isdigit() or (len(bits) > 1 and bits[0] == "0") or "%" in address:
            raise ValueError(token)
        ip = ipaddress.ip_address(address)
        if int(bits) > ip.max_prefixlen:
            raise ValueError(token)
        network = ipaddress.ip_network(f"{ip}/{bits}", strict=False)
    except ValueError:
        raise controller.err(prop.token, f"illegal CIDR notation {go_quote(token)}") from None
    if isinstance(network, ipaddress.IPv6Network) and network.network_address.ipv4_mapped is not None \
            and network.prefixlen >= 96:
        # Go keeps ::ffff:a.b.c.d/n as an IPv4 network of n-96 bits.
        v4 = ipaddress.ip_network(f"{network.network_address.ipv4_mapped}/{network.prefixlen - 96}")
        return v4
    return network


def _policy(controller: Controller, prop: Directive) -> Policy:
    action = _ACTIONS.get(prop.name.lower())
    if action is None:
        raise controller.err(
            prop.token,
            f"unexpected token {go_quote(prop.name)}; expect 'allow', 'block', 'filter' or 'drop'",
        )
    qtypes: set[int] | None = None
    networks: list[Network] | None = None
    tokens = list(prop.values)
    while tokens:
        if not _is_section(tokens[0]):
            raise controller.err(prop.token, f"unexpected token {go_quote(tokens[0])}; expect 'type | net'")
        section = tokens[0].lower()
        i = 1
        while i < len(tokens) and not _is_section(tokens[i]):
            i += 1
        values, tokens = tokens[1:i], tokens[i:]
        if not values:
            raise controller.err(prop.token, f"no token specified in {go_quote(section)} section")
        if section == "type":
            qtypes = qtypes if qtypes is not None else set()
            for token in values:
                if token == "*":
                    qtypes.add(-1)  # every type (CoreDNS's TypeNone in the set)
                    break
                qtypes.add(_qtype(controller, prop, token))
        else:
            networks = networks if networks is not None else []
            for token in values:
                if token == "*":
                    networks = list(_EVERYWHERE)
                    break
                networks.append(_network(controller, prop, token))
    return Policy(
        action,
        frozenset(qtypes) if qtypes is not None and -1 not in qtypes else None,
        tuple(networks) if networks is not None else _EVERYWHERE,
    )


def setup(controller: Controller) -> ACL:
    rules = []
    for directive in controller.directives:
        zones = Zones(controller.origins(directive.args))
        policies = tuple(_policy(controller, prop) for prop in directive.block or ())
        rules.append(Rule(zones, policies))
    return ACL(rules, controller.config)
