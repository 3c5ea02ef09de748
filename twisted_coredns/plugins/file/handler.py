"""The file handler: answers from its zones, hands them out for transfers, and reloads them.

A query meets, in order: the zone match (the longest of the plugin's zones; none: the next
plugin), the checks CoreDNS makes before a lookup (a zone not loaded, AXFR/IXFR, NOTIFY, an
expired zone), then the answer cache (wire bytes of earlier answers of this zone, by name as sent,
type and DO bit), and only on a miss ``Zone.lookup_steps`` and the encoding of its sections. A
lookup that needs the server (a CNAME to a name the zone does not hold) runs the rest of the
block's chain for that name, as CoreDNS's ``upstream`` does, and is never cached.
"""

from __future__ import annotations

import os
from collections.abc import Generator, Iterable
from typing import Any

import dns.name
import dns.rrset
from twisted.internet import threads
from twisted.internet.task import LoopingCall
from zope.interface import implementer

from ...clog import PluginLogger
from ...dns.constants import AXFR, IXFR, NOERROR, NXDOMAIN, REFUSED, SERVFAIL
from ...dns.names import Zones
from ...interfaces import IReady, ITransferer
from ...plugin import Handler
from ...request import Request
from ...response import Response, reply_records, then
from .wire import SectionWriter, Templates, question_suffixes
from .zone import Answer, Result, UpstreamReply, UpstreamStep, Zone, ZoneFileError

log = PluginLogger("file")

_OPCODE_NOTIFY = 4
_CACHE_LIMIT = 20_000
"""Answers kept per zone; past it the cache starts again (random names must not grow it forever)."""
_FALL = object()
_DEPTH_KEY = "file/upstream-depth"


class _Cached:
    __slots__ = ("aa", "an", "ar", "ns", "rcode", "records", "wildcard")

    def __init__(self, records: bytes, an: int, ns: int, ar: int, rcode: int, aa: bool,
                 wildcard: str = "") -> None:
        self.records, self.an, self.ns, self.ar, self.rcode, self.aa = records, an, ns, ar, rcode, aa
        self.wildcard = wildcard


def encode_sections(request: Request, answer: Answer, templates: Templates) -> tuple[bytes, int, int, int]:
    """The answer's sections in wire form, compressed against the question as ``request`` has it,
    with their record counts."""
    wire = request.wire
    end = request.end_of_question
    compress = None
    # Names may point into the question only when it is spelled in lower case: CoreDNS writes the
    # zone's names as the zone has them, whatever the case of the question.
    if request.qname == request.name and request.name != ".":
        compress = question_suffixes(_wire_labels(wire))
    start = end
    writer = SectionWriter(wire[:end], compress)
    counts = [0, 0, 0]
    for i, section in enumerate((answer.answer, answer.authority, answer.additional)):
        n = 0
        for rrset in section:
            n += writer.rrset(templates, rrset)
        counts[i] = n
    return bytes(writer.out[start:]), counts[0], counts[1], counts[2]


def _wire_labels(wire: bytes) -> tuple[bytes, ...]:
    """The labels of the question name (uncompressed, right after the header)."""
    labels = []
    i = 12
    while True:
        length = wire[i]
        if length == 0:
            labels.append(b"")
            return tuple(labels)
        labels.append(wire[i + 1 : i + 1 + length])
        i += 1 + length


def _reply_result(response: Response) -> UpstreamReply:
    """What CoreDNS's ``doLookup`` makes of the server's reply to a look-up."""
    if not response.written:
        return [], Result.SUCCESS
    message = response.message()
    answer = list(message.answer)
    rcode = message.rcode()
    if rcode == NXDOMAIN:
        return answer, Result.NAME_ERROR
    if rcode == SERVFAIL:
        return answer, Result.SERVER_FAILURE
    if rcode == NOERROR and not answer:
        return answer, Result.NO_DATA
    return answer, Result.SUCCESS


