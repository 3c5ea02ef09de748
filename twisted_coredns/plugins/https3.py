"""https3: the DNS-over-HTTP/3 server's limits for its block (``https3 { max_streams;
max_connections }``); 0 means no limit, as in CoreDNS.

Read at setup into ``BlockConfig.settings["https3"]``; server/doh3.py takes them. Adds no handler.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..plugin import Controller
from ._server_limits import read_limits


@dataclass(frozen=True)
class HTTPS3Limits:
    max_streams: int = 256
    """Concurrent request streams per connection (CoreDNS's ``DefaultHTTPS3MaxStreams``)."""
    max_connections: int = 200
    """Concurrent connections per listener (``DefaultHTTPS3MaxConnections``)."""


def setup(c: Controller) -> None:
    found = read_limits(c, ("max_streams", "max_connections"), positive=False)
    c.config.settings["https3"] = HTTPS3Limits(**found)
