"""Reading hosts(5) text, and the index the hosts handler answers from.

Parsing keeps CoreDNS's rules: comments after ``#``, lines with fewer than two fields or an
address that does not parse are skipped, an IPv4-mapped IPv6 address counts as IPv4, names are
lower-cased and made fully qualified, names outside the plugin's zones are dropped, and a
``*.`` owner is a wildcard for exactly one more label (and gets no PTR record).

The index is built once per (re)load, so that answering is a dictionary lookup: every name's A
and AAAA records and every reverse name's PTR records are already encoded, owner names as a
pointer to the question.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from ...dns import AAAA, PTR, QNAME, A, Zones, name_wire, normalize, records

Address = ipaddress.IPv4Address | ipaddress.IPv6Address


def parse_ip(text: str) -> Address | None:
    """Go's ``net.ParseIP`` after dropping an IPv6 zone (``fe80::1%eth0``); None if not an address."""
    text = text.partition("%")[0]
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        return None




def wildcard_pattern(name: str) -> str:
    """The wildcard owner that covers ``name``: its leftmost label replaced by ``*``, or "" for a
    name of one label (or the root), which no wildcard covers."""
    i = 0
    last = len(name) - 1
    while i < last:
        c = name[i]
        if c == "\\":
            i += 2
            continue
        if c == ".":
            return "*." + name[i + 1 :]
        i += 1
    return ""


def _is_wildcard(name: str) -> bool:
    return name.startswith("*.")


@dataclass
class HostsMap:
    """One parse of hosts text: addresses by name (per family, wildcards apart) and names by
    address (for PTR). Lists keep file order."""

    name4: dict[str, list[bytes]] = field(default_factory=dict)
    name6: dict[str, list[bytes]] = field(default_factory=dict)
    wild4: dict[str, list[bytes]] = field(default_factory=dict)
    wild6: dict[str, list[bytes]] = field(default_factory=dict)
    addr: dict[Address, list[str]] = field(default_factory=dict)

    def __len__(self) -> int:
        """What ``coredns_hosts_entries`` counts: every address of every name, plus every
        reverse mapping."""
        maps = (self.name4, self.name6, self.wild4, self.wild6)
        return sum(len(v) for m in maps for v in m.values()) + sum(len(v) for v in self.addr.values())


def parse(text: str, origins: Zones | Sequence[str], auto_reverse: bool = True) -> HostsMap:
    """Parse hosts text into a ``HostsMap``, keeping only names inside ``origins``."""
    zones = origins if isinstance(origins, Zones) else Zones(origins)
    hmap = HostsMap()
    for raw in text.split("\n"):
        line = raw.partition("#")[0]
        fields = line.split()
        if len(fields) < 2:
            continue
        ip = parse_ip(fields[0])
        if ip is None:
            continue
        if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
            # Go keeps ::ffff:a.b.c.d as a 4-byte-capable address: it is IPv4 here too.
            ip = ip.ipv4_mapped
        v4 = isinstance(ip, ipaddress.IPv4Address)
        packed = ip.packed
        for field_ in fields[1:]:
            try:
                name = normalize(field_)
            except ValueError:
                continue  # not a name a query can ask for (an empty label, over 255 octets)
            if not zones.covers(name):
                continue
            if _is_wildcard(name):
                (hmap.wild4 if v4 else hmap.wild6).setdefault(name, []).append(packed)
                continue
            (hmap.name4 if v4 else hmap.name6).setdefault(name, []).append(packed)
            if auto_reverse:
                hmap.addr.setdefault(ip, []).append(name)
    return hmap


Records = tuple[bytes, int]
"""Encoded records back to back, and how many."""

_NONE: Records = (b"", 0)


def _encode(rtype: int, ttl: int, rdatas: Iterable[bytes]) -> Records:
    parts = [records.rr(QNAME, rtype, ttl, r) for r in rdatas]
    return b"".join(parts), len(parts)


def _reverse_names(ip: Address) -> list[str]:
    names = [ip.reverse_pointer + "."]
    if isinstance(ip, ipaddress.IPv4Address):
        # Go reads the ip6.arpa name of ::ffff:a.b.c.d back as the IPv4 address itself.
        names.append(ipaddress.IPv6Address(b"\x00" * 10 + b"\xff\xff" + ip.packed).reverse_pointer + ".")
    return names


class Index:
    """The file's entries and the inline ones, merged and encoded for answering.

    ``exact`` maps a name to its (A records, AAAA records); ``wild`` maps a wildcard owner
    (``*.example.org.``) to the same, for names with no exact entry; ``ptr`` maps reverse names to
    their PTR records. As in CoreDNS, the file's records come before the inline ones, and each
    source falls back to its own wildcard, family by family.
    """

    __slots__ = ("exact", "ptr", "wild")

    def __init__(self, file: HostsMap, inline: HostsMap, ttl: int) -> None:
        self.exact: dict[str, tuple[Records, Records]] = {}
        self.wild: dict[str, tuple[Records, Records]] = {}
        self.ptr: dict[str, Records] = {}
        sources = (file, inline)

        def family(name: str, exact: str, wild: str, rtype: int) -> Records:
            pattern = wildcard_pattern(name)
            rdatas: list[bytes] = []
            for src in sources:
                found = getattr(src, exact).get(name)
                if found is None and pattern:
                    found = getattr(src, wild).get(pattern)
                rdatas.extend(found or ())
            return _encode(rtype, ttl, rdatas) if rdatas else _NONE

        names = {n: None for src in sources for n in (*src.name4, *src.name6)}
        for name in names:
            self.exact[name] = (family(name, "name4", "wild4", A), family(name, "name6", "wild6", AAAA))
        patterns = {p: None for src in sources for p in (*src.wild4, *src.wild6)}
        for pattern in patterns:
            v4 = [r for src in sources for r in src.wild4.get(pattern, ())]
            v6 = [r for src in sources for r in src.wild6.get(pattern, ())]
            self.wild[pattern] = (
                _encode(A, ttl, v4) if v4 else _NONE,
                _encode(AAAA, ttl, v6) if v6 else _NONE,
            )
        addresses = {ip: None for src in sources for ip in src.addr}
        for ip in addresses:
            targets = [n for src in sources for n in src.addr.get(ip, ())]
            rdatas = []
            for target in targets:
                try:
                    rdatas.append(name_wire(target))
                except ValueError:
                    # A name no DNS message can carry (a label over 63 octets): nothing to answer.
                    continue
            if rdatas:
                for reverse in _reverse_names(ip):
                    self.ptr[reverse] = _encode(PTR, ttl, rdatas)

    def lookup(self, name: str) -> tuple[Records, Records] | None:
        """(A, AAAA) records for ``name``, or None when the hosts data does not know it."""
        found = self.exact.get(name)
        if found is None and self.wild:
            pattern = wildcard_pattern(name)
            if pattern:
                found = self.wild.get(pattern)
        return found

