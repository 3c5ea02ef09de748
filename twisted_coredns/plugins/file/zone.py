"""A zone held in memory, indexed for answering, and CoreDNS's lookup over it.

The index is CoreDNS's ``Zone``: an apex (SOA, apex NS and their signatures) kept apart, and every
other RRset in a map from owner name (lower-case presentation text, as ``Request.name`` is) to a
node. Per-name work is done once at load: the set of names that have a descendant (empty
non-terminals and wildcard checks are set lookups), and, for signed zones only, the canonical
order of the names (the NSEC predecessor), built on the first DO query.

``Zone.lookup`` follows CoreDNS's ``plugin/file/lookup.go`` step by step, quirks included, so that
its answers are CoreDNS's: the same sections, the same result (success, name error, delegation,
no data, server failure). A CNAME whose target this zone cannot answer is looked up through the
server, as CoreDNS's ``upstream`` does; ``lookup_steps`` yields those look-ups to its caller.
"""

from __future__ import annotations

import enum
import gc
import threading
from collections.abc import Generator, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import dns.name
import dns.rdataclass
import dns.rdatatype
import dns.rrset

from ...dns.names import is_subdomain, normalize, parent_of
from .wire import Templates
from .zonefile import ZoneFileError, read_zone_file

__all__ = ["Answer", "Result", "Zone", "ZoneFileError"]

_T = dns.rdatatype
_SOA, _NS, _CNAME, _DNAME, _DS = _T.SOA, _T.NS, _T.CNAME, _T.DNAME, _T.DS
_RRSIG, _NSEC, _NSEC3, _NSEC3PARAM = _T.RRSIG, _T.NSEC, _T.NSEC3, _T.NSEC3PARAM
_A, _AAAA = _T.A, _T.AAAA
_ADDITIONAL_TARGET = {_T.SRV: "target", _T.MX: "exchange", _T.SVCB: "target", _T.HTTPS: "target"}
_MAX_CHAIN = 8
"""CoreDNS follows at most 8 CNAMEs inside a zone, and nests at most 8 look-ups through the server."""


_pause_lock = threading.Lock()
_pauses = 0
_resume = False


@contextmanager
def collector_paused() -> Iterator[None]:
    """Python's cyclic garbage collector off while a zone loads: every object a load makes
    survives, so its passes (some 55 for 10^5 records, half a second) find nothing. Loads may
    overlap (reloads run in threads): the collector comes back on when the last one ends, if it
    was on before the first."""
    global _pauses, _resume
    with _pause_lock:
        if _pauses == 0:
            _resume = gc.isenabled()
            gc.disable()
        _pauses += 1
    try:
        yield
    finally:
        with _pause_lock:
            _pauses -= 1
            if _pauses == 0 and _resume:
                gc.enable()


class Result(enum.IntEnum):
    """What a lookup found (CoreDNS's ``file.Result``)."""

    SUCCESS = 0
    NAME_ERROR = 1
    DELEGATION = 2
    NO_DATA = 3
    SERVER_FAILURE = 4


@dataclass(slots=True)
class Answer:
    """The sections of a reply, as the file handler writes them."""

    answer: list[dns.rrset.RRset]
    authority: list[dns.rrset.RRset]
    additional: list[dns.rrset.RRset]
    result: Result
    cacheable: bool = field(default=True)
    """False when part of it came from a look-up through the server."""
    wildcard: str = ""
    """The wildcard that made the answer (``*.example.org.``), for CoreDNS's ``zone/wildcard``."""


UpstreamStep = tuple[str, int]
"""A look-up the zone needs from the server: (name, qtype)."""
UpstreamReply = tuple[list[dns.rrset.RRset], Result]


class _Node:
    """The RRsets of one owner name: by type, and the signatures by the type they cover."""

    __slots__ = ("name", "sigs", "types")

    def __init__(self, name: str) -> None:
        self.name = name
        self.types: dict[int, dns.rrset.RRset] = {}
        self.sigs: dict[int, dns.rrset.RRset] = {}

    def get(self, rdtype: int) -> list[dns.rrset.RRset]:
        rrset = self.types.get(rdtype)
        return [rrset] if rrset is not None else []

    def signed(self, rdtype: int, do: bool) -> list[dns.rrset.RRset]:
        """The RRset of ``rdtype`` and, with DO, its signatures (CoreDNS's ``typeFromElem``)."""
        out = self.get(rdtype)
        if do:
            sig = self.sigs.get(rdtype)
            if sig is not None:
                out.append(sig)
        return out

    def sig(self, rdtype: int) -> list[dns.rrset.RRset]:
        sig = self.sigs.get(rdtype)
        return [sig] if sig is not None else []

    def all(self) -> list[dns.rrset.RRset]:
        return [*self.types.values(), *self.sigs.values()]


