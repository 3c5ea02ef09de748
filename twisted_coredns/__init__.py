"""twisted-coredns: CoreDNS re-made in Python on Twisted.

The public API for plugin authors and embedders is re-exported here.
"""

from __future__ import annotations

__version__ = "0.1.0"

from .interfaces import IHandler, IPluginFactory, IReady
from .plugin import Controller, Handler, Plugin

__all__ = ["Controller", "Handler", "IHandler", "IPluginFactory", "IReady", "Plugin", "__version__"]
