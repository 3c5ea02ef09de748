"""The request a plugin sees: the received bytes, parsed as little and as late as possible.

Every query needs its header and question (routing needs the name), so those are parsed by hand
when the request is made, which costs about a microsecond. EDNS is found on the way for the common
query shape. The full dnspython message is built only when a plugin asks for ``message``.
"""

from __future__ import annotations

import re
import struct
import time
from typing import TYPE_CHECKING, Any

from .rr import class_name, type_name
from .wire import WireError, find_opt

if TYPE_CHECKING:
    import dns.message

_HEADER = struct.Struct("!HHHHHH")
_TYPE_CLASS = struct.Struct("!HH")
_OPT_FIXED = struct.Struct("!HHBBHH")  # type, udp size, ext rcode, version, flags, rdlength

FLAG_QR = 0x8000
FLAG_AA = 0x0400
FLAG_TC = 0x0200
FLAG_RD = 0x0100
FLAG_RA = 0x0080
FLAG_Z = 0x0040
FLAG_AD = 0x0020
FLAG_CD = 0x0010
EDNS_DO = 0x8000



class MalformedQuery(Exception):
    """The packet has a DNS header but is not a query this server can answer.

    ``rcode`` is what the reply carries (FORMERR or NOTIMP); the reply echoes the header and, when
    it parsed, the question.
    """

    def __init__(self, reason: str, rcode: int = 1) -> None:
        super().__init__(reason)
        self.rcode = rcode
        self.question: bytes | None = None


def _read_name(wire: bytes, offset: int) -> tuple[str, int]:
    """Read an uncompressed name (questions are never compressed) as presentation text.

    Returns the name with a trailing dot (``.`` for the root) and the offset after it. Labels are
    escaped as dnspython does, so ``str`` of a parsed dnspython name and this agree.
    """
    labels: list[bytes] = []
    length = len(wire)
    start = offset
    while True:
        if offset >= length:
            raise MalformedQuery("question name runs past the end of the packet")
        n = wire[offset]
        if n == 0:
            offset += 1
            break
        if n & 0xC0:
            raise MalformedQuery("compressed or extended label in the question")
        end = offset + 1 + n
        if end > length:
            raise MalformedQuery("question label runs past the end of the packet")
        labels.append(wire[offset + 1 : end])
        offset = end
    if offset - start > 255:
        raise MalformedQuery("question name longer than 255 octets")
    if not labels:
        return ".", offset
    joined = b".".join(labels)
    if _PLAIN_NAME(joined) is not None:
        return joined.decode("ascii") + ".", offset
    return ".".join(_label_text(raw) for raw in labels) + ".", offset


_PLAIN_NAME = re.compile(rb"[A-Za-z0-9_*/-]+(?:\.[A-Za-z0-9_*/-]+)*").fullmatch
_PLAIN = frozenset(b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_*/")


def _label_text(raw: bytes) -> str:
    out = []
    for b in raw:
        if b in _PLAIN:
            out.append(chr(b))
        elif b in b'."\\();@$':
            out.append("\\" + chr(b))
        elif 0x20 < b < 0x7F:
            out.append(chr(b))
        else:
            out.append(f"\\{b:03d}")
    return "".join(out)


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
        qid, flags, qd, an, ns, ar = _HEADER.unpack_from(wire)
        self.id = qid
        self.flags = flags
        opcode = (flags >> 11) & 0xF
        if opcode not in (0, 4):
            raise MalformedQuery("opcode not implemented", rcode=4)
        # The same acceptance rules as miekg/dns's default, so malformed input fails the same way.
        if qd != 1 or an > 1 or ns > 1 or ar > 2:
            raise MalformedQuery("section counts of a query are out of range")
        self.qname, off = _read_name(wire, 12)
        if off + 4 > len(wire):
            raise MalformedQuery("question truncated")
        self.qtype, self.qclass = _TYPE_CLASS.unpack_from(wire, off)
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
        return bool(self.flags & FLAG_CD)

    @property
    def rd(self) -> bool:
        return bool(self.flags & FLAG_RD)

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