def _renamed(rrsets: list[dns.rrset.RRset], owner: dns.name.Name) -> list[dns.rrset.RRset]:
    """Copies of ``rrsets`` owned by ``owner``: a wildcard's records as the answer for a name."""
    out = []
    for rrset in rrsets:
        copy = dns.rrset.RRset(owner, rrset.rdclass, rrset.rdtype, rrset.covers)
        copy.update(rrset)
        out.append(copy)
    return out


def _lower_name(name: dns.name.Name) -> str:
    return name.to_text().lower()


class Zone:
    """One zone: its records, indexed, and the lookup that answers from them.

    ``origin`` is lower case with its trailing dot, ``soa`` the SOA RRset, ``serial`` its serial.
    A zone is immutable once built; a reload builds a new one and swaps it in. ``expired`` is
    the one piece of state (``secondary`` sets it when the primary stays silent past the SOA's
    expire time); an expired zone answers SERVFAIL.
    """

    def __init__(self, origin: str) -> None:
        self.origin = normalize(origin)
        self.origin_name = dns.name.from_text(self.origin)
        self.file = ""
        self.soa: dns.rrset.RRset = dns.rrset.RRset(self.origin_name, dns.rdataclass.IN, _SOA)
        self.sig_soa: list[dns.rrset.RRset] = []
        self.ns: list[dns.rrset.RRset] = []
        self.sig_ns: list[dns.rrset.RRset] = []
        self.nodes: dict[str, _Node] = {}
        self._with_descendants: set[str] = set()
        self._canonical: list[tuple[dns.name.Name, str]] | None = None
        self._order: list[tuple[str, int, int]] = []
        self.expired = False
        self.records = 0
        self.wire_cache: dict[Any, Any] = {}
        """Encoded answers, kept by the file handler (a new zone starts with an empty one)."""
        self.templates = Templates()
        """Each RRset's wire form, made when it is first written (``wire.py``)."""

    # -- building ------------------------------------------------------------------------------

    @classmethod
    def from_rrsets(
        cls, origin: str, rrsets: Iterable[dns.rrset.RRset], file: str = "", *, out_of_zone: bool = False
    ) -> Zone:
        """A zone from RRsets (a transfer, a test), checked as a zone file is: an SOA, no NSEC3
        (CoreDNS does not serve NSEC3 zones), no CNAME beside other data, and every owner in the
        zone (unless ``out_of_zone``: a zone file may hold records of other origins, which CoreDNS
        keeps but never answers). Raises ``ZoneFileError``."""
        zone = cls(origin)
        zone.file = file
        where = f'file "{file}"' if file else "zone"
        origin_name = zone.origin_name
        seen_soa = False
        for rrset in rrsets:
            name = rrset.name
            if not out_of_zone and not name.is_subdomain(origin_name):
                raise ZoneFileError(f"{where}: out-of-zone record {name} for origin {zone.origin}")
            rdtype = rrset.rdtype
            if rdtype in (_NSEC3, _NSEC3PARAM):
                raise ZoneFileError(
                    f"NSEC3 zone is not supported, dropping RR: {name} for zone: {zone.origin}"
                )
            text = name.to_text()
            owner = text.lower()
            if text != owner:
                rrset = _renamed([rrset], dns.name.from_text(owner))[0]
            zone.records += len(rrset)
            if rdtype == _SOA:
                # CoreDNS takes the SOA wherever it is (a ". { file db.example.org }" block loads
                # example.org's file into the root zone); so do we.
                zone.soa = rrset
                seen_soa = True
                continue
            if rdtype == _NS and owner == zone.origin:
                zone.ns.append(rrset)
                continue
            if rdtype == _RRSIG:
                if rrset.covers == _SOA:
                    zone.sig_soa.append(rrset)
                    continue
                if rrset.covers == _NS and owner == zone.origin:
                    zone.sig_ns.append(rrset)
                    continue
            node = zone.nodes.get(owner)
            if node is None:
                node = zone.nodes[owner] = _Node(owner)
            bucket = node.sigs if rdtype == _RRSIG else node.types
            key = rrset.covers if rdtype == _RRSIG else rdtype
            if key in bucket:
                bucket[key].union_update(rrset)
            else:
                bucket[key] = rrset
                zone._order.append((owner, rdtype, key))
            has_cname = _CNAME in node.types
            if has_cname and any(t not in (_CNAME, _NSEC) for t in node.types):
                raise ZoneFileError(f"{where}: CNAME and other data at {owner}")
        if not seen_soa:
            if file:
                raise ZoneFileError(f'file "{file}" has no SOA record for origin {zone.origin}')
            raise ZoneFileError(f"zone has no SOA record for origin {zone.origin}")
        zone._index()
        zone.templates = Templates(len(zone._order) + 4)
        return zone

    @classmethod
    def from_file(cls, path: str, origin: str) -> Zone:
        """Load the zone file at ``path`` for ``origin``. Raises ``OSError`` when the file cannot be
        read and ``ZoneFileError`` (its text names the file and the line) for bad contents."""
        with collector_paused():
            return cls.from_rrsets(origin, read_zone_file(path, origin), file=path, out_of_zone=True)

    def _index(self) -> None:
        """Every name that has a name below it in this zone (down from the origin)."""
        below: set[str] = set()
        origin = self.origin
        for name in self.nodes:
            if name == origin:
                continue
            parent = parent_of(name)
            while parent not in below:
                below.add(parent)
                if parent == origin or parent == ".":
                    break
                parent = parent_of(parent)
        self._with_descendants = below

    # -- the public API ------------------------------------------------------------------------

    @property
    def serial(self) -> int:
        return int(self.soa[0].serial)

    def set_expired(self) -> None:
        """Mark the zone expired: from now on it answers SERVFAIL (secondary's use)."""
        self.expired = True

    def all_rrsets(self) -> list[dns.rrset.RRset]:
        """Every RRset of the zone for an AXFR: the SOA first, then the apex, then the rest in the
        order they were loaded. The trailing SOA is the transfer's business."""
        out = [self.soa, *self.sig_soa, *self.ns, *self.sig_ns]
        nodes = self.nodes
        for owner, rdtype, key in self._order:
            node = nodes[owner]
            out.append(node.sigs[key] if rdtype == _RRSIG else node.types[key])
        return out

    def transfer(self, serial: int) -> list[dns.rrset.RRset]:
        """``all_rrsets()``, or the SOA alone when ``serial`` is at or past this zone's."""
        if serial >= self.serial:
            return [self.soa]
        return self.all_rrsets()

    def lookup(self, request: object) -> Answer:
        """The answer to ``request`` (a ``Request``: its ``name``, ``qtype`` and ``do``) from this
        zone alone. A CNAME that leaves what the zone can answer gets SERVFAIL here, as in CoreDNS
        without a server; the file handler looks such names up through its server instead."""
        steps = self.lookup_steps(request.name, request.qtype, bool(request.do))  # type: ignore[attr-defined]
        try:
            next(steps)
            while True:
                steps.send(([], Result.SERVER_FAILURE))
        except StopIteration as done:
            answer: Answer = done.value
            return answer

    # -- CoreDNS's lookup ----------------------------------------------------------------------

    def _search(self, name: str) -> _Node | None:
        return self.nodes.get(name)

    def _has_descendant(self, name: str) -> bool:
        return name in self._with_descendants

    def _apex_soa(self, do: bool) -> list[dns.rrset.RRset]:
        return [self.soa, *self.sig_soa] if do else [self.soa]

    def _apex_ns(self, do: bool) -> list[dns.rrset.RRset]:
        return [*self.ns, *self.sig_ns] if do else list(self.ns)

    def _authority(self, do: bool, result: Result) -> list[dns.rrset.RRset]:
        if result in (Result.NAME_ERROR, Result.NO_DATA):
            return self._apex_soa(do)
        return self._apex_ns(do)

    def _names_down(self, qname: str) -> list[str]:
        """The origin, then each name between it and ``qname``, then ``qname`` itself."""
        chain = []
        name = qname
        origin = self.origin
        while name != origin:
            chain.append(name)
            if name == ".":
                break
            name = parent_of(name)
        chain.append(origin)
        chain.reverse()
        return chain

    def _prev(self, name: str) -> _Node | None:
        """The node at ``name`` or the last one before it in canonical order (the tree's floor)."""
        if self._canonical is None:
            self._canonical = sorted((dns.name.from_text(n), n) for n in self.nodes)
        at = self._floor(dns.name.from_text(name))
        return None if at is None else self.nodes[at]

    def _floor(self, name: dns.name.Name) -> str | None:
        canonical = self._canonical
        assert canonical is not None
        lo, hi = 0, len(canonical)
        while lo < hi:
            mid = (lo + hi) // 2
            if canonical[mid][0] <= name:
                lo = mid + 1
            else:
                hi = mid
        return canonical[lo - 1][1] if lo > 0 else None

    def _glue(self, nsrrs: list[dns.rrset.RRset], do: bool) -> list[dns.rrset.RRset]:
        glue: list[dns.rrset.RRset] = []
        for rrset in nsrrs:
            if rrset.rdtype != _NS:
                continue
            owner = rrset.name
            for rdata in rrset:
                if not rdata.target.is_subdomain(owner):
                    continue
                node = self.nodes.get(_lower_name(rdata.target))
                if node is not None:
                    glue += node.signed(_A, do)
                    glue += node.signed(_AAAA, do)
        return glue

    def _delegation(self, node: _Node, qname: str, qtype: int, do: bool) -> tuple[list, list] | None:
        ns = node.types.get(_NS)
        if ns is None or (qtype == _DS and node.name == qname):
            return None
        extra = self._glue([ns], do)
        nsrrs = [ns]
        if do:
            nsrrs += node.signed(_DS, do)
        return nsrrs, extra

    def _find_delegation(
        self, target: str, qtype: int, do: bool, exact: _Node | None
    ) -> tuple[list, list] | None:
        if not is_subdomain(target, self.origin):
            return None
        for name in self._names_down(target)[1:]:
            if name == target:
                return None if exact is None else self._delegation(exact, target, qtype, do)
            node = self.nodes.get(name)
            if node is None:
                continue
            found = self._delegation(node, target, qtype, do)
            if found is not None:
                return found
        return None

    def _additional(self, answer: list[dns.rrset.RRset], do: bool) -> list[dns.rrset.RRset]:
        extra: list[dns.rrset.RRset] = []
        seen: set[str] = set()
        for rrset in answer:
            attr = _ADDITIONAL_TARGET.get(rrset.rdtype)
            if attr is None:
                continue
            for rdata in rrset:
                target = _lower_name(getattr(rdata, attr))
                if target in seen or not is_subdomain(target, self.origin):
                    continue
                seen.add(target)
                node = self.nodes.get(target)
                if node is None:
                    continue
                for rdtype in (_A, _AAAA):
                    extra += node.signed(rdtype, do)
        return extra

    def _closer_ent_exists(self, qname: str, wildcard: str) -> bool:
        if not wildcard.startswith("*."):
            return False
        parent = wildcard[2:]
        name = qname
        while name != ".":
            name = parent_of(name)
            if name == parent or not is_subdomain(name, parent):
                return False
            if self._has_descendant(name):
                return True
        return False

    def _closest_encloser(self, qname: str) -> _Node | None:
        name = qname
        while name != "." and is_subdomain(name, self.origin):
            node = self.nodes.get(name)
            if node is not None:
                return node
            name = parent_of(name)
        return self.nodes.get(self.origin)

    def lookup_steps(
        self, qname: str, qtype: int, do: bool, depth: int = 0
    ) -> Generator[UpstreamStep, UpstreamReply, Answer]:
        """CoreDNS's ``Zone.Lookup`` for ``qname`` (lower case) and ``qtype``. A look-up through the
        server is yielded as ``(name, qtype)``; the caller sends back ``(answer RRsets, result)``."""
        if qname == self.origin:
            if qtype == _SOA:
                return Answer(self._apex_soa(do), self._apex_ns(do), [], Result.SUCCESS)
            if qtype == _NS:
                nsrrs = self._apex_ns(do)
                return Answer(nsrrs, [], self._glue(nsrrs, do), Result.SUCCESS)
        if depth > _MAX_CHAIN:
            return Answer([], [], [], Result.SERVER_FAILURE)

        nodes = self.nodes
        node: _Node | None = None
        wild_node: _Node | None = None
        wild_name = ""
        for name in self._names_down(qname):
            node = nodes.get(name)
            if node is None:
                if name == ".":
                    continue
                wildcard = "*." + parent_of(name) if parent_of(name) != "." else "*."
                wild = nodes.get(wildcard)
                if wild is not None:
                    wild_node, wild_name = wild, wildcard
                elif self._has_descendant(wildcard):
                    wild_node, wild_name = None, wildcard
                continue
            dname = node.types.get(_DNAME)
            if dname is not None and qname != name and is_subdomain(qname, name):
                target_name = dns.name.from_text(qname).relativize(dname.name).concatenate(dname[0].target)
                owner = dns.name.from_text(qname)
                if _lower_name(owner) == _lower_name(target_name):
                    return Answer([], [], [], Result.SERVER_FAILURE)
                cname = dns.rrset.from_text_list(owner, dname.ttl, "IN", "CNAME", [target_name.to_text()])
                if qtype == _CNAME:
                    found = Answer([cname], self._apex_ns(do), [], Result.SUCCESS)
                else:
                    found = yield from self._external(node, [cname], qtype, do, depth + 1)
                dnamerrs = [dname, *node.sig(_DNAME)] if do else [dname]
                found.answer = dnamerrs + found.answer
                return found
            delegation = self._delegation(node, qname, qtype, do)
            if delegation is not None:
                return Answer([], delegation[0], delegation[1], Result.DELEGATION)

        if node is not None:  # qname itself exists
            cname_rrs = node.get(_CNAME)
            if cname_rrs and qtype != _CNAME:
                return (yield from self._external(node, cname_rrs, qtype, do, depth + 1))
            rrs = node.get(qtype)
            if not rrs:
                auth = self._apex_soa(do)
                if do:
                    auth += node.signed(_NSEC, do)
                return Answer([], auth, [], Result.NO_DATA)
            additional = self._additional(rrs, do)
            if do:
                rrs += node.sig(qtype)
            return Answer(rrs, self._apex_ns(do), additional, Result.SUCCESS)

        if wild_name and not self._closer_ent_exists(qname, wild_name):
            if wild_node is None:
                return Answer([], self._apex_soa(do), [], Result.NO_DATA)
            owner = dns.name.from_text(qname)
            cname_rrs = wild_node.get(_CNAME)
            if cname_rrs and qtype != _CNAME:
                found = yield from self._external(wild_node, _renamed(cname_rrs, owner), qtype, do, depth + 1)
                found.wildcard = wild_name
                return found
            rrs = _renamed(wild_node.get(qtype), owner)
            if not rrs:
                auth = self._apex_soa(do)
                if do:
                    auth += wild_node.signed(_NSEC, do)
                return Answer([], auth, [], Result.NO_DATA, wildcard=wild_name)
            additional = self._additional(rrs, do)
            auth = self._apex_ns(do)
            if do:
                deny = self._prev(qname)
                if deny is not None:
                    auth += deny.signed(_NSEC, do)
                rrs += _renamed(wild_node.sig(qtype), owner)
            return Answer(rrs, auth, additional, Result.SUCCESS, wildcard=wild_name)

        result = Result.SUCCESS if self._has_descendant(qname) else Result.NAME_ERROR
        ret = self._apex_soa(do)
        if do:
            deny = self._prev(qname)
            if deny is not None:
                ret += deny.signed(_NSEC, do)
                if result == Result.NAME_ERROR:
                    ce = self._closest_encloser(qname)
                    if ce is not None:
                        # the wildcard below the closest encloser ("*." below the root)
                        ss = self._prev("*." + ce.name if ce.name != "." else "*.")
                        if ss is not None and ss.name != deny.name:
                            ret += ss.signed(_NSEC, do)
        return Answer([], ret, [], result)

    def _external(
        self, node: _Node, rrs: list[dns.rrset.RRset], qtype: int, do: bool, depth: int
    ) -> Generator[UpstreamStep, UpstreamReply, Answer]:
        """CoreDNS's ``externalLookup``: follow CNAMEs inside the zone, and ask the server for a
        target the zone holds no node for."""
        rrs = list(rrs)
        if do:
            rrs += node.sig(_CNAME)
        target = _lower_name(rrs[0][0].target)
        target_node = self.nodes.get(target)
        hops = 0
        while True:
            delegation = self._find_delegation(target, qtype, do, target_node)
            if delegation is not None:
                return Answer(rrs, delegation[0], delegation[1], Result.DELEGATION)
            if target_node is None or qtype == _NS or (qtype == _SOA and target == self.origin):
                found, result = yield (target, qtype)
                rrs += found
                return Answer(
                    rrs, self._authority(do, result), self._additional(rrs, do), result, cacheable=False
                )
            if hops:
                if hops > _MAX_CHAIN:
                    return Answer(rrs, self._apex_ns(do), self._additional(rrs, do), Result.SUCCESS)
            cname = target_node.types.get(_CNAME)
            if cname is None:
                break
            rrs.append(cname)
            if do:
                rrs += target_node.sig(_CNAME)
            target = _lower_name(cname[0].target)
            target_node = self.nodes.get(target)
            hops += 1
        targets = target_node.get(qtype) if target_node is not None else []
        if targets:
            rrs += targets
            if do:
                rrs += target_node.sig(qtype)
        return Answer(rrs, self._apex_ns(do), self._additional(rrs, do), Result.SUCCESS)
