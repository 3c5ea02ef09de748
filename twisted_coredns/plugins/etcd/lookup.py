"""CoreDNS's ``plugin/backend_lookup.go`` for one query: the answers a SkyDNS backend gives for
A, AAAA, TXT, CNAME, PTR, MX, SRV, NS and SOA, from the services under a name.

A ``Lookup`` asks its ``Backend`` for services (etcd) and, for a CNAME, SRV or MX target outside the
zone, for the rest of the chain's answer (CoreDNS's ``Upstream.Lookup``). Records come back as wire
bytes (``dns.records``) or, from the chain, as dnspython RRsets; ``reply()`` takes both. The order,
the duplicate rules, the weights and the ten-CNAME limit are CoreDNS's.
"""

from __future__ import annotations

import math
import time
from typing import Any, Protocol

import dns.rdatatype

from ...dns import AAAA, QNAME, A, is_subdomain, normalize, records
from .service import Service, domain, host_address, target_strip

__all__ = ["Backend", "KeyNotFound", "Lookup"]

_MAX_CNAME_CHAIN = 10
_HOSTMASTER = "hostmaster"


class KeyNotFound(Exception):
    """No key under the name: NXDOMAIN (CoreDNS's ``errKeyNotFound``)."""


class Backend(Protocol):
    min_ttl: int

    async def services(self, name: str, exact: bool, qtype: int) -> list[Service]:
        """The grouped services under ``name`` (only ``name`` itself when ``exact``); raises
        ``KeyNotFound``."""

    async def chain_lookup(self, request: Any, name: str, qtype: int) -> tuple[list[Any], bool] | None:
        """The answer section and TC flag of the rest of the chain for ``name``; None on error."""


def _fqdn(name: str) -> str:
    return name if name.endswith(".") else name + "."


def _owner(owner: str | None) -> str | bytes:
    return QNAME if owner is None else owner


def _address(service: Service, owner: str | bytes, what: int, host: str) -> bytes:
    if what == A:
        return records.a(owner, service.ttl, host)
    return records.aaaa(owner, service.ttl, host)


def _host_type(service: Service) -> tuple[int, str]:
    """``msg.HostType``: A or AAAA with the address's text, else CNAME (a name) or TXT."""
    address = host_address(service.host)
    if address is None:
        return (dns.rdatatype.CNAME if not service.text else dns.rdatatype.TXT), ""
    return (A if address.version == 4 else AAAA), str(address)


def _with_strip(service: Service, host: str) -> str:
    target = _fqdn(host)
    return target_strip(target, service.targetstrip) if service.targetstrip > 0 else target


