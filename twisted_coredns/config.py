"""Server blocks made concrete: each block's zones, settings and plugin chain, grouped by the
address they listen on.

This is CoreDNS's ``dnsserver.Config`` split in two: settings a plugin changes apply to the whole
block (CoreDNS copies them from the block's first key to the others), so they live once in
``BlockConfig``; a ``ListenGroup`` is one ``transport://host:port`` with the zones it serves, in
Corefile order.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from .address import ZoneAddress
from .corefile.errors import CorefileError
from .corefile.model import ServerBlock
from .interfaces import IHandler


@dataclass(eq=False)
class BlockConfig:
    """One server block, set up."""

    index: int
    block: ServerBlock
    addresses: list[ZoneAddress]
    listen_hosts: list[str] = field(default_factory=lambda: [""])
    debug: bool = False
    root: str = ""
    num_sockets: int = 0
    enable_chaos: bool = False
    handlers: list[IHandler] = field(default_factory=list)
    plugins: list[str] = field(default_factory=list)
    startup: list[Callable[[], Any]] = field(default_factory=list)
    shutdown: list[Callable[[], Any]] = field(default_factory=list)
    process_start: list[Callable[[Any], Any]] = field(default_factory=list)
    process_stop: list[Callable[[], Any]] = field(default_factory=list)
    final_shutdown: list[Callable[[], Any]] = field(default_factory=list)
    watch_ready: bool = False
    """The ``ready`` plugin is in this block: its plugins' readiness counts for ``/ready``."""
    settings: dict[str, Any] = field(default_factory=dict)
    """Plugin-owned, block-wide values (a plugin keys them by its name)."""
    bound_ports: dict[int, int] = field(default_factory=dict)
    """Port in the Corefile -> port actually bound (they differ for port 0), filled in when the
    servers bind; plugins that talk to their own server (loop) read it at startup."""
    filters: list[Callable[[Any], bool]] = field(default_factory=list)
    """CoreDNS's FilterFuncs (set by ``view``): the block serves a query only if each passes."""
    view_name: str = ""
    """The name of the block's view (the ``view`` label of the metrics), "" without one."""
    collect_metadata: Callable[[Any], None] | None = None
    """CoreDNS's metaCollector (set by ``metadata``): run on a query before the filters."""

    @property
    def zones(self) -> list[str]:
        seen: dict[str, None] = {}
        for a in self.addresses:
            seen.setdefault(a.zone, None)
        return list(seen)

    @property
    def chain(self) -> IHandler | None:
        return self.handlers[0] if self.handlers else None

    link_wrapper: Callable[[IHandler], IHandler] | None = None
    """Set by a plugin that must see every step of the chain (trace's span per plugin, as
    CoreDNS's ``plugin.NextOrFailure`` makes one): each ``next`` is ``link_wrapper(handler)``.
    None (the usual case) leaves the chain as it is, at no cost per query."""

    def link(self) -> None:
        """Point each handler at the next (CoreDNS builds the same chain from plugin.cfg order)."""
        wrap = self.link_wrapper
        for current, nxt in zip(self.handlers, [*self.handlers[1:], None], strict=False):
            current.next = nxt if wrap is None or nxt is None else wrap(nxt)


def format_listen_address(transport: str, host: str, port: int) -> str:
    """``dns://:53``, ``dns://127.0.0.1:53``, ``dns://[::1]:53`` (Go's ``JoinHostPort``)."""
    if ":" in host:
        host = f"[{host}]"
    return f"{transport}://{host}:{port}"


@dataclass(eq=False)
class ListenGroup:
    """Everything served on one listen address."""

    transport: str
    host: str
    port: int
    entries: list[tuple[ZoneAddress, BlockConfig]] = field(default_factory=list)

    @property
    def address(self) -> str:
        return format_listen_address(self.transport, self.host, self.port)

    @property
    def num_sockets(self) -> int:
        """The first block that binds this address decides (CoreDNS's ``group[0].NumSockets``)."""
        first = self.entries[0][1].num_sockets
        return first if first > 0 else 1

    def zone_table(self) -> dict[str, BlockConfig]:
        table: dict[str, BlockConfig] = {}
        for addr, block in self.entries:
            table.setdefault(addr.zone, block)
        return table

    @property
    def filtered(self) -> bool:
        """Some block here has a view or collects metadata: routing must ask each block in turn."""
        return any(b.filters or b.collect_metadata is not None for _a, b in self.entries)

    def zone_candidates(self) -> dict[str, list[BlockConfig]]:
        """Every block serving each zone, in Corefile order (CoreDNS's ``s.zones[zone]``)."""
        table: dict[str, list[BlockConfig]] = {}
        for addr, block in self.entries:
            blocks = table.setdefault(addr.zone, [])
            if block not in blocks:
                blocks.append(block)
        return table


