"""One upstream: its cached connections, its failure count and its health probe.

This is CoreDNS's ``pkg/proxy``. Connections are cached per transport (UDP, TCP) and reused while
they are younger than ``max_age`` and were used within ``expire``; ``max_idle_conns`` bounds how
many idle ones are kept. Every lookup in the cache is a hit or a miss in
``coredns_proxy_conn_cache_*``. The dial timeout adapts between 1 s and 30 s as CoreDNS's does.
"""

from __future__ import annotations

from typing import Any

from twisted.internet.defer import Deferred, DeferredList, fail
from twisted.internet.task import LoopingCall

from . import metrics
from .addresses import HTTPS, TLS, split_host_port
from .connection import Connection, StreamConnection, UDPConnection, UpstreamError
from .health import HealthChecker, Probe

DEFAULT_EXPIRE = 10.0
DEFAULT_READ_TIMEOUT = 2.0
MIN_DIAL_TIMEOUT = 1.0
MAX_DIAL_TIMEOUT = 30.0
_AVG_WEIGHT = 4


class Proxy:
    """An upstream at ``addr`` (``host:port``, as CoreDNS prints it) over ``protocol``
    (``dns``, ``tls`` or ``https``)."""

    def __init__(self, addr: str, protocol: str, reactor: Any, proxy_name: str = "forward") -> None:
        self.addr = addr
        host, port = split_host_port(addr)
        self.host = host.partition("%")[0]
        self.port = int(port) if port.isdigit() else 53
        self.protocol = protocol
        self.proxy_name = proxy_name
        self.reactor = reactor
        self.fails = 0
        self.read_timeout = DEFAULT_READ_TIMEOUT
        self.expire = DEFAULT_EXPIRE
        self.max_age = 0.0
        self.max_idle_conns = 0
        self.source_address: str | None = None
        self.tls: Any = None
        """A Twisted client TLS connection creator when ``protocol`` is ``tls``."""
        self.doh: Any = None
        """The DNS-over-HTTPS client when ``protocol`` is ``https``."""
        self.health = HealthChecker(self)
        self.probe = Probe(reactor)
        self._conns: dict[str, list[Connection]] = {"udp": [], "tcp": []}
        self._oneshots: set[Connection] = set()
        self._avg_dial = MAX_DIAL_TIMEOUT / 2
        self._cleanup: LoopingCall | None = None
        self._hits: dict[str, Any] = {}
        self._misses: dict[str, Any] = {}
        self._durations: dict[int, Any] = {}
        self._requests = metrics.requests.labels(addr)
        self.answered = False
        """Some reply came from this upstream, to a query or a health check (readiness)."""

    def __repr__(self) -> str:
        return f"<Proxy {self.protocol}://{self.addr} fails={self.fails}>"

    # -- health --------------------------------------------------------------------------------

    def down(self, max_fails: int) -> bool:
        """More failed checks than ``max_fails`` (0: never down)."""
        return max_fails != 0 and self.fails > max_fails

    def healthcheck(self) -> None:
        """Start probing this upstream, unless a probe already runs."""
        self.probe.do(self.health.check)

    # -- lifecycle -----------------------------------------------------------------------------

    def start(self, hc_interval: float) -> None:
        self.probe.start(hc_interval)
        if self._cleanup is None:
            self._cleanup = LoopingCall(self._expire_idle)
            self._cleanup.clock = self.reactor
            self._cleanup.start(DEFAULT_EXPIRE, now=False)

    def stop(self) -> Deferred[Any]:
        """Stop probing and close every connection; fires when all are closed."""
        waits = [self.probe.stop()]
        if self._cleanup is not None and self._cleanup.running:
            self._cleanup.stop()
        self._cleanup = None
        stopped = UpstreamError("proxy: transport stopped")
        for conns in self._conns.values():
            for conn in list(conns):
                waits.append(conn.close(stopped))
            conns.clear()
        for conn in list(self._oneshots):
            waits.append(conn.close(stopped))
        if self.doh is not None:
            waits.append(self.doh.close())
        return DeferredList(waits, consumeErrors=True)

    # -- the connection cache ------------------------------------------------------------------

    def dial_timeout(self) -> float:
        avg = self._avg_dial
        if avg < MIN_DIAL_TIMEOUT:
            return MIN_DIAL_TIMEOUT
        if avg < MAX_DIAL_TIMEOUT / 2:
            return 2 * avg
        return MAX_DIAL_TIMEOUT

    def _dialed(self, elapsed: float) -> None:
        self._avg_dial += (elapsed - self._avg_dial) / _AVG_WEIGHT

    def _new_connection(self, kind: str, owner: Proxy | None) -> Connection:
        if kind == "udp":
            conn: Connection = UDPConnection(owner, self.host, self.port, self.reactor, self.source_address)
            self._dialed(0.0)
            return conn
        return StreamConnection(
            owner,
            self.host,
            self.port,
            self.reactor,
            tls=self.tls,
            source=self.source_address,
            dial_timeout=self.dial_timeout(),
            on_dialed=self._dialed,
        )

    def dial(self, proto: str) -> tuple[Connection, bool]:
        """A connection for ``proto`` (``udp``/``tcp``; TLS upstreams always use theirs): a
        cached one with room for another query, or a new one."""
        if self.tls is not None:
            proto = "tcp-tls"
        kind = "udp" if proto == "udp" else "tcp"
        conns = self._conns[kind]
        if conns:
            now = self.reactor.seconds()
            i = 0
            while i < len(conns):
                conn = conns[i]
                if now - conn.used > self.expire or (self.max_age and now - conn.created > self.max_age):
                    del conns[i]
                    conn.retire()
                    continue
                if len(conn.liveMessages) < conn.capacity:
                    child = self._hits.get(proto)
                    if child is None:
                        child = metrics.conn_cache_hits.labels(self.proxy_name, self.addr, proto)
                        self._hits[proto] = child
                    child.inc()
                    return conn, True
                i += 1
        child = self._misses.get(proto)
        if child is None:
            child = self._misses[proto] = metrics.conn_cache_misses.labels(self.proxy_name, self.addr, proto)
        child.inc()
        conn = self._new_connection(kind, self)
        conns.append(conn)
        return conn, False

    def discard(self, conn: Connection) -> None:
        conns = self._conns["udp" if conn.kind == "udp" else "tcp"]
        try:
            conns.remove(conn)
        except ValueError:
            self._oneshots.discard(conn)

    def went_idle(self, conn: Connection) -> None:
        """``max_idle_conns``: close a connection that would be one idle connection too many."""
        conns = self._conns["udp" if conn.kind == "udp" else "tcp"]
        idle = sum(1 for c in conns if not c.liveMessages)
        if idle > self.max_idle_conns:
            conns.remove(conn)
            conn.retire()

    def _expire_idle(self) -> None:
        now = self.reactor.seconds()
        for conns in self._conns.values():
            for conn in list(conns):
                stale = now - conn.used > self.expire or (self.max_age and now - conn.created > self.max_age)
                if stale and not conn.liveMessages:
                    conns.remove(conn)
                    conn.retire()

    # -- exchanges -----------------------------------------------------------------------------

    def exchange(self, wire: bytes, proto: str) -> Deferred[bytes]:
        """Send a query's bytes over ``proto``; the reply's bytes (with our ID) or a failure."""
        if self.protocol == HTTPS:
            return self.doh.exchange(wire)
        try:
            conn, _cached = self.dial(proto)
        except OSError as exc:
            return fail(UpstreamError(exc.strerror or str(exc)))
        return conn.relay(wire, self.read_timeout)

    def probe_exchange(self, wire: bytes, tcp: bool, timeout: float) -> Deferred[bytes]:
        """A health check's exchange, on a connection of its own (as miekg's ``Exchange``)."""
        if self.protocol == HTTPS:
            return self.doh.exchange(wire, timeout)
        kind = "tcp" if (tcp or self.protocol == TLS) else "udp"
        try:
            conn = self._new_connection(kind, None)
        except OSError as exc:
            return fail(UpstreamError(exc.strerror or str(exc)))
        self._oneshots.add(conn)
        d = conn.relay(wire, timeout)

        def _done(result: Any) -> Any:
            self._oneshots.discard(conn)
            conn.close()
            return result

        return d.addBoth(_done)

    def observe(self, rcode: int, seconds: float) -> None:
        """``coredns_proxy_request_duration_seconds{proxy_name, to, rcode}``."""
        child = self._durations.get(rcode)
        if child is None:
            from ...dns import rcode_name

            name = rcode_name(rcode)
            label = name if not name.startswith("RCODE") else str(rcode)
            child = metrics.request_duration.labels(self.proxy_name, self.addr, label)
            self._durations[rcode] = child
        child.observe(seconds)
        self._requests.inc()
        self.answered = True

