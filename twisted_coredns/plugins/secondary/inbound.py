"""Transfers in and SOA checks, run on a worker thread: blocking dnspython calls with timeouts.

``fetch`` gets a zone from one primary. With the zone's last transfer at hand it asks for an IXFR
(dnspython applies the differences, or takes an AXFR-style answer as a whole); a primary that
cannot give one (an error rcode, a refusal) is asked again for an AXFR, as RFC 1995 allows.
"""

from __future__ import annotations

import dns.exception
import dns.message
import dns.name
import dns.query
import dns.rdatatype
import dns.rrset
import dns.tsig
import dns.xfr
import dns.zone

TIMEOUT = 5.0
"""Seconds a primary may stay silent in the middle of a transfer."""
LIFETIME = 300.0
"""Seconds one whole transfer may take."""


def split(hostport: str) -> tuple[str, int]:
    host, _, port = hostport.rpartition(":")
    return host.strip("[]"), int(port)


def _signed(query: dns.message.Message, key: dns.tsig.Key | None) -> dns.message.Message:
    if key is not None:
        query.use_tsig({key.name: key}, key.name, algorithm=key.algorithm)
    return query


def fetch(
    origin: str, primary: str, previous: dns.zone.Zone | None, key: dns.tsig.Key | None
) -> dns.zone.Zone:
    """The zone ``origin`` from ``primary`` (``host:port``); raises on any failure. With
    ``previous`` (the last transfer) an IXFR is tried first, applied to a copy of it."""
    host, port = split(primary)
    if previous is not None:
        updated = copy_zone(previous)
        try:
            query, _ = dns.xfr.make_query(updated, serial=_serial_of(previous))
            dns.query.inbound_xfr(
                host, updated, _signed(query, key), port=port, timeout=TIMEOUT, lifetime=LIFETIME
            )
            return updated
        except dns.xfr.TransferError:
            pass  # the primary cannot do IXFR: ask for the whole zone
    zone = dns.zone.Zone(origin, relativize=False)
    query, _ = dns.xfr.make_query(zone, serial=None)
    dns.query.inbound_xfr(host, zone, _signed(query, key), port=port, timeout=TIMEOUT, lifetime=LIFETIME)
    return zone


def _serial_of(zone: dns.zone.Zone) -> int:
    soa = zone.get_soa()
    return int(soa.serial)


def rrsets_of(zone: dns.zone.Zone) -> list[dns.rrset.RRset]:
    """The zone's records as RRsets (absolute names), SOA first."""
    out: list[dns.rrset.RRset] = []
    soa: list[dns.rrset.RRset] = []
    for name, rdataset in zone.iterate_rdatasets():
        rrset = dns.rrset.RRset(name, rdataset.rdclass, rdataset.rdtype, rdataset.covers)
        rrset.update(rdataset)
        (soa if rdataset.rdtype == dns.rdatatype.SOA else out).append(rrset)
    return soa + out


def copy_zone(zone: dns.zone.Zone) -> dns.zone.Zone:
    """A copy to apply an IXFR to, so a transfer that fails half-way leaves the original whole."""
    fresh = dns.zone.Zone(zone.origin, zone.rdclass, relativize=False)
    for name, node in zone.nodes.items():
        fresh.nodes[name] = node
    # nodes are replaced, not changed in place, by dnspython's transactions
    return fresh


def remote_serial(origin: str, primary: str, key: dns.tsig.Key | None) -> int | None:
    """The primary's SOA serial for ``origin``, asked over TCP (CoreDNS's ``shouldTransfer``);
    None when it answers without one. Raises on a network failure."""
    host, port = split(primary)
    query = _signed(dns.message.make_query(origin, dns.rdatatype.SOA), key)
    response = dns.query.tcp(query, host, port=port, timeout=TIMEOUT)
    if response.rcode() != 0:
        return None
    for rrset in response.answer:
        if rrset.rdtype == dns.rdatatype.SOA:
            return int(rrset[0].serial)
    return None


def describe(exc: BaseException) -> str:
    """A failure as a log line shows it."""
    if isinstance(exc, dns.exception.Timeout):
        return "i/o timeout"
    text = str(exc)
    return text or type(exc).__name__


def serial_less(a: int, b: int) -> bool:
    """RFC 1982: serial ``a`` is before ``b``."""
    if a < b:
        return (b - a) <= 0x7FFFFFFF
    return (a - b) > 0x7FFFFFFF
