"""loadbalance's setup: ``loadbalance [round_robin | weighted WEIGHTFILE] { reload DURATION;
prefer CIDR [CIDR...] }``, with CoreDNS's errors."""

from __future__ import annotations

import ipaddress
import os

from ...corefile.model import Directive
from ...duration import parse_duration
from ...plugin import Controller
from ...strconv import go_quote
from .handler import LoadBalance
from .reorder import Network
from .weights import WeightFile


def _cidr(controller: Controller, prop: Directive, text: str) -> Network:
    try:
        if "/" not in text:
            raise ValueError(text)
        return ipaddress.ip_network(text, strict=False)
    except ValueError:
        raise controller.err(prop, f"invalid CIDR {go_quote(text)}: invalid CIDR address: {text}") from None


def setup(controller: Controller) -> LoadBalance:
    policy = "round_robin"
    weights: WeightFile | None = None
    prefer: list[Network] = []
    for directive in controller.directives:
        args = directive.values
        block = list(directive.block or ())
        if not args or args[0] == "round_robin":
            # As in CoreDNS, a later plain ``loadbalance`` switches a block back to round robin
            # (the weight file of an earlier ``weighted`` is still read).
            if len(args) > 1:
                raise controller.err(directive.args[1], "unknown property for round_robin")
            policy = "round_robin"
        elif args and args[0] == "weighted":
            if len(args) < 2:
                raise controller.err(directive.args[0], "missing weight file argument")
            if len(args) > 2:
                raise controller.err(directive.args[2], "unexpected argument(s)")
            filename = args[1]
            root = controller.config.root
            if not os.path.isabs(filename) and root:
                filename = os.path.join(root, filename)
            reload = 30.0
            # CoreDNS's weighted policy reads the whole block itself: reload is all it knows
            # there (prefer included is an unknown property).
            for prop in block:
                if prop.name == "reload":
                    if not prop.args:
                        raise controller.err(prop, "reload duration value is missing")
                    if len(prop.args) > 1:
                        raise controller.err(prop.args[1], "unexpected argument")
                    try:
                        reload = parse_duration(prop.values[0])
                    except ValueError:
                        message = f"invalid reload duration '{prop.values[0]}'"
                        raise controller.err(prop.args[0], message) from None
                else:
                    raise controller.unknown_property(prop)
            block = []
            policy = "weighted"
            weights = WeightFile(filename, reload, controller.reactor)
            prefer = []
        else:
            raise ValueError(f"unknown policy: {args[0]}")
        for prop in block:
            if prop.name == "prefer":
                prefer.extend(_cidr(controller, prop, text) for text in prop.values)
            else:
                raise controller.unknown_property(prop)
    balancer = LoadBalance(policy, weights, prefer)
    if weights is not None:
        controller.on_startup(weights.start)
        controller.on_shutdown(weights.stop)
    return balancer
