"""The HTTP listeners of ``health``, ``ready`` and ``prometheus``, one per address, on twisted.web.

CoreDNS opens one listener per plugin and closes it on every reload, before the new
configuration is known to be good (the ``prometheus`` README lists it as a bug). Here a listener
belongs to the process and to an address: the plugins add routes (``/health``, ``/ready``,
``/metrics``) to it, a reload adds the new configuration's routes before it removes the old ones,
so a listener whose address stays is never closed, and one closes when nothing is routed to it.
Two plugins may share an address, as they may not in CoreDNS, where the second bind fails.

Listeners are made with SO_REUSEPORT like CoreDNS's, and have its five-second idle timeout.
"""

from __future__ import annotations

import errno
import socket
from typing import Any

from twisted.internet.defer import Deferred, succeed
from twisted.web.resource import IResource, Resource
from twisted.web.server import Request, Site

from ..clog import PluginLogger
from .sockets import ListenError, adopt_tcp, listen_socket

_log = PluginLogger()

IDLE_TIMEOUT = 5.0
"""CoreDNS's http.Server Read/Write/IdleTimeout for these listeners."""


def split_host_port(address: str) -> tuple[str, str]:
    """Go's ``net.SplitHostPort`` (``:8080``, ``localhost:9153``, ``[::1]:8181``), with its error
    texts: what the plugins' setup checks. The port is not checked here, as Go does not."""

    def bad(why: str) -> ValueError:
        return ValueError(f"address {address}: {why}")

    last = address.rfind(":")
    if last < 0:
        raise bad("missing port in address")
    j = k = 0
    if address.startswith("["):
        end = address.find("]")
        if end < 0:
            raise bad("missing ']' in address")
        if end + 1 == len(address):
            raise bad("missing port in address")
        if end + 1 != last:
            raise bad("too many colons in address" if address[end + 1] == ":" else "missing port in address")
        host = address[1:end]
        j, k = 1, end + 1
    else:
        host = address[:last]
        if ":" in host:
            raise bad("too many colons in address")
    if "[" in address[j:]:
        raise bad("unexpected '[' in address")
    if "]" in address[k:]:
        raise bad("unexpected ']' in address")
    return host, address[last + 1 :]


class _Router(Resource):
    """Dispatches on the exact path, as Go's ServeMux does for a pattern without a trailing
    slash; anything else is its ``404 page not found``."""

    isLeaf = True

    def __init__(self) -> None:
        super().__init__()
        self.routes: dict[bytes, IResource] = {}

    def render(self, request: Request) -> Any:
        resource = self.routes.get(request.path)
        if resource is None:
            request.setResponseCode(404)
            request.setHeader(b"content-type", b"text/plain; charset=utf-8")
            return b"404 page not found\n"
        return resource.render(request)


class _QuietSite(Site):
    noisy = False

    def log(self, request: Any) -> None:
        """No access log: CoreDNS logs nothing per probe, and a probe a second would flood."""


class HTTPListener:
    """One bound address and the routes served on it."""

    def __init__(self, address: str, reactor: Any) -> None:
        self.address = address
        self.reactor = reactor
        self.router = _Router()
        self.site = _QuietSite(self.router, timeout=IDLE_TIMEOUT)
        self.port: Any = None

    def listen(self) -> None:
        host, port = split_host_port(self.address)
        # Go's net.Listen picks a free port for an empty one ("localhost:"), as for "0".
        port = port or "0"
        if not port.isdigit() or int(port) > 65535:
            raise OSError(f"listen tcp: address {port}: invalid port")
        sock = listen_socket(host, int(port), socket.SOCK_STREAM)
        self.port = adopt_tcp(self.reactor, sock, self.site)

    @property
    def bound_port(self) -> int:
        return int(self.port.getHost().port)

    def close(self) -> Deferred[Any]:
        port, self.port = self.port, None
        if port is None:
            return succeed(None)
        return port.stopListening() or succeed(None)


class HTTPListeners:
    """Every HTTP listener of the process, by address."""

    def __init__(self, reactor: Any) -> None:
        self.reactor = reactor
        self.listeners: dict[str, HTTPListener] = {}
        self._owners: dict[tuple[str, str], tuple[object, bool]] = {}
        self._closing: list[Deferred[Any]] = []

    def add_route(
        self, address: str, path: str, resource: IResource, owner: object = None, exclusive: bool = False
    ) -> int:
        """Route ``path`` on ``address`` to ``resource``; return the port bound.

        A route replaces one of a previous configuration (another ``owner``). Within one
        configuration, an ``exclusive`` route (``health``, process-wide in CoreDNS) may not be
        asked for twice on one address: that is CoreDNS's bind error there."""
        key = (address, path)
        previous = self._owners.get(key)
        if previous is not None and owner is not None and previous[0] is owner and (exclusive or previous[1]):
            host, port = split_host_port(address)
            raise ListenError(errno.EADDRINUSE, host, int(port) if port.isdigit() else 0,
                              socket.SOCK_STREAM, "bind")
        listener = self._listener(address)
        listener.router.routes[path.encode("ascii")] = resource
        self._owners[key] = (owner, exclusive)
        return listener.bound_port

    def _listener(self, address: str) -> HTTPListener:
        """The listener of ``address``, listening now if nothing did."""
        listener = self.listeners.get(address)
        if listener is None:
            listener = HTTPListener(address, self.reactor)
            listener.listen()
            self.listeners[address] = listener
        return listener

    def remove_route(self, address: str, path: str, resource: IResource) -> None:
        listener = self.listeners.get(address)
        if listener is None:
            return
        key = path.encode("ascii")
        if listener.router.routes.get(key) is resource:
            del listener.router.routes[key]
            self._owners.pop((address, path), None)
        if not listener.router.routes:
            del self.listeners[address]
            closing = listener.close()
            self._closing.append(closing)

            def closed(result: Any) -> Any:
                self._closing.remove(closing)
                return result

            closing.addBoth(closed)

    def routes(self) -> dict[tuple[str, str], tuple[IResource, object, bool]]:
        """Every route, with its owner: what ``restore`` puts back."""
        out = {}
        for address, listener in self.listeners.items():
            for path, resource in listener.router.routes.items():
                key = (address, path.decode("ascii"))
                owner, exclusive = self._owners.get(key, (None, False))
                out[key] = (resource, owner, exclusive)
        return out

    def restore(self, routes: dict[tuple[str, str], tuple[IResource, object, bool]]) -> None:
        """Put ``routes`` back as they were (a reload whose endpoints failed to start); routes
        added since on other paths stay until their owner removes them."""
        for (address, path), (resource, owner, exclusive) in routes.items():
            listener = self._listener(address)
            listener.router.routes[path.encode("ascii")] = resource
            self._owners[(address, path)] = (owner, exclusive)

    def port_of(self, address: str) -> int | None:
        listener = self.listeners.get(address)
        return listener.bound_port if listener is not None and listener.port is not None else None

    def close(self) -> Deferred[Any]:
        from twisted.internet.defer import DeferredList

        listeners, self.listeners = list(self.listeners.values()), {}
        return DeferredList([listener.close() for listener in listeners] + list(self._closing))


__all__ = ["IDLE_TIMEOUT", "HTTPListener", "HTTPListeners", "split_host_port"]