@implementer(ITransferer, IReady)
class File(Handler):
    """Answers for the zones of one ``file`` (or ``auto``) directive."""

    name = "file"

    def __init__(self, zones: dict[str, Zone | None], *, fall: Iterable[str] = (), block: Any = None) -> None:
        self.zones = zones
        self.names = Zones(zones)
        self.fall = Zones(fall)
        self.block = block
        """The server block's config: a CNAME target is looked up through its chain."""
        self.transfer_handler: Any = None

    # -- zones ---------------------------------------------------------------------------------

    def set_zones(self, zones: dict[str, Zone | None]) -> None:
        self.zones = zones
        self.names = Zones(zones)

    def zone_for(self, name: str) -> tuple[str | None, Zone | None]:
        origin = self.names.matches(name)
        if origin is None:
            return None, None
        return origin, self.zones.get(origin)

    def ready(self) -> bool:
        return all(z is not None for z in self.zones.values())

    def transfer(self, zone: str, serial: int) -> list[dns.rrset.RRset] | None:
        """``ITransferer``: the zone's records for AXFR, ``[soa]`` when ``serial`` is current, None
        when this handler does not hold ``zone`` (exactly), has not loaded it, or it expired."""
        found = self.zones.get(zone)
        if found is None or found.expired:
            return None
        return found.transfer(serial)

    def notify(self, origin: str) -> None:
        """Tell the ``transfer`` plugin of the block, if there is one, that ``origin`` changed."""
        sender = getattr(self.transfer_handler, "notify", None)
        if sender is None:
            return
        try:
            result = sender(origin)
        except Exception as exc:  # the transfer plugin's failure must not stop a reload
            log.warning(f"Failed sending notifies: {exc}")
            return
        if hasattr(result, "addErrback"):
            result.addErrback(lambda f: log.warning(f"Failed sending notifies: {f.getErrorMessage()}"))

    # -- serving -------------------------------------------------------------------------------

    def serve(self, request: Request) -> Any:
        origin, zone = self.zone_for(request.name)
        if origin is None:
            if self.next is None:
                return Response.not_written(REFUSED, None, self.name)
            return self.serve_next(request)
        if zone is None:
            return Response.not_written(SERVFAIL, None, self.name)
        qtype = request.qtype
        if qtype == AXFR or qtype == IXFR:
            return Response.not_written(REFUSED, None, self.name)
        if (request.flags >> 11) & 0xF == _OPCODE_NOTIFY:
            log.info(f"Dropping notify from {request.ip} for {origin}")
            return Response.not_written(NOERROR, None, self.name)
        if zone.expired:
            log.error(f"Zone {origin} is expired")
            return Response.not_written(SERVFAIL, None, self.name)

        do = bool(request.do)
        key = (request.qname, qtype, do)
        cache = zone.wire_cache
        hit = cache.get(key)
        if hit is not None:
            if hit is _FALL:
                return self.serve_next(request)
            if hit.wildcard and request.metadata is not None:
                request.metadata["zone/wildcard"] = hit.wildcard
            return reply_records(
                request, hit.records, hit.an, hit.ns, hit.ar, rcode=hit.rcode, aa=hit.aa, plugin=self.name
            )
        depth = request.get_metadata(_DEPTH_KEY) or 0
        steps = zone.lookup_steps(request.name, qtype, do, depth)
        return self._drive(request, zone, steps, None, cache, key)

    def _drive(
        self,
        request: Request,
        zone: Zone,
        steps: Generator[UpstreamStep, UpstreamReply, Answer],
        reply: UpstreamReply | None,
        cache: dict[Any, Any],
        key: Any,
    ) -> Any:
        try:
            step = next(steps) if reply is None else steps.send(reply)
        except StopIteration as done:
            return self._answer(request, zone, done.value, cache, key)
        target, qtype = step
        result = self._upstream(request, target, qtype)
        return then(
            result, lambda response: self._drive(request, zone, steps, _reply_result(response), cache, key)
        )

    def _upstream(self, request: Request, target: str, qtype: int) -> Any:
        """The server's reply for ``target``: the block's chain when the block serves that name;
        REFUSED (what the server answers for a zone it has not) otherwise."""
        block = self.block
        if block is None or not block.handlers or not Zones(block.zones).covers(target):
            return Response.not_written(REFUSED, None, self.name)
        inner = request.replace(qname=target, qtype=qtype)
        inner.set_metadata(_DEPTH_KEY, (request.get_metadata(_DEPTH_KEY) or 0) + 1)
        return block.handlers[0].serve(inner)

    def _answer(
        self, request: Request, zone: Zone, answer: Answer, cache: dict[Any, Any], key: Any
    ) -> Response:
        result = answer.result
        if (
            not answer.answer
            and result in (Result.NAME_ERROR, Result.SUCCESS)
            and self.fall.covers(request.name)
        ):
            if answer.cacheable:
                self._store(cache, key, _FALL)
            return self.serve_next(request)
        aa = True
        rcode = NOERROR
        if result == Result.NAME_ERROR:
            rcode = NXDOMAIN
        elif result == Result.DELEGATION:
            aa = bool(answer.answer)
        elif result == Result.SERVER_FAILURE:
            if not answer.answer:
                return Response.not_written(SERVFAIL, None, self.name)
            rcode = SERVFAIL
        if answer.wildcard and request.metadata is not None:
            # CoreDNS's zone/wildcard: the wildcard that made the answer, when metadata is collected.
            request.metadata["zone/wildcard"] = answer.wildcard
        records, an, ns, ar = encode_sections(request, answer, zone.templates)
        if answer.cacheable:
            self._store(cache, key, _Cached(records, an, ns, ar, rcode, aa, answer.wildcard))
        return reply_records(request, records, an, ns, ar, rcode=rcode, aa=aa, plugin=self.name)

    @staticmethod
    def _store(cache: dict[Any, Any], key: Any, value: Any) -> None:
        if len(cache) >= _CACHE_LIMIT:
            cache.clear()
        cache[key] = value


