"""Starting servers: one reactor in this process, or (multisocket) a master and N workers."""

from .process import PidFile, run_single, start_logging

__all__ = ["PidFile", "run_single", "start_logging"]
