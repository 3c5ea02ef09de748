"""The request a plugin sees: the received bytes, parsed as little and as late as possible.

Every query needs its header and question (routing needs the name), so those are parsed by hand
when the request is made, which costs about a microsecond. EDNS is found on the way for the common
query shape. The full dnspython message is built only when a plugin asks for ``message``.
"""

from __future__ import annotations

import re
import struct
import time
from functools import lru_cache
from typing import TYPE_CHECKING, Any

from .dns.constants import CD, EDNS_COOKIE, EDNS_DO, EDNS_ECS, OPCODE_MASK, OPT, RD, class_name, type_name
from .dns.dnspython import load_rdata_types, parse_message
from .dns.header import HEADER, TYPE_CLASS, U16
from .dns.names import name_wire
from .dns.wire import WireError, find_opt, read_name, records

if TYPE_CHECKING:
    import dns.message

_OPT_FIXED = struct.Struct("!HHBBHH")  # type, udp size, ext rcode, version, flags, rdlength
_EXTENDED_RCODE = "an OPT record with an extended rcode in a query"
"""A query has no rcode. One that sets the upper bits anyway would get them back as the rcode of
an upstream's FORMERR that echoes the query (unbound's does): 4081 for 255."""


class MalformedQuery(Exception):
    """The packet has a DNS header but is not a query this server can answer.

    ``rcode`` is what the reply carries (FORMERR or NOTIMP); the reply echoes the header and, when
    it parsed, the question.
    """

    def __init__(self, reason: str, rcode: int = 1) -> None:
        super().__init__(reason)
        self.rcode = rcode
        self.question: bytes | None = None


_OPTION = struct.Struct("!HH")
_READ_BY_DNSPYTHON = frozenset({EDNS_ECS, 15, 18, 22, 23, 24, 25})
"""Option codes dnspython gives a structure (ECS, extended error, report channel, the filtering
texts): the rare query that carries one is checked by dnspython itself."""


def _check_options(udp_size: int, wire: bytes, start: int, length: int) -> None:
    """The OPT record's options must read as dnspython reads them (each inside the record, a
    COOKIE of 8 or 16 to 40 octets, an ECS with a known family and prefix...), or the query is a
    FORMERR, as RFC 7873 and RFC 7871 ask. What the server accepts is then what a plugin reading
    ``message``, and the upstream a query is forwarded to, can read too.

    Walked here for the options nearly every query carries (a cookie, padding): dnspython takes
    some 13 µs to read an OPT record, more than the rest of a query costs."""
    off, end = start, start + length
    structured = False
    while off < end:
        if off + 4 > end:
            raise MalformedQuery("bad EDNS options: option header truncated")
        code, size = _OPTION.unpack_from(wire, off)
        off += 4
        if off + size > end:
            raise MalformedQuery("bad EDNS options: option data truncated")
        if code == EDNS_COOKIE:
            if size != 8 and not 16 <= size <= 40:
                raise MalformedQuery(f"bad EDNS options: a cookie of {size} octets")
        elif code in _READ_BY_DNSPYTHON:
            structured = True
        off += size
    if not structured:
        return
    import dns.exception
    import dns.rdata

    load_rdata_types()
    try:
        dns.rdata.from_wire(udp_size, OPT, wire, start, length)  # type: ignore[arg-type]
    except dns.exception.DNSException as error:
        raise MalformedQuery(f"bad EDNS options: {error}") from None


def _parse(wire: bytes) -> dns.message.Message:
    """The whole query as dnspython reads it (a TSIG record is read, not checked): a query with
    records besides its question (answer, authority, more than one additional record) must parse,
    or it is a FORMERR, as miekg/dns rejects what it cannot unpack. A forward plugin sends such a
    query on as it came, and an upstream may echo it in its reply."""
    import dns.exception

    try:
        return parse_message(wire, ignore_trailing=True, keyring=False)
    except dns.exception.DNSException as error:
        raise MalformedQuery(f"records do not parse: {error}") from None


_REPLACEABLE = frozenset(
    {"id", "flags", "qname", "qtype", "qclass", "opt", "remote", "proto", "local", "server", "zone",
     "metadata"}
)
_PLAIN_QNAME = re.compile(r"(?:[A-Za-z0-9_*/-]+\.)+").fullmatch
"""A fully qualified name whose presentation text is its own: no escapes, nothing to add."""