class Lookup:
    """The answers to one query, in zone ``zone``; ``owner`` None is the question's name."""

    def __init__(self, backend: Backend, zone: str, request: Any) -> None:
        self.backend = backend
        self.zone = zone
        self.request = request
        self.truncated = False

    # -- address records (A, AAAA) and TXT, following CNAMEs --------------------------------------

    async def _apex_or_services(self, name: str, qtype: int) -> list[Service]:
        """``checkForApex``: the zone's own name is first looked up at ``apex.dns.ZONE``."""
        if name != self.zone:
            return await self.backend.services(name, False, qtype)
        try:
            return await self.backend.services("apex.dns." + self.zone, False, qtype)
        except KeyNotFound:
            return await self.backend.services(name, False, qtype)

    async def answers(self, qtype: int, name: str, owner: str | None = None,
                      previous: tuple[str, ...] = ()) -> list[Any]:
        """A, AAAA or TXT records for ``name`` (CoreDNS's ``A``, ``AAAA`` and ``TXT``)."""
        if qtype == dns.rdatatype.TXT:
            found = await self.backend.services(name, False, qtype)
        else:
            found = await self._apex_or_services(name, qtype)
        out: list[Any] = []
        seen: set[str] = set()
        for service in found:
            what, address = _host_type(service)
            if what == dns.rdatatype.CNAME:
                out.extend(await self._follow(qtype, name, owner, service, previous))
            elif what == qtype and qtype != dns.rdatatype.TXT:
                if service.host not in seen:
                    seen.add(service.host)
                    out.append(_address(service, _owner(owner), what, address))
            elif what == qtype:  # TXT
                if service.text not in seen:
                    seen.add(service.text)
                    out.append(records.txt(_owner(owner), service.ttl, *_split255(service.text)))
        return out

    async def _follow(self, qtype: int, name: str, owner: str | None, service: Service,
                      previous: tuple[str, ...]) -> list[Any]:
        target = _fqdn(service.host)
        lowered = normalize(target)
        if is_subdomain(lowered, name):
            return []  # x CNAME x (or below x, as a prefix search finds it) is a loop
        if len(previous) > _MAX_CNAME_CHAIN or target in previous:
            return []
        cname = records.cname(_owner(owner), service.ttl, target)
        if is_subdomain(lowered, self.zone):
            try:
                following = await self.answers(qtype, lowered, target, (*previous, target))
            except KeyNotFound:
                return []
            return [cname, *following] if following else []
        found = await self.backend.chain_lookup(self.request, target, qtype)
        if found is None:
            return []
        answer, truncated = found
        self.truncated = self.truncated or truncated
        return [cname, *answer]

    # -- SRV and MX: targets, with their addresses in the additional section ----------------------

    async def srv(self, name: str) -> tuple[list[Any], list[Any]]:
        found = await self.backend.services(name, False, dns.rdatatype.SRV)
        answer: list[Any] = []
        extra: list[Any] = []
        dup: set[tuple[str, int, str]] = set()
        looked_up: set[str] = set()
        totals: dict[int, int] = {}
        for service in found:
            totals[service.priority] = totals.get(service.priority, 0) + (service.weight or 100)
        for service in found:
            if service.port == -1:
                continue
            share = 100.0 / totals[service.priority] * (service.weight or 100)
            weight = math.floor(share) & 0xFFFF or 1  # Go's uint16(), and at least 1
            what, address = _host_type(service)
            if what == dns.rdatatype.CNAME:
                target = _with_strip(service, service.host)
                answer.append(records.srv(QNAME, service.ttl, service.priority, weight, service.port, target))
                if target not in looked_up:
                    looked_up.add(target)
                    extra.extend(await self._target_addresses(target, both_families=True))
            elif what in (A, AAAA):
                target = _with_strip(service, domain(service.key))
                if (target, service.port, "") not in dup:
                    dup.add((target, service.port, ""))
                    answer.append(
                        records.srv(QNAME, service.ttl, service.priority, weight, service.port, target)
                    )
                if (target, 0, address) not in dup:
                    dup.add((target, 0, address))
                    extra.append(_address(service, target, what, address))
        return answer, extra

    async def mx(self, name: str) -> tuple[list[Any], list[Any]]:
        found = await self.backend.services(name, False, dns.rdatatype.MX)
        answer: list[Any] = []
        extra: list[Any] = []
        dup: set[tuple[str, int, str]] = set()
        looked_up: set[str] = set()
        for service in found:
            if not service.mail:
                continue
            what, address = _host_type(service)
            if what == dns.rdatatype.CNAME:
                target = _with_strip(service, service.host)
                answer.append(records.mx(QNAME, service.ttl, service.priority, target))
                if target not in looked_up:
                    looked_up.add(target)
                    extra.extend(await self._target_addresses(target, both_families=True))
            elif what in (A, AAAA):
                host = domain(service.key)
                target = _with_strip(service, host)
                if (target, service.priority, "") not in dup:
                    dup.add((target, service.priority, ""))
                    answer.append(records.mx(QNAME, service.ttl, service.priority, target))
                # CoreDNS keys the address by the untripped name, and owns it by it too.
                if (host, 0, address) not in dup:
                    dup.add((host, 0, address))
                    extra.append(_address(service, host, what, address))
        return answer, extra

    async def _target_addresses(self, target: str, both_families: bool) -> list[Any]:
        """A target's addresses for the additional section: from the chain when outside the zone
        (A with any CNAMEs, then AAAA without them), else the zone's own A records."""
        lowered = normalize(target)
        if not is_subdomain(lowered, self.zone):
            extra: list[Any] = []
            found = await self.backend.chain_lookup(self.request, target, A)
            if found is not None:
                extra.extend(found[0])
            found = await self.backend.chain_lookup(self.request, target, AAAA)
            if found is not None:
                extra.extend(r for r in found[0] if getattr(r, "rdtype", None) != dns.rdatatype.CNAME)
            return extra
        try:
            return await self.answers(A, lowered, target)
        except KeyNotFound:
            return []

    # -- names: CNAME, PTR, NS; and the synthesised SOA -------------------------------------------

    async def cname(self, name: str) -> list[Any]:
        found = await self.backend.services(name, True, dns.rdatatype.CNAME)
        if found and host_address(found[0].host) is None:
            return [records.cname(QNAME, found[0].ttl, _fqdn(found[0].host))]
        return []

    async def ptr(self, name: str) -> list[Any]:
        found = await self.backend.services(name, True, dns.rdatatype.PTR)
        out: list[Any] = []
        seen: set[str] = set()
        for service in found:
            if host_address(service.host) is None and service.host not in seen:
                seen.add(service.host)
                out.append(records.ptr(QNAME, service.ttl, _fqdn(service.host)))
        return out

    async def ns(self) -> tuple[list[Any], list[Any]]:
        """The zone's name servers, kept under ``ns.dns.ZONE``: each key is a server's name and
        its value the server's address."""
        found = await self.backend.services("ns.dns." + self.zone, False, dns.rdatatype.NS)
        answer: list[Any] = []
        extra: list[Any] = []
        seen: set[str] = set()
        for service in found:
            what, address = _host_type(service)
            if what not in (A, AAAA):
                raise ValueError(f"NS record must be an IP address: {service.host}")
            target = _with_strip(service, domain(service.key))
            extra.append(_address(service, target, what, address))
            if target not in seen:
                seen.add(target)
                answer.append(records.ns(QNAME, service.ttl, target))
        return answer, extra

    def soa(self) -> bytes:
        """``plugin.SOA``: synthesised, with the time as its serial."""
        min_ttl = self.backend.min_ttl
        return records.soa(
            self.zone, min(min_ttl, 300), "ns.dns." + self.zone, f"{_HOSTMASTER}.{self.zone}",
            int(time.time()) & 0xFFFFFFFF, 7200, 1800, 86400, min_ttl,
        )


def _split255(text: str) -> list[bytes]:
    """``msg.split255``: TXT text in strings of at most 255 octets."""
    raw = text.encode("utf-8")
    if len(raw) < 255:
        return [raw]
    return [raw[i : i + 255] for i in range(0, len(raw), 255)]
