"""Zone files made up for tests and benchmarks of authoritative plugins.

- ``synthetic_zone(n)``: ``n`` records of the common types (A, AAAA, TXT, MX, CNAME in turn), the
  shape of a large hosting zone: the load-time and query-rate benchmark.
- ``small_zone()``: ten records, the same shapes: what the large zone's query rate is compared to.
- ``tangled_zone()``: a small zone with every shape a lookup must get right (delegations with and
  without glue, a signed-looking delegation with DS, wildcards, empty non-terminals, CNAME chains
  in and out of the zone, a CNAME to a wildcard and into a delegation, DNAME, MX and SRV with
  in-zone targets), and ``tangled_names()``, the names worth asking about in it.

The record data are documentation addresses (RFC 5737, RFC 3849) and names under ``.example``,
``.test`` or ``.invalid``: nothing that leads off the machine.
"""

from __future__ import annotations

import random

__all__ = ["small_zone", "synthetic_names", "synthetic_zone", "tangled_names", "tangled_zone"]

_APEX = (
    "$TTL 3600\n"
    "@ IN SOA ns1 hostmaster 2024010101 7200 3600 1209600 3600\n"
    "@ IN NS ns1\n"
    "@ IN NS ns2\n"
    "ns1 IN A 192.0.2.1\n"
    "ns2 IN AAAA 2001:db8::53\n"
)


def _record(i: int, origin: str) -> str:
    kind = i % 5
    if kind == 0:
        return f"h{i} 300 IN A 10.{(i >> 16) & 255}.{(i >> 8) & 255}.{i & 255}"
    if kind == 1:
        return f"h{i} IN AAAA 2001:db8::{i >> 16:x}:{i & 0xFFFF:x}"
    if kind == 2:
        return f'h{i} IN TXT "v=spf1 include:_spf.{origin} ~all" "record {i}"'
    if kind == 3:
        return f"h{i} IN MX 10 mail{i}.{origin}"
    return f"h{i} IN CNAME h{i - 4}"


def synthetic_zone(records: int, origin: str = "synth.example.") -> str:
    """A zone file of ``records`` records (the SOA and apex included) for ``origin``."""
    lines = [f"$ORIGIN {origin}", _APEX.rstrip("\n")]
    lines += [_record(i, origin) for i in range(max(0, records - 5))]
    return "\n".join(lines) + "\n"


def synthetic_names(records: int, count: int, origin: str = "synth.example.", seed: int = 1) -> list[str]:
    """``count`` owner names of ``synthetic_zone(records)``, drawn at random (with repeats)."""
    rnd = random.Random(seed)
    top = max(1, records - 5)
    return [f"h{rnd.randrange(top)}.{origin}" for _ in range(count)]


def small_zone(origin: str = "small.example.") -> str:
    """Ten records: the apex five and one of each common type."""
    return synthetic_zone(10, origin)


def tangled_zone(origin: str = "tangled.example.") -> str:
    """A zone with delegations, glue, wildcards, empty non-terminals and CNAMEs."""
    return f"""$ORIGIN {origin}
$TTL 3600
@           IN SOA ns1 hostmaster 2024010101 7200 3600 1209600 300
@           IN NS ns1
@           IN NS ns2
@           IN MX 10 mail
@           IN TXT "apex text"
ns1         IN A 192.0.2.1
ns2         IN A 192.0.2.2
ns2         IN AAAA 2001:db8::2
mail        IN A 192.0.2.25
www         IN A 192.0.2.80
www         IN AAAA 2001:db8::80
alias       IN CNAME www
chain1      IN CNAME chain2
chain2      IN CNAME chain3
chain3      IN CNAME www
tomail      IN CNAME mail
towild      IN CNAME host.wild
toent       IN CNAME ent
todeleg     IN CNAME host.deleg
tonowhere   IN CNAME missing
outside     IN CNAME www.elsewhere.invalid.
_sip._tcp   IN SRV 10 60 5060 www
txt         IN TXT "one" "two"
*.wild      IN A 192.0.2.100
*.wild      IN TXT "wildcard"
*.cwild     IN CNAME www
sub.wild    IN A 192.0.2.101
a.b.ent     IN A 192.0.2.50
x.deep.ent  IN TXT "deep"
*.ent2      IN A 192.0.2.60
c.d.ent2    IN A 192.0.2.61
deleg       IN NS ns1.deleg
deleg       IN NS ns.elsewhere.invalid.
ns1.deleg   IN A 192.0.2.53
secure      IN NS ns.secure
secure      IN DS 12345 8 2 49FD46E6C4B45C55D4AC69CBD3CD34AC1AFE51DE76B6F6AA1B8E6C2C7C4B3F3E
ns.secure   IN A 192.0.2.54
ns.secure   IN AAAA 2001:db8::54
bare        IN NS ns.elsewhere.invalid.
dname       IN DNAME www.elsewhere.invalid.
indname     IN DNAME b.ent
"""


def tangled_names(origin: str = "tangled.example.") -> list[str]:
    """Names of ``tangled_zone`` worth asking about: every owner, empty non-terminals, names below
    wildcards and below delegations, and names that are not there."""
    relative = [
        "", "ns1", "ns2", "mail", "www", "alias", "chain1", "chain2", "chain3", "tomail", "towild",
        "toent", "todeleg", "tonowhere", "outside", "_sip._tcp", "_tcp", "txt", "*.wild", "wild",
        "host.wild", "a.b.wild", "sub.wild", "x.sub.wild", "*.cwild", "any.cwild", "cwild",
        "a.b.ent", "b.ent", "ent", "x.deep.ent", "deep.ent", "y.b.ent", "nope.ent", "*.ent2",
        "ent2", "q.ent2", "d.ent2", "c.d.ent2", "x.d.ent2", "z.c.d.ent2", "deleg", "ns1.deleg",
        "host.deleg", "a.b.deleg", "secure", "ns.secure", "x.secure", "bare", "x.bare", "dname",
        "a.dname", "x.y.dname", "indname", "a.indname", "nothere", "a.nothere", "MiXeD.WwW",
    ]
    return [f"{name}.{origin}" if name else origin for name in relative]
