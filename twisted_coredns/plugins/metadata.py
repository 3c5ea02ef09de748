"""metadata: collects metadata for every query before the chain runs (CoreDNS's plugin/metadata).

With ``metadata`` in a block, the router calls ``collect`` on each query, before the block's view
filters: the query gets a metadata map (so plugins further on can publish values, and ``log``
prints ``{/LABEL}``), and, when its name is in the plugin's zones, every handler of the block that
provides ``IMetadataProvider`` adds its values. Without ``metadata`` nothing is collected and
``{/LABEL}`` prints ``-``, as in CoreDNS.
"""

from __future__ import annotations

from typing import Any

from zope.interface import Interface, implementer

from ..dns import Zones
from ..interfaces import IHandler
from ..plugin import Controller, Handler
from ..request import Request


class IMetadataProvider(Interface):
    """CoreDNS's ``metadata.Provider``: a handler that sets metadata for each query."""

    def provide_metadata(request: Request) -> None:
        """Set this plugin's labels (``PLUGIN/WHAT``) on ``request``; be quick, it runs for
        every query. A value may be a function, called only when the label is read."""


def is_label(label: str) -> bool:
    """CoreDNS's ``metadata.IsLabel``: a slash, with text on both sides."""
    slash = label.find("/")
    return 0 < slash < len(label) - 1


class Metadata(Handler):
    name = "metadata"

    def __init__(self, zones: list[str]) -> None:
        self.zones = Zones(zones)
        self.providers: list[Any] = []

    def serve(self, request: Request) -> Any:
        nxt = self.next
        return nxt.serve(request) if nxt is not None else self.serve_next(request)

    def collect(self, request: Request) -> None:
        """CoreDNS's ``Collect``: a fresh map for the query, filled by the providers when the
        query's name is in our zones."""
        if request.metadata is None:
            request.metadata = {}
        if self.providers and self.zones.covers(request.name):
            for provider in self.providers:
                provider.provide_metadata(request)

    def find_providers(self, handlers: list[IHandler]) -> None:
        self.providers = [h for h in handlers if IMetadataProvider.providedBy(h)]


def setup(controller: Controller) -> Metadata:
    directive = controller.directives[0]
    # CoreDNS reads one directive and no block: anything after its arguments is an argument error.
    if directive.block is not None:
        raise controller.arg_error(directive.block[0] if directive.block else directive)
    if len(controller.directives) > 1:
        raise controller.arg_error(controller.directives[1])
    config = controller.config
    handler = Metadata(controller.origins(directive.args))
    if config.collect_metadata is None:
        config.collect_metadata = handler.collect
    controller.on_startup(lambda: handler.find_providers(config.handlers))
    return handler


__all__ = ["IMetadataProvider", "Metadata", "implementer", "is_label", "setup"]