def _listen_host(host: str) -> str:
    """A bound host as Go's ``ResolveTCPAddr`` prints it, so ``::1`` and ``0::1`` are one listener
    (and ``::ffff:127.0.0.1`` is ``127.0.0.1``); a link-local zone is kept."""
    if not host:
        return host
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        return host
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return str(ip.ipv4_mapped)
    return str(ip)


def group_by_listen_address(blocks: list[BlockConfig]) -> list[ListenGroup]:
    """Groups in Corefile order; each bound host of a block is its own group."""
    groups: dict[tuple[str, str, int], ListenGroup] = {}
    for block in blocks:
        for addr in block.addresses:
            for bound in block.listen_hosts:
                host = _listen_host(bound)
                key = (addr.transport, host, addr.port)
                group = groups.get(key)
                if group is None:
                    group = groups[key] = ListenGroup(addr.transport, host, addr.port)
                group.entries.append((addr, block))
    return list(groups.values())


def served_transports() -> tuple[str, ...]:
    """Transports with a server here (``server/transports.py``); keys may name others, which
    cannot be served yet. Imported late: the servers import this module."""
    from .server.transports import TRANSPORTS

    return tuple(TRANSPORTS)


def __getattr__(name: str) -> Any:
    # ``SERVED_TRANSPORTS`` as it was, now read from the transports registry.
    if name == "SERVED_TRANSPORTS":
        return served_transports()
    raise AttributeError(name)


def check_transports(groups: list[ListenGroup]) -> None:
    from .server.transports import TRANSPORTS

    for group in groups:
        served = TRANSPORTS.get(group.transport)
        if served is None:
            raise CorefileError(
                f"cannot serve {group.address}: transport '{group.transport}' is not supported "
                f"by twisted-coredns ({', '.join(t + '://' for t in TRANSPORTS)} are)"
            )
        if served.needs_tls and not any(b.settings.get("tls") is not None for _a, b in group.entries):
            raise CorefileError(served.no_tls_error or f"{group.transport} requires TLS, no TLS config found")


def check_zones(blocks: list[BlockConfig]) -> None:
    """CoreDNS's ``validateZonesAndListeningAddresses``: one zone on one port once, and no zone
    served both on every address and on a bound one. A block with a view may share its zone with
    others: it is checked for overlap, but not registered."""
    # Hosts in registration order: for an unbound zone CoreDNS names the bound one registered
    # last; for a bound one, the unbound one.
    seen: dict[tuple[str, str, int], dict[str, None]] = {}
    for block in blocks:
        for addr in block.addresses:
            key = (addr.transport, addr.zone, addr.port)
            hosts = seen.setdefault(key, {})
            for host in block.listen_hosts:
                shown = str(addr) + (f" on {host}" if host else "")
                if block.filters:
                    if hosts and (host == "" or "" in hosts) and host not in hosts:
                        other = "" if "" in hosts else next(reversed(hosts))
                        other_shown = str(addr) + (f" on {other}" if other else "")
                        raise CorefileError(
                            f"cannot serve {shown} - zone overlap listener capacity with {other_shown}"
                        )
                    continue
                if host in hosts:
                    raise CorefileError(f"cannot serve {shown} - it is already defined")
                if hosts and (host == "" or "" in hosts):
                    other = "" if "" in hosts else next(reversed(hosts))
                    other_shown = str(addr) + (f" on {other}" if other else "")
                    raise CorefileError(
                        f"cannot serve {shown} - zone overlap listener capacity with {other_shown}"
                    )
                hosts[host] = None
