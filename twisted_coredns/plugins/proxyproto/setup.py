"""``proxyproto { allow CIDR...; default use|ignore|reject|skip; udp_session_tracking DURATION [MAX] }``.

The policy is stored as ``BlockConfig.settings["proxyproto"]`` (``server.proxyheader.ProxyPolicy``);
the servers of the block's addresses read it when they listen. Errors are CoreDNS's.
"""

from __future__ import annotations

import ipaddress

from ...duration import SECOND, parse_duration_ns
from ...plugin import Controller
from ...server.proxyheader import ProxyPolicy
from ...strconv import atoi

_POLICIES = ("use", "ignore", "reject", "skip")


def _cidr(text: str) -> ipaddress.IPv4Network | ipaddress.IPv6Network:
    """Go's ``net.ParseCIDR``: a prefix length is required; host bits are masked off."""
    try:
        if "/" in text:
            return ipaddress.ip_network(text, strict=False)
    except ValueError:
        pass
    raise ValueError(f"{text}: invalid CIDR address: {text}")


def setup(controller: Controller) -> None:
    settings = controller.config.settings
    if settings.get("proxyproto") is not None:
        raise ValueError("proxy protocol already configured for this server instance")
    policy = ProxyPolicy()
    for directive in controller.directives:
        if directive.args:
            raise controller.arg_error(directive)
        for prop in directive.block or []:
            args = [a.text for a in prop.args]
            if prop.name == "allow":
                for text in args:
                    try:
                        policy.allow.append(_cidr(text))
                    except ValueError as exc:
                        raise ValueError(str(exc)) from None
            elif prop.name == "default":
                if len(args) != 1 or args[0].lower() not in _POLICIES:
                    raise controller.arg_error(prop)
                policy.default = args[0].lower()
            elif prop.name == "udp_session_tracking":
                if not 1 <= len(args) <= 2:
                    raise controller.arg_error(prop)
                try:
                    ns = parse_duration_ns(args[0])
                except ValueError as exc:
                    message = f'udp_session_tracking: invalid duration "{args[0]}": {exc}'
                    raise ValueError(message) from None
                policy.session_ttl = ns / SECOND
                if len(args) == 2:
                    try:
                        n = atoi(args[1])
                    except ValueError:
                        n = 0
                    if n <= 0:
                        message = (f'udp_session_tracking: invalid max sessions "{args[1]}": '
                                   "must be a positive integer")
                        raise ValueError(message)
                    policy.max_sessions = n
            else:
                raise controller.err(prop.token, f"unknown option '{prop.name}'")
    settings["proxyproto"] = policy

