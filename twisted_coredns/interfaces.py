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
    """A plugin that is not ready at once (the ``ready`` plugin asks it, in every process).

    A handler that provides it is asked by ``/ready`` until it says True (or at every request,
    with ``monitor continuously``): ``forward`` before its first healthy upstream, a zone-serving
    plugin before its zone has loaded."""

    def ready() -> bool:
        """True once the plugin can serve."""


class IFront(Interface):
    """The process that owns the listening sockets and the HTTP endpoints: the only process, or
    the multisocket master. Process-wide plugins (``health``, ``ready``, ``prometheus``,
    ``reload``) get it in their ``Controller.on_process_start`` hook; workers never run those."""

    reactor = Attribute("The reactor the front runs on.")
    state = Attribute("'starting', 'serving', 'lameduck' or 'stopping'.")
    starting = Attribute("The Instance whose process hooks are running now (None outside them).")
    last_reload_error = Attribute("The error of the last reload that failed, as text.")

    def corefile_source() -> tuple[str, str]:
        """The Corefile as the server's loader reads it now: ``(text, filename)``."""

    def add_route(address: str, path: str, resource: Any, exclusive: bool = False) -> int:
        """Serve ``resource`` (a twisted.web ``IResource``) at ``path`` on the HTTP listener of
        ``address`` (``host:port``), listening there if nothing does yet; return the port bound.
        Raises ``OSError`` (a ``ListenError``) when the address cannot be bound, or when the
        route is ``exclusive`` and this configuration already asked for it."""

    def remove_route(address: str, path: str, resource: Any) -> None:
        """Stop serving ``resource`` at ``path`` (nothing happens if another resource took the
        path since); the listener closes when it serves nothing."""

    def not_ready() -> Any:
        """A Deferred list of the names of the plugins that are not ready, over every process
        (a worker not yet serving counts as ``multisocket``)."""

    def metrics() -> Any:
        """A Deferred of the Prometheus text exposition of every process's metrics, summed."""

    def reload(trigger: str) -> Any:
        """Re-read the Corefile and switch to it with nothing lost; a Deferred True on success,
        False on failure (the running configuration keeps serving, the error is logged and kept
        in ``last_reload_error``), None when nothing was tried because another reload is under
        way or the server has not started."""


class ITransferer(Interface):
    """A plugin that can hand out a zone's records for a zone transfer (``file``, ``auto``,
    ``secondary``). The ``transfer`` plugin finds the handlers of its block that provide it and
    asks each in turn; the first that does not answer None serves the transfer."""

    def transfer(zone: str, serial: int) -> Any:
        """The records of ``zone`` (lower case, fully qualified) for a transfer, as a list of
        dnspython ``RRset``: every record of the zone, SOA first (the transfer plugin adds the
        trailing SOA of an AXFR); ``[soa]`` alone when ``serial`` is at or above the zone's current
        serial (the IXFR answer "you are up to date", as CoreDNS gives it; pass -1 for an AXFR);
        None when this plugin is not authoritative for ``zone`` (or the zone has not loaded or has
        expired)."""
