"""Domain names as text: the forms plugins compare, and zone matching with escapes understood.

Names inside the server are presentation text, fully qualified, with dnspython's escapes: a dot
inside a label is ``\\.``, other odd bytes ``\\DDD``. ``Request.name`` is lower case; zones from
the Corefile go through ``normalize``. Two names are then compared as strings, with one caveat that
every helper here handles: a dot preceded by an odd number of backslashes is part of a label, not a
boundary between labels (``a\\.b.example.org.`` has three labels and is not below ``b.example.org.``).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from functools import lru_cache

import dns.exception
import dns.name

__all__ = [
    "Zones",
    "is_subdomain",
    "label_text",
    "name_wire",
    "normalize",
    "parent_of",
]

# A name dnspython would print as it is, but for case and the final dot: plain characters only,
# labels of 1 to 63 of them. Such names skip the dnspython round trip (hosts files are full of them).
_PLAIN_TEXT = re.compile(r"(?:[A-Za-z0-9_*/-]{1,63}\.)*[A-Za-z0-9_*/-]{1,63}\.?").fullmatch
_PLAIN = frozenset(b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_*/")
_ESCAPED = frozenset(b'."\\();@$')


def label_text(raw: bytes) -> str:
    """One label in presentation form, escaped as dnspython escapes it."""
    out = []
    for b in raw:
        if b in _PLAIN:
            out.append(chr(b))
        elif b in _ESCAPED:
            out.append("\\" + chr(b))
        elif 0x20 < b < 0x7F:
            out.append(chr(b))
        else:
            out.append(f"\\{b:03d}")
    return "".join(out)


@lru_cache(maxsize=4096)
def name_wire(name: str) -> bytes:
    """The uncompressed wire form of a presentation-format name (relative names are taken as
    fully qualified). ``ValueError`` for a name that is not one (an empty label, over 255 octets)."""
    try:
        return dns.name.from_text(name).to_wire()  # type: ignore[return-value]
    except dns.exception.DNSException as exc:
        raise ValueError(f"bad name {name!r}: {exc}") from None


@lru_cache(maxsize=4096)
def normalize(name: str) -> str:
    """CoreDNS's ``plugin.Name.Normalize``: lower case, fully qualified, and escaped the one way
    this server writes names (``A\\046B.Example`` is ``a\\.b.example.``)."""
    if not name or name == ".":
        return "."
    if len(name) < 254 and _PLAIN_TEXT(name) is not None:
        return (name if name.endswith(".") else name + ".").lower()
    try:
        text = dns.name.from_text(name).to_text()
    except dns.exception.DNSException as exc:
        raise ValueError(f"bad name {name!r}: {exc}") from None
    return text.lower()


def _escaped(name: str, dot: int) -> bool:
    """Whether the dot at ``dot`` is escaped (preceded by an odd run of backslashes)."""
    count = 0
    i = dot - 1
    while i >= 0 and name[i] == "\\":
        count += 1
        i -= 1
    return count % 2 == 1


def is_subdomain(child: str, parent: str) -> bool:
    """Whether ``child`` is ``parent`` or below it (miekg's ``dns.IsSubDomain``, as CoreDNS's
    ``plugin.Name.Matches`` uses it). Both names in the normalized form."""
    if parent == "." or child == parent:
        return True
    cut = len(child) - len(parent) - 1
    if cut < 0 or child[cut] != "." or not child.endswith(parent):
        return False
    return "\\" not in child or not _escaped(child, cut)


def parent_of(name: str) -> str:
    """``name`` without its first label; ``.`` for a top-level name and for the root itself."""
    if name == ".":
        return "."
    dot = name.find(".")
    if "\\" in name:
        while dot >= 0 and _escaped(name, dot):
            dot = name.find(".", dot + 1)
    return name[dot + 1 :] or "."


def ancestry(name: str) -> Iterator[str]:
    """``name``, its parent, and so on up to (and including) the root."""
    while name != ".":
        yield name
        name = parent_of(name)
    yield "."


class Zones:
    """A plugin's zones, and CoreDNS's ``plugin.Zones.Matches``: the longest of them that holds a
    name. Zones are normalized once, here; names asked about must be normalized already (as
    ``Request.name`` is)."""

    __slots__ = ("_by_length", "_pairs", "_root", "_set", "_suffixes", "zones")

    def __init__(self, zones: Iterable[str]) -> None:
        self.zones: tuple[str, ...] = tuple(dict.fromkeys(normalize(z) for z in zones))
        self._set = frozenset(self.zones)
        self._root = "." in self._set
        self._by_length = tuple(sorted((z for z in self.zones if z != "."), key=len, reverse=True))
        self._suffixes = tuple("." + z for z in self._by_length)
        self._pairs = tuple(zip(self._by_length, self._suffixes, strict=True))

    def matches(self, name: str) -> str | None:
        """The longest zone that is ``name`` or holds it, or None."""
        if name in self._set:
            return name
        if "\\" in name:
            for zone in self._by_length:
                if is_subdomain(name, zone):
                    return zone
        elif name.endswith(self._suffixes):  # one test for "under any zone", then the longest
            for zone, suffix in self._pairs:
                if name.endswith(suffix):
                    return zone
        return "." if self._root else None

    def covers(self, name: str) -> bool:
        """Whether any zone holds ``name`` (cheaper than ``matches``: no longest-match search)."""
        if self._root or name in self._set:
            return True
        if not name.endswith(self._suffixes):
            return False
        return "\\" not in name or self.matches(name) is not None

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and self.covers(name)

    def __iter__(self) -> Iterator[str]:
        return iter(self.zones)

    def __len__(self) -> int:
        return len(self.zones)

    def __bool__(self) -> bool:
        return bool(self.zones)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Zones):
            return self.zones == other.zones
        return NotImplemented

    def __hash__(self) -> int:
        return hash(self.zones)

    def __repr__(self) -> str:
        return f"Zones({list(self.zones)!r})"
