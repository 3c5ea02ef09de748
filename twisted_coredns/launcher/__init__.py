"""Starting servers: the front process (``master``), serving in its own reactor or through N
worker processes (``worker``), and what they share (``process``)."""

from .process import PidFile, start_logging

__all__ = ["PidFile", "start_logging"]
