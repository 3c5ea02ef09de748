"""The shape shared by ``quic``, ``https3`` and ``grpc_server``: a directive with no arguments
whose block sets a few integer limits of the block's server, each once.

CoreDNS's three setups are the same code with other names: ``strconv.Atoi`` texts, "must be a
positive integer" (quic) or "non-negative" (the others), "X already defined for this server block".
Only the first directive of a block is read, as CoreDNS reads only the first.
"""

from __future__ import annotations

from ..plugin import Controller
from ..strconv import atoi


def read_limits(c: Controller, names: tuple[str, ...], *, positive: bool) -> dict[str, int]:
    """The limits the block sets, by name; the caller fills in its defaults."""
    directive = c.directives[0]
    if directive.args:
        raise c.arg_error(directive.args[-1])
    found: dict[str, int] = {}
    for prop in directive.block or ():
        name = prop.name
        if name not in names:
            raise c.unknown_property(prop)
        if len(prop.args) != 1:
            raise c.arg_error(prop.args[-1] if prop.args else prop.token)
        text = prop.args[0].text
        try:
            value = atoi(text)
        except ValueError as exc:
            raise c.err(prop, f"invalid {name} value '{text}': {exc}") from None
        if positive and value <= 0:
            raise c.err(prop, f"{name} must be a positive integer: {value}")
        if not positive and value < 0:
            raise c.err(prop, f"{name} must be a non-negative integer: {value}")
        if name in found:
            raise c.err(prop, f"{name} already defined for this server block")
        found[name] = value
    return found
