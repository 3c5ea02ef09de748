"""Cached replies as wire bytes, and the bounded tables that hold them.

An entry is the reply's records exactly as they came from below (minus the hop-by-hop OPT record)
and the offset of every TTL field in them. A hit copies the client's own header and question, appends
the records, and patches the header and the TTLs in place: no dnspython message, no Deferred.

CoreDNS splits each cache into 256 shards of ``CAPACITY / 256`` entries (at least 4) and evicts a
random entry of a full shard. ``Table`` keeps the same total (``256 * max(CAPACITY // 256, 4)``, 9984
by default) in one dict and evicts the entry stored longest ago: the same bound, without shards
that fill up unevenly, and an eviction order tests can rely on.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ...dns import AA, AD, EDNS_DO, QR, RA, RCODE_MASK
from ...dns.header import ECHO_MASK, ECHOED, HEADER
from ...response import Response
from .wire import patch_ttls

if TYPE_CHECKING:
    from ...request import Request

SHARDS = 256
MIN_SHARD_SIZE = 4

Key = tuple[str, int, int, int]
"""(lower-cased qname, qtype, qclass, DO|CD bits of the query)."""


class Entry:
    """One cached reply."""

    __slots__ = (
        "ad",
        "an",
        "answering",
        "ar",
        "body",
        "flags",
        "hits",
        "last",
        "last_known_good",
        "ns",
        "offsets",
        "orig_ttl",
        "rcode",
        "refreshing",
        "retry_after",
        "stored",
    )

    def __init__(
        self,
        body: bytes,
        offsets: tuple[int, ...],
        counts: tuple[int, int, int],
        rcode: int,
        flags: int,
        orig_ttl: int,
        stored: float,
        answering: bool = False,
    ) -> None:
        self.body = body
        self.offsets = offsets
        self.an, self.ns, self.ar = counts
        self.rcode = rcode
        # RA as the reply had it; AD kept apart, as it is only shown to clients that want DNSSEC
        self.flags = QR | AA | (flags & RA) | (rcode & RCODE_MASK)
        self.ad = bool(flags & AD)
        self.orig_ttl = orig_ttl
        self.stored = stored
        self.answering = answering
        self.last_known_good: Entry | None = None
        # prefetch bookkeeping (CoreDNS's freq.Freq) and the one-refresh-at-a-time guard
        self.hits = 0
        self.last: float | None = None
        self.refreshing = False
        self.retry_after: float | None = None

    def ttl(self, now: float) -> int:
        """Seconds left; zero or less once expired (whole seconds elapsed, as Go truncates)."""
        return self.orig_ttl - int(now - self.stored)

    def reply(self, request: Request, ttl: int) -> Response:
        """The cached records as a reply to ``request``: its ID, opcode, RD, CD and question,
        AA set (CoreDNS always sets it on cached replies), every TTL ``ttl``."""
        buf = bytearray(request.wire[: request.end_of_question])
        buf += self.body
        flags = self.flags | ECHOED[request.flags & ECHO_MASK]
        if self.ad and (request.edns_flags & EDNS_DO or request.flags & AD):
            flags |= AD
        HEADER.pack_into(buf, 0, request.id, flags, 1, self.an, self.ns, self.ar)
        if ttl < 0:
            ttl = 0
        patch_ttls(buf, self.offsets, ttl)
        return Response(bytes(buf), self.rcode, None, "cache", False)

    # -- prefetch and refresh bookkeeping ------------------------------------------------------

    def seen(self, window: float, now: float) -> int:
        """``freq.Update``: one more hit, or the first of a new run after ``window`` of silence."""
        if self.last is None or self.last < now - window:
            self.hits = 1
        else:
            self.hits += 1
        self.last = now
        return self.hits

    def begin_refresh(self, now: float, failure_recheck: float) -> bool:
        if failure_recheck > 0 and self.retry_after is not None and now < self.retry_after:
            return False
        if self.refreshing:
            return False
        self.refreshing = True
        return True

    def end_refresh(self, now: float, failure_recheck: float, refreshed: bool) -> None:
        self.retry_after = now + failure_recheck if failure_recheck > 0 and not refreshed else None
        self.refreshing = False

    def answering_entry(self) -> Entry | None:
        """This entry if it answers its question, else the answer it replaced (prefer_positive)."""
        if self.answering:
            return self
        lkg = self.last_known_good
        if lkg is not None and lkg.answering:
            return lkg
        return None


def table_size(capacity: int) -> int:
    """What a CAPACITY holds in CoreDNS: 256 shards of ``CAPACITY / 256`` (at least 4) entries."""
    per_shard = abs(capacity) // SHARDS * (1 if capacity >= 0 else -1)  # Go's truncating division
    return SHARDS * max(per_shard, MIN_SHARD_SIZE)


class Table:
    """A bounded map of entries; a full table drops the entry stored longest ago."""

    __slots__ = ("items", "size")

    def __init__(self, capacity: int) -> None:
        self.size = table_size(capacity)
        self.items: dict[Key, Entry] = {}

    def get(self, key: Key) -> Entry | None:
        return self.items.get(key)

    def add(self, key: Key, entry: Entry) -> bool:
        """Store ``entry``; True when another entry was evicted to make room."""
        items = self.items
        evicted = False
        if items.pop(key, None) is None and len(items) >= self.size:
            del items[next(iter(items))]
            evicted = True
        items[key] = entry
        return evicted

    def remove(self, key: Key) -> None:
        self.items.pop(key, None)

    def __len__(self) -> int:
        return len(self.items)
