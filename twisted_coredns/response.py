"""What a plugin chain returns, and how replies are put on the wire.

A handler returns a ``Response`` (or a Deferred of one). Most carry the finished wire bytes of the
reply; a response without bytes is CoreDNS's "not written" case: the chain only says which rcode it
wants (and why, in ``error``), and the server writes a bare reply with that rcode.

Building the reply is done here, once, for every plugin: header flags copied from the query, the
question copied verbatim, records appended, and an OPT record mirrored when the query had EDNS (what
CoreDNS's ``SizeAndDo`` does). Truncation to the client's buffer keeps a prefix of the records, which
is always valid wire because compression pointers only point backwards.
"""

from __future__ import annotations

import asyncio
import io
import struct
from collections.abc import Callable, Coroutine, Generator, Iterable, Sequence
from typing import TYPE_CHECKING, Any, Union

from twisted.internet.defer import Deferred, ensureDeferred
from twisted.python.failure import Failure

from .dns.constants import EDNS_DO, OPT, QR, RCODE_MASK, SERVFAIL, TC
from .dns.dnspython import parse_message
from .dns.header import COUNTS, HEADER, U16, flags_of, reply_flags
from .dns.wire import find_opt, records, skip_name, skip_question
from .request import Request

if TYPE_CHECKING:
    import dns.message
    import dns.rrset

_OPT_TAIL = struct.Struct("!HHBBHH")


class Response:
    """A reply: its wire bytes, its rcode, and the error that explains a failure.

    ``plugin`` names the plugin that wrote it (CoreDNS's metrics label). ``has_opt`` is True when
    the bytes are known to carry an OPT record, False when known not to, None when unknown.
    """

    __slots__ = ("error", "has_opt", "plugin", "rcode", "wire")

    def __init__(
        self,
        wire: bytes | None,
        rcode: int | None = None,
        error: BaseException | str | None = None,
        plugin: str = "",
        has_opt: bool | None = None,
    ) -> None:
        self.wire = wire
        if rcode is None:
            rcode = wire[3] & RCODE_MASK if wire is not None and len(wire) >= 4 else SERVFAIL
        self.rcode = rcode
        self.error = error
        self.plugin = plugin
        self.has_opt = has_opt

    @property
    def written(self) -> bool:
        """False for CoreDNS's "not written" results: the server must still write a reply."""
        return self.wire is not None

    @property
    def flags(self) -> int:
        if self.wire is None or len(self.wire) < 4:
            return QR
        return flags_of(self.wire)

    @property
    def size(self) -> int:
        return len(self.wire) if self.wire is not None else 0

    def message(self) -> dns.message.Message:
        """The reply as a dnspython message (parsed now: keep it out of hot paths)."""
        if self.wire is None:
            raise ValueError("a not-written response has no message")
        return parse_message(self.wire, ignore_trailing=True)

    def __await__(self) -> Generator[Any, Any, Response]:
        """A ``Response`` is its own result when awaited, so an ``async def serve`` passes on
        with ``return await self.serve_next(request)`` whichever way the rest of the chain
        answers (a Response, a Deferred, a coroutine)."""
        return self
        yield  # unreachable: makes this a generator, so ``await`` gets ``self`` at once

    @classmethod
    def not_written(cls, rcode: int, error: BaseException | str | None = None, plugin: str = "") -> Response:
        return cls(None, rcode, error, plugin)

    @classmethod
    def no_reply(cls, plugin: str = "") -> Response:
        """CoreDNS's "success, but nothing written": the server sends nothing at all (erratic's
        drop, shed's load shedding). Its wire is empty, so ``finish`` gives ``b""``."""
        return cls(b"", 0, None, plugin, False)

    def __repr__(self) -> str:
        state = f"{len(self.wire)} bytes" if self.wire is not None else "not written"
        return f"<Response rcode={self.rcode} {state} plugin={self.plugin!r}>"


class StreamResponse(Response):
    """A reply of several messages, for TCP (a zone transfer): ``wire`` is the first message and
    ``more`` the rest, each complete (ID, question, OPT and any signature already in place). The
    TCP server writes them all, in order; over UDP only the first would go."""

    __slots__ = ("more",)

    def __init__(self, messages: Sequence[bytes], plugin: str = "") -> None:
        super().__init__(messages[0], None, None, plugin, True)
        self.more = list(messages[1:])


def opt_record(request: Request, rcode: int = 0) -> bytes:
    """The OPT record CoreDNS puts in a reply to an EDNS query: the client's size, version 0,
    the DO bit mirrored, the upper bits of an extended rcode, and the client's options that
    CoreDNS keeps (``SupportedOptions``: NSID, EXPIRE, COOKIE, TCP-KEEPALIVE, PADDING)."""
    eflags = request.edns_flags & EDNS_DO
    options = _supported_options(request.edns_options) if request.edns_options else b""
    fixed = _OPT_TAIL.pack(OPT, request.udp_size, (rcode >> 4) & 0xFF, 0, eflags, len(options))
    return b"\x00" + fixed + options


