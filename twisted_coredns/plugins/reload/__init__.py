"""reload: re-read the Corefile when it changes (CoreDNS's ``plugin/reload``).

``setup`` reads the interval and jitter; ``watcher`` hashes the parsed Corefile and, when the hash
changes, asks the front process to reload, which does it with nothing lost (the same path as
SIGUSR1). It runs once per process, in the front, never in a multisocket worker.
"""

from .watcher import CorefileWatcher, corefile_hash

__all__ = ["CorefileWatcher", "corefile_hash"]
