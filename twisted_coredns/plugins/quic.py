"""quic: the DNS-over-QUIC server's limits for its block (``quic { max_streams; worker_pool_size }``).

Read at setup into ``BlockConfig.settings["quic"]``; the DoQ server (server/quic.py) takes them from
the first block of its listen address. Adds no handler.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..plugin import Controller
from ._server_limits import read_limits


@dataclass(frozen=True)
class QuicLimits:
    max_streams: int = 256
    """Concurrent streams one connection may open (CoreDNS's ``DefaultMaxQUICStreams``)."""
    worker_pool_size: int = 1024
    """Streams being answered at once over every connection (``DefaultQUICStreamWorkers``)."""


def setup(c: Controller) -> None:
    found = read_limits(c, ("max_streams", "worker_pool_size"), positive=True)
    c.config.settings["quic"] = QuicLimits(**found)