_SUPPORTED_OPTIONS = {3, 9, 10, 11, 12}


def support_option(code: int) -> None:
    """Keep option ``code`` of a query in the reply's OPT record too (CoreDNS's
    ``edns.SetSupportedOption``, which ``rewrite edns0 local`` calls for its codes). Process-wide,
    as in CoreDNS."""
    _SUPPORTED_OPTIONS.add(code)
_TWO_U16 = struct.Struct("!HH")


def _supported_options(rdata: bytes) -> bytes:
    kept = []
    off = 0
    while off + 4 <= len(rdata):
        code, length = _TWO_U16.unpack_from(rdata, off)
        end = off + 4 + length
        if end > len(rdata):
            break
        if code in _SUPPORTED_OPTIONS:
            kept.append(rdata[off:end])
        off = end
    return b"".join(kept)


def _encode_section(
    out: io.BytesIO, records: Iterable[Any], compress: dict[Any, int]
) -> int:
    count = 0
    for rec in records:
        if isinstance(rec, bytes | bytearray):
            out.write(rec)
            count += 1
        else:
            # a dnspython RRset (or RRset-like): it writes itself with name compression
            count += rec.to_wire(out, compress)
    return count


def reply(
    request: Request,
    rcode: int = 0,
    answer: Sequence[Any] = (),
    authority: Sequence[Any] = (),
    additional: Sequence[Any] = (),
    *,
    aa: bool = False,
    ra: bool = False,
    plugin: str = "",
    error: BaseException | str | None = None,
) -> Response:
    """Build a reply to ``request``.

    Records are either wire bytes (``twisted_coredns.dns.records`` builds them, owned by
    ``QNAME``, the question's name) or dnspython RRsets. The OPT record is added when the query had one.
    """
    records = [*answer, *authority, *additional]
    if all(type(r) is bytes for r in records):
        return reply_records(
            request, b"".join(records), len(answer), len(authority), len(additional),
            rcode=rcode, aa=aa, ra=ra, plugin=plugin, error=error,
        )
    edns = request.edns_version >= 0
    out = io.BytesIO()
    out.write(HEADER.pack(request.id, reply_flags(request.flags, rcode, aa, ra), 1, 0, 0, 0))
    out.write(request.wire[12 : request.end_of_question])
    import dns.name

    compress: dict[Any, int] = {dns.name.from_text(request.qname): 12}
    an = _encode_section(out, answer, compress)
    ns = _encode_section(out, authority, compress)
    ar = _encode_section(out, additional, compress)
    if edns:
        out.write(opt_record(request, rcode))
        ar += 1
    wire = out.getvalue()
    return Response(wire[:4] + COUNTS.pack(1, an, ns, ar) + wire[12:], rcode, error, plugin, edns)


def reply_records(
    request: Request,
    records: bytes,
    answer: int = 0,
    authority: int = 0,
    additional: int = 0,
    *,
    rcode: int = 0,
    aa: bool = False,
    ra: bool = False,
    plugin: str = "",
    error: BaseException | str | None = None,
) -> Response:
    """The fastest reply: ``records`` are the encoded sections, back to back, with their counts.

    For plugins on the hot path that encode their records themselves (whoami, a cache hit);
    ``reply`` is the general form.
    """
    edns = request.edns_version >= 0
    flags = reply_flags(request.flags, rcode, aa, ra)
    head = HEADER.pack(request.id, flags, 1, answer, authority, additional + 1 if edns else additional)
    wire = head + request.wire[12 : request.end_of_question] + records
    if edns:
        wire += opt_record(request, rcode)
    return Response(wire, rcode, error, plugin, edns)


def error_reply(request: Request, rcode: int, error: BaseException | str | None = None) -> Response:
    """A reply carrying only the question and ``rcode`` (CoreDNS's ``SetRcode`` + ``SizeAndDo``).
    Extended rcodes (BADVERS) go into the OPT record."""
    return reply(request, rcode, error=error)


def from_message(
    request: Request, message: dns.message.Message, plugin: str = "", error: BaseException | str | None = None
) -> Response:
    """A reply from a dnspython message built by a plugin. Its ID is set to the query's and an
    OPT record is mirrored when the query had EDNS and the message has none."""
    message.id = request.id
    if request.edns and message.edns < 0:
        message.use_edns(0, request.edns_flags & EDNS_DO, request.udp_size)
    wire = message.to_wire()
    return Response(wire, message.rcode(), error, plugin, message.edns >= 0)


