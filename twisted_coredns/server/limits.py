"""What one client may hold of a server: TCP connections, the time they may take, file descriptors.

CoreDNS's DNS server (miekg/dns underneath) gives every TCP connection a read timeout for a query
(3 s), an idle timeout between queries (10 s), a write timeout for a reply (5 s) and, with
``timeouts { maxtcpqueries N }``, a number of queries after which it closes the connection
(unlimited by default). Those are CoreDNS's names and defaults, kept here. CoreDNS does not cap
the number of DNS-over-TCP connections: its DoH, DoH3 and gRPC servers do (``max_connections``,
200 by default, in the ``https``, ``https3`` and ``grpc_server`` plugins). A server that accepts
every connection runs out of file descriptors, so ours caps them per listening socket, 200 by
default, and process-wide below the file descriptor limit; docs/limits.md says what happens at
each cap.

A plugin sets the block's values with the keys below in ``BlockConfig.settings`` (the ``timeouts``
directive: ``read``, ``write``, ``idle``, ``maxtcpqueries`` and our ``maxtcpconnections``); the
server reads them when it starts listening. As in CoreDNS's ``NewServer``, when several blocks
share an address the last block that sets a value decides it.
"""

from __future__ import annotations

import resource
import sys
from collections.abc import Iterable
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ..config import BlockConfig

READ_TIMEOUT = "timeouts.read"
"""Seconds (float) in which a query must arrive whole once it has begun, and the first query of
a connection must arrive at all."""
WRITE_TIMEOUT = "timeouts.write"
"""Seconds (float) a reply may wait for a client that does not read it."""
IDLE_TIMEOUT = "timeouts.idle"
"""Seconds (float) a connection that owes and is owed nothing stays open."""
MAX_TCP_QUERIES = "timeouts.maxtcpqueries"
"""Queries read from one connection before it is closed; -1 for no limit."""
MAX_TCP_CONNECTIONS = "timeouts.maxtcpconnections"
"""Connections open at once on one listening socket; -1 for no cap but the process's own."""

_KEYS = {
    READ_TIMEOUT: "read_timeout",
    WRITE_TIMEOUT: "write_timeout",
    IDLE_TIMEOUT: "idle_timeout",
    MAX_TCP_QUERIES: "max_queries",
    MAX_TCP_CONNECTIONS: "max_connections",
}


@dataclass(frozen=True)
class StreamLimits:
    """The limits of one TCP listener, CoreDNS's defaults unless a block set them."""

    read_timeout: float = 3.0
    write_timeout: float = 5.0
    idle_timeout: float = 10.0
    max_queries: int = -1
    max_connections: int = 200
    max_in_flight: int = 128
    """Queries of one connection being answered at once; beyond it the connection is not read
    until one is answered. miekg answers one at a time; we answer in any order (RFC 7766), and
    this keeps what one connection can make us hold bounded."""

    @classmethod
    def of(cls, blocks: Iterable[BlockConfig]) -> StreamLimits:
        """The limits of a listener serving ``blocks`` (in Corefile order): the last block that
        sets a value wins, as in CoreDNS's ``NewServer``."""
        changes = {}
        for block in blocks:
            for key, name in _KEYS.items():
                value = block.settings.get(key)
                if value is not None:
                    changes[name] = value
        return replace(cls(), **changes) if changes else cls()


# -- file descriptors --------------------------------------------------------------------------

MIN_FD_RESERVE = 64
"""File descriptors kept free for everything but client connections, at the least: listeners,
upstream sockets, log and zone files, the reload's reads."""


def fd_limit() -> int:
    """The soft RLIMIT_NOFILE now in force (a large number where there is none)."""
    soft, _hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    return soft if soft != resource.RLIM_INFINITY else 1 << 20


def fd_reserve(limit: int) -> int:
    """A quarter of the limit, at least ``MIN_FD_RESERVE``."""
    return max(MIN_FD_RESERVE, limit // 4)


_SELECT_LIMIT = 1024
"""FD_SETSIZE: select(2) cannot watch a descriptor numbered this high."""


def connection_budget_for(limit: int) -> int:
    """The client connections a process with ``limit`` descriptors may hold: less the reserve."""
    return max(0, limit - fd_reserve(limit))


def connection_budget() -> int:
    """How many client connections this process may hold open at once: the file descriptor limit
    less a reserve (and less than select's ceiling when the reactor uses select)."""
    limit = fd_limit()
    reactor = sys.modules.get("twisted.internet.reactor")
    if reactor is not None and type(reactor).__name__ == "SelectReactor":
        limit = min(limit, _SELECT_LIMIT)
    return connection_budget_for(limit)


class ProcessConnections:
    """The client connections open in this process, over every listener."""

    def __init__(self) -> None:
        self.open = 0

    def full(self) -> bool:
        return self.open >= connection_budget()

    def admit(self) -> bool:
        """True, counting one more, when the budget has room; a caller that got True calls
        ``release`` when that connection is closed."""
        if self.open >= connection_budget():
            return False
        self.open += 1
        return True

    def release(self) -> None:
        self.open -= 1


PROCESS_CONNECTIONS = ProcessConnections()


def raise_fd_limit() -> tuple[int, int]:
    """Raise the soft RLIMIT_NOFILE to the hard limit; ``(before, after)``.

    Go does this for every program at start (since 1.19), so CoreDNS runs with the hard limit
    while a Python process keeps the soft one (often 1024). Call it once at the start of the front
    process and of every worker, before any socket is made. Where the reactor is select-based,
    descriptors above 1024 cannot be watched: ``connection_budget`` stays below that anyway.
    """
    try:
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    except (OSError, ValueError):
        return (-1, -1)
    target = hard
    if hard == resource.RLIM_INFINITY:
        target = 1 << 20  # Linux's default nr_open; macOS takes less, and then it stays as it is
    if soft == resource.RLIM_INFINITY or soft >= target:
        return (soft, soft)
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    except (OSError, ValueError):
        return (soft, soft)
    return (soft, target)


# -- garbage collection pauses -------------------------------------------------------------------

GC_THRESHOLDS = (20_000, 50, 20)
"""Young generation every 20,000 allocations (Python's default is 700), the middle one every 50 of
those, a full collection after 20 of those at the soonest."""


def tune_gc() -> tuple[int, int, int]:
    """Collect less often, so that full collections do not stall every query; the old thresholds.

    A query waiting on an upstream holds about 40 objects the collector tracks (Deferreds, their
    callback tuples, timers, the request). With the default thresholds each of them is promoted to
    the oldest generation within a tenth of a second, and that generation is collected whenever it
    has grown by a quarter: with an upstream that drops 1,500 queries a second, a full collection
    of some 250,000 objects every second or two, 100 to 300 ms each, during which nothing is
    answered. A healthy zone beside the hanging one had a p99 of 130 ms; with these thresholds
    3 ms, and a full collection comes after 20 million allocations instead (docs/limits.md). Call
    it once at the start of the front process and of every worker.

    Python 3.14's collector is incremental and has no such pauses: it is left as it is.
    """
    import gc

    old = gc.get_threshold()
    if sys.version_info < (3, 14):
        gc.set_threshold(*GC_THRESHOLDS)
    return (old[0], old[1], old[2])
