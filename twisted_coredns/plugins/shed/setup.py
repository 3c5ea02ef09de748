"""shed's setup: ``shed``, with no arguments and no block, in plain DNS server blocks only."""

from __future__ import annotations

from ...address import split_transport
from ...plugin import Controller
from .handler import Shed


def setup(controller: Controller) -> Shed:
    directive = controller.once()
    if directive.args:
        raise controller.arg_error(directive)
    if directive.block is not None:
        where = directive.block[0] if directive.block else directive
        raise controller.err(where, "shed takes no options")
    for key in controller.config.block.keys:
        transport, _rest = split_transport(key.text)
        if transport != "dns":
            raise controller.err(directive, f'only plain DNS server blocks are supported; "{key.text}" uses '
                                            f'transport "{transport}"')
    shed = Shed()
    controller.on_shutdown(shed.shutdown)
    return shed
