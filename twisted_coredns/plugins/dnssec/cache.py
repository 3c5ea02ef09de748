"""Signatures already made, so that signing (the CPU cost of this plugin) happens once per RRset.

An entry is keyed by the signer and the RRset as the wire gives it (owner in lower case, type,
class, the sorted distinct rdatas with their names written out: see ``handler``), without its TTL:
the signatures are made with an original TTL of 3600 whatever the reply's TTL, so a TTL that
counts down (a cache before us) still hits. An entry holds the RRSIG rdatas in wire form, ready to
be put in a reply. An entry whose signatures would expire within two days (6 of the 8 days gone)
is a miss, and is dropped by the clean that runs every 8 hours. When the cache is full the oldest
entry goes (CoreDNS drops a random one).
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from typing import Any

from dns.rdtypes.ANY.RRSIG import RRSIG

from . import metrics

__all__ = ["CLEAN_INTERVAL", "FRESH_FOR", "SignatureCache", "Signatures"]

FRESH_FOR = 2 * 24 * 3600  # a signature must stay valid this much longer to be served from here
CLEAN_INTERVAL = 8 * 3600


class Signatures:
    """The RRSIG rdatas over one RRset (one per signing key), in wire form, and the period in
    which all of them are valid."""

    __slots__ = ("expiration", "inception", "rdatas")

    def __init__(self, rdatas: tuple[bytes, ...], inception: int, expiration: int) -> None:
        self.rdatas = rdatas
        self.inception = inception
        self.expiration = expiration

    @classmethod
    def of(cls, sigs: Sequence[RRSIG]) -> Signatures:
        return cls(
            tuple(sig.to_digestable() for sig in sigs),
            max(sig.inception for sig in sigs),
            min(sig.expiration for sig in sigs),
        )

    def valid_at(self, when: float) -> bool:
        return self.inception <= when <= self.expiration


class SignatureCache:
    """At most ``capacity`` entries of ``Signatures``."""

    def __init__(self, capacity: int) -> None:
        self.capacity = max(capacity, 0)
        self._items: dict[Hashable, Signatures] = {}
        self._hits: dict[str, Any] = {}
        self._misses: dict[str, Any] = {}

    def __len__(self) -> int:
        return len(self._items)

    def get(self, key: Hashable, now: float) -> Signatures | None:
        """The entry at ``key`` when it is fresh at ``now``; the caller counts hits and misses
        (``count``), once per reply rather than once per RRset."""
        sigs = self._items.get(key)
        if sigs is not None and sigs.inception <= now + FRESH_FOR <= sigs.expiration:
            return sigs
        return None

    def count(self, server: str, hits: int, misses: int) -> None:
        """Add to CoreDNS's hit and miss counters of ``server``."""
        if hits:
            counter = self._hits.get(server)
            if counter is None:
                counter = self._hits[server] = metrics.cache_hits.labels(server)
            counter.inc(hits)
        if misses:
            counter = self._misses.get(server)
            if counter is None:
                counter = self._misses[server] = metrics.cache_misses.labels(server)
            counter.inc(misses)

    def set(self, key: Hashable, sigs: Signatures) -> None:
        if self.capacity == 0:
            return
        items = self._items
        items.pop(key, None)
        while len(items) >= self.capacity:
            del items[next(iter(items))]
        items[key] = sigs

    def clean(self, now: float) -> None:
        """Drop the entries that ``get`` would no longer serve."""
        when = now + FRESH_FOR
        for key in [k for k, sigs in self._items.items() if not sigs.valid_at(when)]:
            del self._items[key]
