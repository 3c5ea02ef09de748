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

    @property
    def zones(self) -> list[str]:
        seen: dict[str, None] = {}
        for a in self.addresses:
            seen.setdefault(a.zone, None)
        return list(seen)

    @property
    def chain(self) -> IHandler | None:
        return self.handlers[0] if self.handlers else None

    def link(self) -> None:
        """Point each handler at the next (CoreDNS builds the same chain from plugin.cfg order)."""
        for current, nxt in zip(self.handlers, [*self.handlers[1:], None], strict=False):
            current.next = nxt


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


SERVED_TRANSPORTS = ("dns",)
"""Transports with a server here; keys may name the others, but cannot be served yet."""


def check_transports(groups: list[ListenGroup]) -> None:
    for group in groups:
        if group.transport not in SERVED_TRANSPORTS:
            raise CorefileError(
                f"cannot serve {group.address}: transport '{group.transport}' is not supported "
                "by twisted-coredns yet (dns:// is)"
            )


def check_zones(blocks: list[BlockConfig]) -> None:
    """CoreDNS's ``validateZonesAndListeningAddresses``: one zone on one port once, and no zone
    served both on every address and on a bound one."""
    # Hosts in registration order: for an unbound zone CoreDNS names the bound one registered
    # last; for a bound one, the unbound one.
    seen: dict[tuple[str, str, int], dict[str, None]] = {}
    for block in blocks:
        for addr in block.addresses:
            key = (addr.transport, addr.zone, addr.port)
            hosts = seen.setdefault(key, {})
            for host in block.listen_hosts:
                shown = str(addr) + (f" on {host}" if host else "")
                if host in hosts:
                    raise CorefileError(f"cannot serve {shown} - it is already defined")
                if hosts and (host == "" or "" in hosts):
                    other = "" if "" in hosts else next(reversed(hosts))
                    other_shown = str(addr) + (f" on {other}" if other else "")
                    raise CorefileError(
                        f"cannot serve {shown} - zone overlap listener capacity with {other_shown}"
                    )
                hosts[host] = None
