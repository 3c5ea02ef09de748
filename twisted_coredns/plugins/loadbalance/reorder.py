"""The orderings of CoreDNS's loadbalance, on one section of a reply.

A section is the records ``lo`` to ``hi`` of the reply, known by index: ``types[k]`` is record
``k``'s type, and the policies that look at addresses get them from an ``address_of(k)`` the
handler reads off the wire, only for the A and AAAA records and only when asked. Each policy
returns the section's indexes in their new order.

CoreDNS's three orderings (``roundRobin``, ``weightedRoundRobin``, ``reorderPreferredSubnets``)
split a section into CNAME, address (A, AAAA), MX and other records. Here the OPT and TSIG records
are kept apart too, and last: CoreDNS counts them among the others, which can put an OPT record
in front of the addresses, and a TSIG record anywhere but last breaks its signature.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Sequence

from ...dns import AAAA, CNAME, MX, OPT, A

TSIG = 250

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
Subnet = tuple[int, int, int]
"""A preferred subnet, precomputed: its address size in octets (4 or 16), network and mask."""
AddressOf = Callable[[int], bytes | None]
"""Record index to its address: 4 octets for A (and for an IPv4-mapped AAAA, as Go's ``To4``
sees it), 16 for AAAA; None when the data is not an address."""

_Parts = tuple[list[int], list[int], list[int], list[int], list[int]]


def subnet(network: Network) -> Subnet:
    size = 4 if network.version == 4 else 16
    return size, int(network.network_address), int(network.netmask)


def _shuffle(items: list[int], randbelow: Callable[[int], int]) -> None:
    """CoreDNS's roundRobinShuffle: a random walk that swaps each place with one at or after it
    (CoreDNS gives two records their own coin toss, which is the same draw)."""
    n = len(items)
    for j in range(n - 1):
        p = j + randbelow(n - j)
        if p != j:
            items[j], items[p] = items[p], items[j]


def _partition(types: Sequence[int], lo: int, hi: int) -> _Parts:
    """CNAME, address, MX, other, and OPT or TSIG records, each in their order."""
    cname: list[int] = []
    address: list[int] = []
    mx: list[int] = []
    rest: list[int] = []
    pinned: list[int] = []
    for k in range(lo, hi):
        t = types[k]
        if t == A or t == AAAA:
            address.append(k)
        elif t == CNAME:
            cname.append(k)
        elif t == MX:
            mx.append(k)
        elif t == OPT or t == TSIG:
            pinned.append(k)
        else:
            rest.append(k)
    return cname, address, mx, rest, pinned


Section = tuple[list[int], list[int], list[int], list[int], "dict[int, int] | None"]
"""How round robin reorders one section, worked out once per reply shape: the records that come
first, the addresses and the MX records to shuffle (in that order), the records that come last,
and with ``prefer`` each address's rank (the index of the first preferred subnet holding it, one
past the last for none), by which the shuffled addresses are then stably sorted."""


def round_robin(types: Sequence[int], lo: int, hi: int, address_of: AddressOf | None = None,
                subnets: Sequence[Subnet] = ()) -> Section:
    """CoreDNS's roundRobin on records ``lo`` to ``hi``: CNAMEs first, then the other records,
    then the addresses and the MX records, each of those two groups shuffled. With ``subnets``,
    CoreDNS's reorderPreferredSubnets after it: CNAMEs, the addresses in the first preferred
    subnet, in the second, ..., then the other addresses, then MX, then the rest."""
    if hi - lo < 2:
        return list(range(lo, hi)), [], [], [], None
    cname, address, mx, rest, pinned = _partition(types, lo, hi)
    if not subnets:
        return cname + rest, address, mx, pinned, None
    rank = None
    if len(address) > 1 and address_of is not None:
        rank = _ranks(address, address_of, subnets)
    return cname, address, mx, rest + pinned, rank


def is_random(sections: Sequence[Section]) -> bool:
    """False when ``draw`` gives one order only (no group of two or more to shuffle)."""
    return any(len(address) > 1 or len(mx) > 1 for _head, address, mx, _tail, _rank in sections)


def draw(sections: Sequence[Section], randbelow: Callable[[int], int]) -> list[int]:
    """The reply's record indexes in a new order: each section's groups, shuffled."""
    order: list[int] = []
    for head, address, mx, tail, rank in sections:
        order += head
        if len(address) > 1:
            address = address.copy()
            _shuffle(address, randbelow)
            if rank is not None:
                address.sort(key=rank.__getitem__)
        order += address
        if len(mx) > 1:
            mx = mx.copy()
            _shuffle(mx, randbelow)
        order += mx
        order += tail
    return order


def _ranks(address: list[int], address_of: AddressOf, subnets: Sequence[Subnet]) -> dict[int, int] | None:
    """Each address record's preferred-subnet rank; None when no address is in any subnet."""
    ranks: dict[int, int] = {}
    past = len(subnets)
    for k in address:
        ranks[k] = past
        ip = address_of(k)
        if ip is None:
            continue
        size, value = len(ip), int.from_bytes(ip)
        for index, (subnet_size, network, mask) in enumerate(subnets):
            if size == subnet_size and value & mask == network:
                ranks[k] = index
                break
    return ranks if any(rank < past for rank in ranks.values()) else None


def weighted(types: Sequence[int], lo: int, hi: int, weight_of: Callable[[int], int],
             randbelow: Callable[[int], int]) -> list[int] | None:
    """CoreDNS's weightedRoundRobin: one address, picked by weight (``weight_of(k)``), goes
    first among the addresses; nothing is shuffled. None (the section as it is) when it holds no
    address."""
    cname, address, mx, rest, pinned = _partition(types, lo, hi)
    if not address:
        return None
    chosen = [(weight_of(k), i) for i, k in enumerate(address)]
    # Heaviest first, as CoreDNS sorts them before walking the cumulative weights (its sort is an
    # insertion sort, so stable, up to 12 addresses).
    chosen.sort(key=lambda pair: -pair[0])
    pick = randbelow(sum(w for w, _ in chosen))
    total = 0
    for weight, index in chosen:
        total += weight
        if pick < total:
            address[0], address[index] = address[index], address[0]
            break
    return cname + rest + address + mx + pinned
