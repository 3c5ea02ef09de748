"""The etcd handler: reads the keys under a query's name from etcd on every query (as CoreDNS
does: no watch, no copy that could be stale) and answers as CoreDNS's ``plugin/etcd`` does.

- A name outside the plugin's zones goes to the next plugin.
- A, AAAA, TXT, CNAME, PTR, MX, SRV, SOA and (at the zone's apex) NS are answered by ``Lookup``;
  any other type is answered NODATA or NXDOMAIN, after an A lookup tells the two apart.
- No key at or under the name: NXDOMAIN with the synthesised SOA, or the next plugin when
  ``fallthrough`` covers the name. etcd unreachable or too slow (5 s): SERVFAIL with the SOA.
- A value that cannot be read (not JSON, wrong types, a bad host or key name) is left out of the
  answer, with one warning per key and value (CoreDNS fails the whole query instead).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from twisted.internet import defer, task
from zope.interface import implementer

from ...clog import PluginLogger
from ...dns import AAAA, MX, NS, NXDOMAIN, PTR, SERVFAIL, SOA, SRV, TC, TXT, A, Zones, name_wire
from ...dns.constants import CNAME
from ...interfaces import IReady
from ...plugin import Handler
from ...request import Request
from ...response import Response, from_message, reply
from .client import EtcdClient, EtcdError, KeyValue
from .lookup import KeyNotFound, Lookup
from .service import BadValue, Service, domain, group, host_address, path, path_with_wildcard

log = PluginLogger("etcd")

DEFAULT_PATH = "skydns"
DEFAULT_ENDPOINT = "http://localhost:2379"
DEFAULT_PRIORITY = 10
DEFAULT_TTL = 300
DEFAULT_MIN_LEASE_TTL = 30
DEFAULT_MAX_LEASE_TTL = 86400
_PROBE_INTERVAL = 1.0
_COMPRESS_ABOVE = 512  # bytes of reply past which it is re-encoded with name compression
_DECODED_LIMIT = 65536  # decoded values kept; past it the memo starts again


@implementer(IReady)
class Etcd(Handler):
    name = "etcd"
    min_ttl = 30  # the SOA's minimum (CoreDNS's ``MinTTL``)

    def __init__(
        self,
        zones: Sequence[str],
        client: EtcdClient,
        *,
        path_prefix: str = DEFAULT_PATH,
        fall: Sequence[str] = (),
        min_lease_ttl: int = DEFAULT_MIN_LEASE_TTL,
        max_lease_ttl: int = DEFAULT_MAX_LEASE_TTL,
    ) -> None:
        self.zones = Zones(zones)
        self.client = client
        self.path_prefix = path_prefix
        self.fall = Zones(fall)
        self.min_lease_ttl = min_lease_ttl or DEFAULT_MIN_LEASE_TTL
        self.max_lease_ttl = max_lease_ttl or DEFAULT_MAX_LEASE_TTL
        self.reachable = False
        # (key, value) -> the service, or None for a value that was warned about once already.
        self._decoded: dict[tuple[str, bytes], Service | None] = {}
        self._prober: defer.Deferred[None] | None = None
        self._stopping = False

    # -- readiness ------------------------------------------------------------------------------

    def ready(self) -> bool:
        return self.reachable

    def start(self) -> None:
        """Probe etcd until it answers once; ``/ready`` waits for that. An unreachable etcd is
        not fatal: the server serves (SERVFAIL for these zones) and says why in the log."""
        self._stopping = False
        if self._prober is not None and not self._prober.called:
            return  # already probing (the servers of a block start it once each)
        self._prober = defer.ensureDeferred(self._probe_until_reachable())
        self._prober.addErrback(lambda failure: failure.trap(defer.CancelledError))

    async def _probe_until_reachable(self) -> None:
        said = ""
        while not self.reachable and not self._stopping:
            try:
                await self.client.probe()
            except EtcdError as exc:
                reason = str(exc)
                if not said:
                    log.warning(f"etcd is not reachable at {', '.join(self.client.endpoints)}: {reason}; "
                                "retrying every second, not ready until it answers")
                said = reason
                if self._stopping:
                    return
                await task.deferLater(self.client.clock, _PROBE_INTERVAL, lambda: None)
                continue
            if said:
                log.info(f"etcd is reachable at {', '.join(self.client.endpoints)}")
            self.reachable = True

    def stop(self) -> defer.Deferred[None]:
        self._stopping = True
        # Close first: a cancelled connection attempt fails like a refused one, and a closed
        # client does not retry it.
        closed = self.client.close()
        if self._prober is not None and not self._prober.called:
            self._prober.cancel()
        return closed

    # -- serving --------------------------------------------------------------------------------

    def serve(self, request: Request) -> Any:
        zone = self.zones.matches(request.name)
        if zone is None:
            return self.serve_next(request)
        return self._answer(request, zone)

    async def _answer(self, request: Request, zone: str) -> Response:
        lookup = Lookup(self, zone, request)
        name, qtype = request.name, request.qtype
        answer: list[Any] = []
        extra: list[Any] = []
        try:
            if qtype in (A, AAAA, TXT):
                answer = await lookup.answers(qtype, name)
            elif qtype == CNAME:
                answer = await lookup.cname(name)
            elif qtype == PTR:
                answer = await lookup.ptr(name)
            elif qtype == MX:
                answer, extra = await lookup.mx(name)
            elif qtype == SRV:
                answer, extra = await lookup.srv(name)
            elif qtype == SOA:
                answer = [lookup.soa()]
            elif qtype == NS and name == zone:
                answer, extra = await lookup.ns()
            else:
                await lookup.answers(A, name)  # only to tell NODATA from NXDOMAIN
        except KeyNotFound:
            if self.fall.covers(name):
                return await self.serve_next(request)
            return reply(request, NXDOMAIN, authority=[lookup.soa()], aa=True, plugin=self.name)
        except (EtcdError, ValueError) as exc:
            return reply(request, SERVFAIL, authority=[lookup.soa()], aa=True, plugin=self.name,
                         error=f"plugin/etcd: {exc}")
        self.reachable = True
        if not answer:
            return reply(request, authority=[lookup.soa()], aa=True, plugin=self.name)
        response = reply(request, answer=answer, additional=extra, aa=True, plugin=self.name)
        if response.wire is not None and len(response.wire) > _COMPRESS_ABOVE:
            # The builders write names in full; a long CNAME chain or SRV set fits UDP only once
            # compressed, as CoreDNS compresses it.
            response = from_message(request, response.message(), plugin=self.name)
        if lookup.truncated and response.wire is not None:
            wire = bytearray(response.wire)
            wire[2] |= TC >> 8
            response.wire = bytes(wire)
        return response

    # -- the backend that Lookup asks -------------------------------------------------------------

    async def services(self, name: str, exact: bool, qtype: int) -> list[Service]:
        """CoreDNS's ``Records`` then ``msg.Group``: the services at (and, unless ``exact``,
        under) ``name``, a ``*`` or ``any`` label matching any key segment."""
        key, star = path_with_wildcard(name, self.path_prefix)
        kvs = await self._get(key, recursive=not exact)
        segments = path(name, self.path_prefix).split("/") if star else []
        found: list[Service] = []
        leased: list[tuple[int, Service, int]] = []
        for kv in kvs:
            if star and not _wildcard_matches(kv.key, segments):
                continue
            service = self._decode(kv)
            if service is None:
                continue
            if kv.lease:
                leased.append((len(found), service, kv.lease))
            found.append(service.with_defaults(service.ttl or DEFAULT_TTL, DEFAULT_PRIORITY))
        if leased:
            await self._lease_ttls(found, leased)
        # ``shouldInclude``: a service without a host is only a TXT record's text.
        return group([s for s in found if s.host or (qtype == TXT and s.text)])

    async def _get(self, key: str, recursive: bool) -> list[KeyValue]:
        if recursive:
            kvs = await self.client.get(key if key.endswith("/") else key + "/", prefix=True)
            if kvs:
                return kvs
            key = key.rstrip("/") if key != "/" else key
        kvs = await self.client.get(key)
        if not kvs:
            raise KeyNotFound(key)
        return kvs

    async def _lease_ttls(self, found: list[Service], leased: list[tuple[int, Service, int]]) -> None:
        """``Etcd.TTL``: a leased key lives no longer than its lease, clamped to the
        ``min-lease-ttl``..``max-lease-ttl`` range."""
        ttls = await defer.gatherResults(
            [defer.ensureDeferred(self._lease_ttl(lease)) for _, _, lease in leased]
        )
        for (i, service, _), lease_ttl in zip(leased, ttls, strict=True):
            if lease_ttl <= 0:
                continue
            bounded = min(max(lease_ttl, self.min_lease_ttl), self.max_lease_ttl)
            own = service.ttl
            found[i] = found[i].with_defaults(bounded if own == 0 else min(bounded, own), DEFAULT_PRIORITY)

    async def _lease_ttl(self, lease: int) -> int:
        try:
            return await self.client.lease_ttl(lease)
        except EtcdError:
            return 0

    def _decode(self, kv: KeyValue) -> Service | None:
        memo = (kv.key, kv.value)
        if memo in self._decoded:
            return self._decoded[memo]
        service: Service | None
        try:
            try:
                value = json.loads(kv.value)
            except ValueError as exc:
                raise BadValue(f"invalid JSON: {exc}") from None
            service = Service.from_json(kv.key, value)
            if service.host and host_address(service.host) is not None:
                name_wire(domain(kv.key))  # an address record is owned by its key's name
        except (BadValue, ValueError) as exc:
            log.warning(f"skipping key {kv.key}: {exc}")
            service = None
        if len(self._decoded) >= _DECODED_LIMIT:
            self._decoded.clear()
        self._decoded[memo] = service
        return service

    async def chain_lookup(self, request: Request, name: str, qtype: int) -> tuple[list[Any], bool] | None:
        """CoreDNS's ``Upstream.Lookup``: the question asked of the rest of the chain."""
        try:
            response = await self.serve_next(request.replace(qname=name, qtype=qtype))
        except Exception:
            return None
        if not isinstance(response, Response) or not response.written:
            return None  # no next plugin, or a bare rcode: nothing to add (CoreDNS's tables agree)
        message = response.message()
        return list(message.answer), bool(response.flags & TC)


def _wildcard_matches(key: str, segments: list[str]) -> bool:
    """``loopNodes``'s filter: every segment of the name matches the key's, ``*`` and ``any``
    matching anything; a key shorter than the name is left out."""
    parts = key.split("/")
    for i, segment in enumerate(segments):
        if i >= len(parts):
            return False
        if segment in ("*", "any"):
            continue
        if parts[i] != segment:
            return False
    return True
