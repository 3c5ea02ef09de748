"""twisted-coredns: CoreDNS re-made in Python on Twisted.

The public API for plugin authors and embedders is re-exported here: the plugin factory and the
handler base class, the setup controller, the request and the reply, ``then`` for plugins that
watch the reply, and ``dns`` (numbers, names, zones and record builders). docs/plugin-api.md is the
guide.
"""

from __future__ import annotations

__version__ = "0.1.0"

from . import dns
from .dns import Zones, records
from .interfaces import IFront, IHandler, IPluginFactory, IReady, ITransferer
from .plugin import Controller, Handler, Plugin, PluginBug
from .request import MalformedQuery, Request
from .response import HandlerResult, Response, error_reply, from_message, reply, reply_records, then

__all__ = [
    "Controller",
    "Handler",
    "HandlerResult",
    "IFront",
    "IHandler",
    "IPluginFactory",
    "IReady",
    "ITransferer",
    "MalformedQuery",
    "Plugin",
    "PluginBug",
    "Request",
    "Response",
    "Zones",
    "__version__",
    "dns",
    "error_reply",
    "from_message",
    "records",
    "reply",
    "reply_records",
    "then",
]
