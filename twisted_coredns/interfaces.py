"""The zope interfaces a plugin provides.

A plugin is found by its factory (``IPluginFactory``, itself an ``IPlugin`` so that
``twisted.plugin.getPlugins`` finds it in any ``twisted/plugins/`` dropin). The factory's ``setup``
reads the plugin's directives of one server block and returns the handler (``IHandler``) that joins
that block's chain, or None for plugins that only configure the server (``root``, ``bind``, ...).
"""

from __future__ import annotations

from typing import Any

from twisted.plugin import IPlugin
from zope.interface import Attribute, Interface


class IPluginFactory(IPlugin):
    """A directive and the code that sets it up."""

    name = Attribute("The directive name used in a Corefile, e.g. 'whoami'.")
    order = Attribute(
        "Where a plugin that is not in CoreDNS's plugin.cfg runs: ('before' | 'after', NAME), NAME "
        "being another plugin. None for the names plugin.cfg lists."
    )
    description = Attribute("One line for `-plugins` listings.")

    def setup(controller: Any) -> Any:
        """Read ``controller.directives`` (every occurrence of this directive in one server block)
        and return an ``IHandler`` or None. Raise ``CorefileError`` (``controller.err``,
        ``controller.arg_error``) for bad input."""


class IHandler(Interface):
    """One link of a server block's plugin chain."""

    name = Attribute("The plugin name (the metrics 'plugin' label).")
    next = Attribute("The next handler of the chain, or None; set by the framework.")

    def serve(request: Any) -> Any:
        """Answer ``request``: return a ``Response``, a Deferred firing with one, or a coroutine.
        A ``Handler`` passes the query on with ``return self.serve_next(request)`` (SERVFAIL when
        there is no next plugin), and acts on the reply of the rest of the chain with ``return
        self.serve_next_then(request, callback)``."""


class IReady(Interface):
    """A plugin that is not ready at once (the ``ready`` plugin asks it)."""

    def ready() -> bool:
        """True once the plugin can serve."""
