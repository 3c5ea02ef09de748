"""The request a plugin sees: the received bytes, parsed as little and as late as possible.

Every query needs its header and question (routing needs the name), so those are parsed by hand
when the request is made, which costs about a microsecond. EDNS is found on the way for the common
query shape. The full dnspython message is built only when a plugin asks for ``message``.
"""

from __future__ import annotations

import struct
import time
from typing import TYPE_CHECKING, Any

from .dns.constants import CD, EDNS_DO, RD, class_name, type_name
from .dns.header import HEADER, TYPE_CLASS, U16
from .dns.names import name_wire
from .dns.wire import WireError, find_opt, read_name

if TYPE_CHECKING:
    import dns.message

_OPT_FIXED = struct.Struct("!HHBBHH")  # type, udp size, ext rcode, version, flags, rdlength


class MalformedQuery(Exception):
    """The packet has a DNS header but is not a query this server can answer.

    ``rcode`` is what the reply carries (FORMERR or NOTIMP); the reply echoes the header and, when
    it parsed, the question.
    """

    def __init__(self, reason: str, rcode: int = 1) -> None:
        super().__init__(reason)
        self.rcode = rcode
        self.question: bytes | None = None


_REPLACEABLE = frozenset(
    {"id", "flags", "qname", "qtype", "qclass", "remote", "proto", "local", "server", "zone", "metadata"}
)
_IN_WIRE = frozenset({"id", "flags", "qname", "qtype", "qclass"})


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
        if ar == 1 and not an and not ns and len(wire) >= off + 11 and wire[off] == 0 and (
            wire[off + 1 : off + 3] == b"\x00\x29"
        ):
            # The shape of nearly every EDNS query: one root-owned OPT right after the question.
            # Read it here; the general walk below costs a few hundred nanoseconds more.
            _rtype, self.udp_size, _ext, self.edns_version, self.edns_flags, rdlen = _OPT_FIXED.unpack_from(
                wire, off + 1
            )
            if off + 11 + rdlen > len(wire):
                exc = MalformedQuery("record data truncated")
                exc.question = wire[12:off]
                raise exc
            if rdlen:
                self.edns_options = wire[off + 11 : off + 11 + rdlen]
        elif ar:
            try:
                self._find_opt(off, an + ns, ar)
            except MalformedQuery as exc:
                exc.question = wire[12:off]
                raise

    def _find_opt(self, off: int, skip: int, additional: int) -> None:
        # Bytes after the last record are tolerated, as CoreDNS (miekg) tolerates them.
        wire = self.wire
        try:
            start = find_opt(wire, off, skip, additional)
        except WireError as exc:
            raise MalformedQuery(str(exc)) from None
        if start < 0:
            return
        if wire[start] != 0:
            raise MalformedQuery("more than one OPT record, or OPT not owned by the root")
        _rtype, self.udp_size, _ext, self.edns_version, self.edns_flags, rdlen = _OPT_FIXED.unpack_from(
            wire, start + 1
        )
        if rdlen:
            self.edns_options = wire[start + 11 : start + 11 + rdlen]

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
            import dns.message

            self._message = dns.message.from_wire(self.wire, ignore_trailing=True)
        return self._message

    def replace(self, **fields: Any) -> Request:
        """A copy of this request with some fields changed, for a plugin that passes on another
        query than it got (the cache's refresh, rewrite). The wire fields (``id``, ``flags``,
        ``qname``, ``qtype``, ``qclass``) are written into the copy's bytes, which are parsed again,
        so the copy is exactly what a client sending those bytes would have made; the others
        (``remote``, ``proto``, ``local``, ``server``, ``zone``, ``metadata``) are set as given. The
        copy keeps the original's start time and, unless given other ``metadata``, shares its
        metadata: it is the same query, seen further down the chain."""
        unknown = fields.keys() - _REPLACEABLE
        if unknown:
            raise TypeError(f"Request.replace() got unknown fields: {', '.join(sorted(unknown))}")
        if fields.keys() & _IN_WIRE:
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
            copy = Request(
                wire,
                fields.get("remote", self.remote),
                fields.get("proto", self.proto),
                fields.get("local", self.local),
                fields.get("server", self.server),
            )
        else:
            copy = Request.__new__(Request)
            for slot in Request.__slots__:
                setattr(copy, slot, getattr(self, slot))
            for key in ("remote", "proto", "local", "server"):
                if key in fields:
                    setattr(copy, key, fields[key])
        copy.start = self.start
        copy.zone = fields.get("zone", self.zone)
        copy.metadata = fields.get("metadata", self.metadata)
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
