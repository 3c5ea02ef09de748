"""loop: finds a forwarding loop at start-up and stops the process (CoreDNS's plugin/loop).

When the servers start, it asks its own server for ``<random>.<random>.<zone> HINFO`` and counts
how often that exact query comes back through its chain. A loop (forward pointing at ourselves, or
at an upstream that forwards back) brings it back again and again: the third sighting is fatal, as
running on would only multiply queries until memory runs out. Once one probe gets any reply, or
after 30 seconds of trying, the plugin steps aside for good.

Time and sockets come from ``controller.reactor``; the probe itself (``exchange``) and the exit
(``exit``) are attributes, so tests can drive the plugin with a ``Clock``.
"""

from __future__ import annotations

import os
import secrets
import sys
from collections.abc import Callable
from typing import Any

from twisted.internet.defer import Deferred
from twisted.internet.protocol import DatagramProtocol
from twisted.logger import Logger

from ..dns import CLASS_IN, HINFO, RD, Zones, is_response, query_wire
from ..plugin import Controller, Handler
from ..request import Request
from ..strconv import go_quote

PROBE_FOR = 30.0
"""Seconds the probe keeps trying after start-up."""
RETRY_AFTER = 1.0
"""Seconds between a failed probe and the next."""
PROBE_TIMEOUT = 2.0
"""miekg/dns's default read timeout for ``dns.Exchange``."""
MAX_SEEN = 2

_log = Logger(namespace="coredns.plugin.loop")


def _join_host_port(host: str, port: int) -> str:
    """Go's ``net.JoinHostPort``."""
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _random_label() -> str:
    return str(secrets.randbelow(1 << 62))


def probe_name(zone: str) -> str:
    """``<random>.<random>.<zone>``, each label a random 62-bit number."""
    head = f"{_random_label()}.{_random_label()}."
    return head if zone == "." else head + zone


class _Exchange(DatagramProtocol):
    """One UDP query and its reply (``dns.Exchange``)."""

    noisy = False  # no "starting on PORT" lines for a throwaway socket

    def __init__(self, query: bytes, host: str, port: int, done: Deferred[bytes]) -> None:
        self.query = query
        self.host = host
        self.port = port
        self.done = done

    def startProtocol(self) -> None:
        transport: Any = self.transport
        transport.write(self.query, (self.host, self.port))

    def datagramReceived(self, data: bytes, addr: Any) -> None:
        if len(data) >= 12 and data[:2] == self.query[:2] and is_response(data) and not self.done.called:
            self.done.callback(data)


def udp_exchange(
    reactor: Any, query: bytes, host: str, port: int, timeout: float = PROBE_TIMEOUT
) -> Deferred[bytes]:
    """Send ``query`` to ``host:port`` over UDP; fires with the reply, fails on timeout."""
    done: Deferred[bytes] = Deferred()
    listener = reactor.listenUDP(0, _Exchange(query, host, port, done), interface="::" if ":" in host else "")

    def give_up() -> None:
        if not done.called:
            done.errback(TimeoutError(f"read udp {_join_host_port(host, port)}: i/o timeout"))

    timer = reactor.callLater(timeout, give_up)

    def close(result: Any) -> Any:
        if timer.active():
            timer.cancel()
        listener.stopListening()
        return result

    return done.addBoth(close)


def _exit_process(code: int) -> None:
    # log.Fatal: the line is out, nothing else runs (no shutdown hooks, as in Go's os.Exit)
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            pass
    os._exit(code)


class Loop(Handler):
    """Counts the probe query; the third sighting stops the process."""

    name = "loop"

    def __init__(self, zone: str, reactor: Any) -> None:
        self.zone = zone
        self.qname = probe_name(zone)
        self.reactor = reactor
        self.seen = 0
        self.disabled = False
        self.address = ""
        self._zone = Zones([zone])
        self.exchange: Callable[[str, int], Deferred[Any]] = self._udp_exchange
        self.exit: Callable[[int], Any] = _exit_process
        self._deadline = 0.0

    def serve(self, request: Request) -> Any:
        if request.qtype != HINFO or self.disabled:
            return self.serve_next(request)
        name = request.name
        if not self._zone.covers(name):
            return self.serve_next(request)
        if name == self.qname:
            self.seen += 1
        if self.seen > MAX_SEEN:
            remote = _join_host_port(request.remote[0], request.remote[1])
            zone = go_quote(self.zone)
            _log.critical(
                "{coredns_text}",
                coredns_text=(
                    f"plugin/loop: Loop ({remote} -> {self.address}) detected for zone {zone}, "
                    "see https://coredns.io/plugins/loop#troubleshooting. "
                    f'Query: "HINFO {self.qname}"'
                ),
            )
            self.exit(1)
        return self.serve_next(request)

    # -- the probe -------------------------------------------------------------------------------

    def start(self, host: str, port: int) -> None:
        """Begin probing ``host:port`` (soon, not now: start-up must finish first)."""
        self._deadline = self.reactor.seconds() + PROBE_FOR
        self.address = _join_host_port(host, port)
        self.reactor.callLater(0, self._attempt, host, port)

    def _attempt(self, host: str, port: int) -> None:
        if self.disabled:
            return
        if self.reactor.seconds() >= self._deadline:
            self.disabled = True
            return
        self.address = _join_host_port(host, port)
        d = self.exchange(host, port)
        d.addCallbacks(self._answered, self._failed, errbackArgs=(host, port))

    def _answered(self, _reply: Any) -> None:
        self.disabled = True

    def _failed(self, _failure: Any, host: str, port: int) -> None:
        self.seen = 0
        self.reactor.callLater(RETRY_AFTER, self._attempt, host, port)

    def query_wire(self) -> bytes:
        """The probe: a plain HINFO query, RD set, no EDNS (miekg's ``SetQuestion``)."""
        return query_wire(self.qname, HINFO, CLASS_IN, qid=secrets.randbelow(1 << 16), flags=RD)

    def _udp_exchange(self, host: str, port: int) -> Deferred[bytes]:
        target = host
        if host in ("", "0.0.0.0"):
            target = "127.0.0.1"
        elif host == "::":
            target = "::1"
        return udp_exchange(self.reactor, self.query_wire(), target, port)


def setup(controller: Controller) -> Loop:
    directive = controller.directives[0]
    controller.no_args(directive)
    if len(controller.directives) > 1:
        raise ValueError("this plugin can only be used once per Server Block")
    zones = controller.zones
    loop = Loop(zones[0] if zones else ".", controller.reactor)
    config = controller.config

    def probe() -> None:
        # CoreDNS probes ListenHosts[0] on the block's port, the port actually bound here.
        host = config.listen_hosts[0] if config.listen_hosts else ""
        port = config.addresses[0].port if config.addresses else 53
        loop.start(host, config.bound_ports.get(port, port))

    controller.on_startup(probe)
    return loop