# -- reloading ---------------------------------------------------------------------------------


class ZoneReloader:
    """CoreDNS's ``Zone.Reload``: every ``interval`` seconds, read each zone's file again and swap
    the new zone in when its SOA serial changed (or, with ``by_mtime``, when the file's mtime
    moved). A file that cannot be read or parsed keeps the old zone serving, and says why."""

    def __init__(
        self,
        handler: File,
        files: dict[str, str],
        interval: float,
        *,
        by_mtime: bool = False,
        reactor: Any = None,
    ) -> None:
        self.handler = handler
        self.files = files
        self.interval = interval
        self.by_mtime = by_mtime
        self.reactor = reactor
        self.mtimes: dict[str, float] = {}
        self.timer = LoopingCall(self.check)
        if reactor is not None:
            self.timer.clock = reactor
        self.running: Any = None

    def start(self) -> None:
        if self.interval > 0:
            self.timer.start(self.interval, now=False)

    def stop(self) -> None:
        if self.timer.running:
            self.timer.stop()

    def check(self) -> Any:
        """One round over every zone; a Deferred that fires when it is done (the timer waits)."""
        if self.running is not None:
            return None
        work = threads.deferToThreadPool(self.reactor, self.reactor.getThreadPool(), self._read_all)
        self.running = work

        def swap(loaded: list[tuple[str, str, Zone]]) -> None:
            self.running = None
            for origin, path, zone in loaded:
                zones = dict(self.handler.zones)
                zones[origin] = zone
                self.handler.set_zones(zones)
                log.info(f'Successfully reloaded zone "{origin}" in "{path}" with {zone.serial} SOA serial')
                self.handler.notify(origin)

        def failed(failure: Any) -> None:
            self.running = None
            log.error(f"reload failed: {failure.getErrorMessage()}")

        return work.addCallbacks(swap, failed)

    def _read_all(self) -> list[tuple[str, str, Zone]]:
        """Runs in a thread: parse what changed; the swap happens back on the reactor."""
        loaded = []
        for origin, path in self.files.items():
            current = self.handler.zones.get(origin)
            serial = current.serial if current is not None else -1
            if self.by_mtime:
                try:
                    mtime = os.stat(path).st_mtime
                except OSError as exc:
                    log.error(f'Failed to stat zone "{origin}" in "{path}": {_os_error(exc, "stat", path)}')
                    continue
                if mtime <= self.mtimes.get(origin, 0.0):
                    continue
                self.mtimes[origin] = mtime
                serial = -1
            try:
                zone = Zone.from_file(path, origin)
            except OSError as exc:
                log.error(f'Failed to open zone "{origin}" in "{path}": {_os_error(exc, "open", path)}')
                continue
            except ZoneFileError as exc:
                log.error(f'Parsing zone "{origin}": {parse_error_text(path, origin, exc)}')
                continue
            if zone.serial == serial:
                continue
            loaded.append((origin, path, zone))
        return loaded


def _os_error(exc: OSError, op: str, path: str) -> str:
    """An OS error as Go's ``os`` package words it: ``open PATH: no such file or directory``."""
    reason = (exc.strerror or str(exc)).lower()
    return f"{op} {path}: {reason}"


def parse_error_text(path: str, origin: str, exc: ZoneFileError) -> str:
    """CoreDNS's words for a zone file that does not parse (its file and line are in ``exc``)."""
    text = str(exc)
    if text.startswith("file ") or text.startswith("NSEC3"):
        return text
    return f'failed to parse file "{path}" for origin {origin} with error {text}'