def _record_bounds(wire: bytes) -> tuple[int, list[tuple[int, int, int, bool]]]:
    """Offsets of each record after the question: (section, start, end, is_opt)."""
    _id, _flags, qd, an, ns, ar = HEADER.unpack_from(wire)
    end_of_question = skip_question(wire, qd)
    return end_of_question, [
        (section, start, end, rtype == OPT)
        for section, start, rtype, _class, _ttl, _rdata, end in records(wire, end_of_question, an, ns, ar)
    ]


def _has_opt(wire: bytes) -> bool:
    """Whether any record is an OPT record; an unparsable reply counts as having one (it is sent
    as it is)."""
    try:
        _id, _flags, qd, an, ns, ar = HEADER.unpack_from(wire)
        return find_opt(wire, skip_question(wire, qd), 0, an + ns + ar) >= 0
    except (IndexError, ValueError, struct.error):
        return True


def finish(request: Request, response: Response) -> bytes:
    """The bytes to send: the ID restored, OPT mirrored where missing, truncated to the client's size.

    A not-written response becomes an error reply here.
    """
    if response.wire is None:
        response = error_reply(request, response.rcode, response.error)
    wire = response.wire
    assert wire is not None
    if not wire:
        return wire  # Response.no_reply: nothing to send
    if wire[:2] != request.wire[:2]:
        wire = request.wire[:2] + wire[2:]
    if request.edns_version >= 0 and response.has_opt is not True:
        # has_opt False: known to have none (cache hits), no need to walk the records
        if response.has_opt is False or not _has_opt(wire):
            arcount = U16.unpack_from(wire, 10)[0] + 1
            wire = wire[:10] + U16.pack(arcount) + wire[12:] + opt_record(request, response.rcode)
    if len(wire) > request.size:
        wire = truncate(wire, request.size)
    return wire


def truncate(wire: bytes, size: int) -> bytes:
    """Fit a reply into ``size`` bytes: keep the question and as many leading records as fit,
    keep the OPT record, set TC when anything was left out (what miekg's ``Msg.Truncate`` does).
    Unlike miekg, the result is never larger than ``size`` (at least 512): an OPT record whose
    options would not leave room for the question loses its options.

    Records after an OPT that is not last are never kept: lifting the OPT out would shift them and
    break compression pointers into them.
    """
    try:
        end_of_question, records = _record_bounds(wire)
    except (IndexError, ValueError, struct.error):
        end_of_question, records = len(wire), []
    opt = b""
    plain: list[tuple[int, int, int]] = []
    for section, start, end, is_opt in records:
        if is_opt:
            opt = wire[start:end]
            break
        plain.append((section, start, end))
    flags, qd = _TWO_U16.unpack_from(wire, 2)
    left_out = False
    if opt and end_of_question + len(opt) > size:
        # The client's own options, echoed (a 1,500-octet PADDING, say), leave no room for the
        # question: the OPT record goes without them.
        fixed = skip_name(opt, 0) + 8  # owner, type, size, TTL: what is left of the record
        opt = opt[:fixed] + b"\x00\x00"
        left_out = True
    budget = size - len(opt)
    if end_of_question > budget:
        # Not even the question fits (a tiny buffer): the header alone.
        end_of_question, qd = 12, 0
        left_out = True
    length = end_of_question
    kept = [0, 0, 0]
    parts = [wire[12:end_of_question]]
    for section, start, end in plain:
        if length + (end - start) > budget:
            break
        parts.append(wire[start:end])
        length += end - start
        kept[section] += 1
    if left_out or sum(kept) + (1 if opt else 0) < len(records):
        flags |= TC
    header = wire[:2] + U16.pack(flags) + COUNTS.pack(qd, kept[0], kept[1], kept[2] + (1 if opt else 0))
    return header + b"".join(parts) + opt


HandlerResult = Union["Response", Deferred["Response"], Coroutine[Any, Any, "Response"]]
"""What ``IHandler.serve`` returns: a ``Response`` now, a Deferred of one, or a coroutine
(``async def serve``) whose result is one."""


def then(
    result: Any,
    callback: Callable[[Response], Any],
    errback: Callable[[Failure], Any] | None = None,
) -> Any:
    """Act on what the rest of the chain returned, whichever way it returned it.

    ``result`` is a handler's return value: a ``Response`` (``callback`` runs now, no Deferred is
    made), a Deferred, or a coroutine (``callback`` runs when it fires). ``errback``, if given,
    gets the failure of a Deferred or coroutine; a handler that raised did so before there was a
    result, so ``Handler.serve_next_then`` is the form that catches that too. Returns what
    ``callback`` returns, now or as a Deferred.
    """
    if type(result) is Response:
        return callback(result)
    if asyncio.iscoroutine(result):
        result = ensureDeferred(result)
    if isinstance(result, Deferred):
        if errback is None:
            return result.addCallback(callback)
        return result.addCallbacks(callback, errback)
    return callback(result)