@lru_cache(maxsize=4096)
def _question_name(qname: str) -> tuple[bytes, str]:
    """A name for a question: its wire form, and its text as a parser of that wire writes it
    (``ValueError`` for no name)."""
    wire = name_wire(qname)
    if _PLAIN_QNAME(qname) is None:
        qname = read_name(wire, 0, False)[0]
    return wire, qname


class Request:
    """A received query and where it came from.

    Attributes that every query has are plain slots filled at construction; everything else is
    computed on demand. ``remote`` and ``local`` are ``(host, port)``; ``proto`` is ``"udp"`` or
    ``"tcp"``; ``server`` is the listen address in CoreDNS's form (``dns://:53``).
    """

    __slots__ = (
        "_message",
        "edns_flags",
        "edns_options",
        "edns_version",
        "end_of_question",
        "flags",
        "id",
        "local",
        "metadata",
        "name",
        "proto",
        "qclass",
        "qname",
        "qtype",
        "remote",
        "server",
        "start",
        "udp_size",
        "wire",
        "zone",
    )

    def __init__(
        self,
        wire: bytes,
        remote: tuple[str, int] = ("127.0.0.1", 0),
        proto: str = "udp",
        local: tuple[str, int] | None = None,
        server: str = "",
    ) -> None:
        if len(wire) < 12:
            raise MalformedQuery("packet shorter than a DNS header")
        self.wire = wire
        self.remote = remote
        self.proto = proto
        self.local = local
        self.server = server
        self.start = time.monotonic()
        self.zone = "."
        self.metadata: dict[str, Any] | None = None
        self._message: dns.message.Message | None = None
        qid, flags, qd, an, ns, ar = HEADER.unpack_from(wire)
        self.id = qid
        self.flags = flags
        opcode = (flags >> 11) & 0xF
        if opcode not in (0, 4):
            raise MalformedQuery("opcode not implemented", rcode=4)
        # The same acceptance rules as miekg/dns's default, so malformed input fails the same way.
        if qd != 1 or an > 1 or ns > 1 or ar > 2:
            raise MalformedQuery("section counts of a query are out of range")
        try:
            self.qname, off = read_name(wire, 12, False)
        except WireError as error:
            raise MalformedQuery(str(error)) from None
        if off + 4 > len(wire):
            raise MalformedQuery("question truncated")
        self.qtype, self.qclass = TYPE_CLASS.unpack_from(wire, off)
        off += 4
        self.end_of_question = off
        self.name = self.qname.lower()
        self.udp_size = 0
        self.edns_version = -1
        self.edns_flags = 0
        self.edns_options = b""
        end = off
        if ar == 1 and not an and not ns and len(wire) >= off + 11 and wire[off] == 0 and (
            wire[off + 1 : off + 3] == b"\x00\x29"
        ):
            # The shape of nearly every EDNS query: one root-owned OPT right after the question.
            # Read it here; the general walk below costs a few hundred nanoseconds more.
            _rtype, self.udp_size, ext, self.edns_version, self.edns_flags, rdlen = _OPT_FIXED.unpack_from(
                wire, off + 1
            )
            end = off + 11 + rdlen
            try:
                if end > len(wire):
                    raise MalformedQuery("record data truncated")
                if ext:
                    raise MalformedQuery(_EXTENDED_RCODE)
                if rdlen:
                    self.edns_options = wire[off + 11 : end]
                    _check_options(self.udp_size, wire, off + 11, rdlen)
            except MalformedQuery as exc:
                exc.question = wire[12:off]
                raise
        elif ar or an or ns:
            try:
                end = self._walk(off, an + ns, ar)
                self._message = _parse(wire)
            except MalformedQuery as exc:
                exc.question = wire[12:off]
                raise
        if len(wire) > end:
            # Bytes after the last record are tolerated, as miekg/dns tolerates them, and dropped,
            # as CoreDNS drops them when it packs the query again: they are in no query forwarded,
            # logged or sized, and no upstream can echo them back.
            self.wire = wire[:end]

    def _walk(self, off: int, skip: int, additional: int) -> int:
        """Find and read the OPT record among the records after the question; return where the
        last record ends."""
        wire = self.wire
        try:
            start = find_opt(wire, off, skip, additional)
            end = off
            for record in records(wire, off, skip, 0, additional):
                end = record[-1]
        except WireError as exc:
            raise MalformedQuery(str(exc)) from None
        if start < 0:
            return end
        if wire[start] != 0:
            raise MalformedQuery("more than one OPT record, or OPT not owned by the root")
        _rtype, self.udp_size, ext, self.edns_version, self.edns_flags, rdlen = _OPT_FIXED.unpack_from(
            wire, start + 1
        )
        if ext:
            raise MalformedQuery(_EXTENDED_RCODE)
        if rdlen:
            self.edns_options = wire[start + 11 : start + 11 + rdlen]
        return end

    # -- what most plugins want -------------------------------------------------------------

    @property
    def edns(self) -> bool:
        """True when the query carried an OPT record."""
        return self.edns_version >= 0

    @property
    def do(self) -> bool:
        """The DNSSEC OK bit of the query's OPT record."""
        return bool(self.edns_flags & EDNS_DO)

    @property
    def cd(self) -> bool:
        return bool(self.flags & CD)

    @property
    def rd(self) -> bool:
        return bool(self.flags & RD)

    @property
    def opcode(self) -> int:
        return (self.flags >> 11) & 0xF

    @property
    def size(self) -> int:
        """The largest reply the client accepts: its EDNS size, at least 512; 65535 over TCP."""
        if self.proto == "tcp":
            return 65535
        return self.udp_size if self.udp_size > 512 else 512

    @property
    def question_wire(self) -> bytes:
        """The question section exactly as received (reused verbatim in replies)."""
        return self.wire[12 : self.end_of_question]

    @property
    def ip(self) -> str:
        return self.remote[0]

    @property
    def port(self) -> int:
        return self.remote[1]

    @property
    def family(self) -> int:
        """1 for IPv4, 2 for IPv6, as CoreDNS's ``state.Family()``."""
        return 2 if ":" in self.remote[0] else 1

    @property
    def type_name(self) -> str:
        return type_name(self.qtype)

    @property
    def class_name(self) -> str:
        return class_name(self.qclass)

    @property
    def message(self) -> dns.message.Message:
        """The whole query as a dnspython message (parsed on first use, then kept)."""
        if self._message is None:
            self._message = parse_message(self.wire, ignore_trailing=True, keyring=False)
        return self._message

    def replace(self, **fields: Any) -> Request:
        """A copy of this request with some fields changed, for a plugin that passes on another
        query than it got (the cache's refresh, rewrite). The wire fields (``id``, ``flags``,
        ``qname``, ``qtype``, ``qclass``, and ``opt``: a ``dns.edns.Opt`` for the OPT record, or None
        for none) are written into the copy's bytes, so the copy is exactly what a client sending
        those bytes would have made (its header and question are read back by hand; the bytes are
        parsed again only when the opcode or the OPT record change); the others
        (``remote``, ``proto``, ``local``, ``server``, ``zone``, ``metadata``) are set as given. The
        copy keeps the original's start time and, unless given other ``metadata``, shares its
        metadata: it is the same query, seen further down the chain."""
        for key in fields:
            if key not in _REPLACEABLE:
                unknown = sorted(fields.keys() - _REPLACEABLE)
                raise TypeError(f"Request.replace() got unknown fields: {', '.join(unknown)}")
        if "opt" in fields or ("flags" in fields and (fields["flags"] ^ self.flags) & OPCODE_MASK):
            copy = self._reparsed(fields)
        else:
            # At most the ID, the question and flags other than the opcode change: the rest of
            # the query was checked when it arrived, so the copy takes the new fields as they are,
            # without parsing its bytes again (rewrite does this for every query it rewrites,
            # header for every query whose flags it sets).
            copy = self._clone()
            copy._message = None
            in_wire = ("qname" in fields) + ("qtype" in fields) + ("qclass" in fields)
            if in_wire:
                copy._set_question(fields.get("qname", self.qname), fields.get("qtype", self.qtype),
                                   fields.get("qclass", self.qclass))
            if "id" in fields:
                in_wire += 1
                copy.id = fields["id"]
                copy.wire = U16.pack(copy.id) + copy.wire[2:]
            if "flags" in fields:
                in_wire += 1
                copy.flags = fields["flags"]
                copy.wire = copy.wire[:2] + U16.pack(copy.flags) + copy.wire[4:]
            if len(fields) > in_wire:
                for key in ("remote", "proto", "local", "server", "zone", "metadata"):
                    if key in fields:
                        setattr(copy, key, fields[key])
        return copy

    def with_question(self, qname: str, qtype: int, qclass: int) -> Request:
        """``replace(qname=qname, qtype=qtype, qclass=qclass)``, for a plugin that asks another
        question on every query (rewrite): the same copy, without the keyword handling."""
        copy = self._clone()
        copy._message = None
        copy._set_question(qname, qtype, qclass)
        return copy

    def _set_question(self, qname: str, qtype: int, qclass: int) -> None:
        """Write a new question into this (copied) request's bytes and fields."""
        wire = self.wire
        end = self.end_of_question
        if qname != self.qname:
            name, qname = _question_name(qname)
            self.qname, self.name = qname, qname.lower()
        else:
            name = wire[12 : end - 4]
        question = name + TYPE_CLASS.pack(qtype, qclass)
        self.wire = wire[:12] + question + wire[end:]
        self.end_of_question = 12 + len(question)
        self.qtype, self.qclass = qtype, qclass

    def _reparsed(self, fields: dict[str, Any]) -> Request:
        """The copy when the flags or the OPT record change: its bytes parsed again, so a bad
        opcode or option is refused as it would be from a client."""
        wire = self.wire
        question = wire[12 : self.end_of_question]
        if "qname" in fields or "qtype" in fields or "qclass" in fields:
            question = name_wire(fields.get("qname", self.qname)) + TYPE_CLASS.pack(
                fields.get("qtype", self.qtype), fields.get("qclass", self.qclass)
            )
        wire = (
            U16.pack(fields.get("id", self.id))
            + U16.pack(fields.get("flags", self.flags))
            + wire[4:12]
            + question
            + wire[self.end_of_question :]
        )
        if "opt" in fields:
            # A ``dns.edns.Opt`` for the query's OPT record, or None to take it out.
            from .dns.edns import with_opt, without_opt

            wire = without_opt(wire) if fields["opt"] is None else with_opt(wire, fields["opt"])
        copy = Request(
            wire,
            fields.get("remote", self.remote),
            fields.get("proto", self.proto),
            fields.get("local", self.local),
            fields.get("server", self.server),
        )
        copy.start = self.start
        copy.zone = fields.get("zone", self.zone)
        copy.metadata = fields.get("metadata", self.metadata)
        return copy

    def _clone(self) -> Request:
        """A shallow copy, slot by slot (spelled out: a loop over ``__slots__`` costs five times
        as much, and ``replace`` runs for every query rewrite rewrites)."""
        copy = Request.__new__(Request)
        copy._message = self._message
        copy.edns_flags = self.edns_flags
        copy.edns_options = self.edns_options
        copy.edns_version = self.edns_version
        copy.end_of_question = self.end_of_question
        copy.flags = self.flags
        copy.id = self.id
        copy.local = self.local
        copy.metadata = self.metadata
        copy.name = self.name
        copy.proto = self.proto
        copy.qclass = self.qclass
        copy.qname = self.qname
        copy.qtype = self.qtype
        copy.remote = self.remote
        copy.server = self.server
        copy.start = self.start
        copy.udp_size = self.udp_size
        copy.wire = self.wire
        copy.zone = self.zone
        for slot in _OTHER_SLOTS:  # slots added since this list was written
            setattr(copy, slot, getattr(self, slot))
        return copy

    def set_metadata(self, key: str, value: Any) -> None:
        if self.metadata is None:
            self.metadata = {}
        self.metadata[key] = value

    def get_metadata(self, key: str) -> Any:
        if self.metadata is None:
            return None
        return self.metadata.get(key)

    def __repr__(self) -> str:
        return (
            f"<Request id={self.id} {self.qname} {self.type_name} {self.class_name} "
            f"from {self.remote[0]}:{self.remote[1]}/{self.proto}>"
        )


_OTHER_SLOTS = tuple(
    sorted(set(Request.__slots__) - set(Request._clone.__code__.co_names) - {"_OTHER_SLOTS"})
)
