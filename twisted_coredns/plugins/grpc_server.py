"""grpc_server: the gRPC server's limits for its block (``grpc_server { max_streams;
max_connections }``); 0 means no limit, as in CoreDNS.

Read at setup into ``BlockConfig.settings["grpc_server"]``; server/grpc.py takes them. Adds no
handler.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..plugin import Controller
from ._server_limits import read_limits


@dataclass(frozen=True)
class GRPCServerLimits:
    max_streams: int = 256
    """Concurrent streams per connection (CoreDNS's ``DefaultGRPCMaxStreams``)."""
    max_connections: int = 200
    """Concurrent connections (``DefaultGRPCMaxConnections``)."""


def setup(c: Controller) -> None:
    found = read_limits(c, ("max_streams", "max_connections"), positive=False)
    c.config.settings["grpc_server"] = GRPCServerLimits(**found)
