"""The 12-byte message header: its struct, and the one rule for a reply's flags.

Every reply this server makes (a plugin's answer, a bare error, the FORMERR to a malformed packet,
the line the log plugin prints for a reply nobody wrote) takes its flags from ``reply_flags``, so
they cannot disagree.
"""

from __future__ import annotations

import struct

from .constants import AA, CD, OPCODE_MASK, QR, RA, RCODE_MASK, RD, TC

HEADER = struct.Struct("!HHHHHH")
"""ID, flags, and the four section counts."""
COUNTS = struct.Struct("!HHHH")
"""The four section counts (offset 4)."""
U16 = struct.Struct("!H")
U32 = struct.Struct("!I")
TYPE_CLASS = struct.Struct("!HH")
RR_FIXED = struct.Struct("!HHIH")
"""A record after its owner name: type, class, TTL, rdata length."""


def _echoed(query_flags: int) -> int:
    """miekg's ``SetReply``: QR set, the opcode copied, RD and CD copied for a standard query
    (opcode QUERY) only."""
    flags = QR | (query_flags & OPCODE_MASK)
    if not query_flags & OPCODE_MASK:
        flags |= query_flags & (RD | CD)
    return flags


ECHO_MASK = OPCODE_MASK | RD | CD
"""The query flags a reply's flags depend on."""
ECHOED: dict[int, int] = {bits: _echoed(bits) for bits in range(0, ECHO_MASK + 1) if bits & ~ECHO_MASK == 0}
"""``ECHOED[query_flags & ECHO_MASK]``: the reply's flags before AA, RA, TC and the rcode; the
same rule as ``reply_flags``, as one dictionary hit for the paths that run on every query."""


def reply_flags(
    query_flags: int, rcode: int = 0, aa: bool = False, ra: bool = False, tc: bool = False
) -> int:
    """The flags of a reply to a query with ``query_flags``: miekg's ``SetReply``, which CoreDNS
    uses for every reply it makes. QR is set and the opcode copied; RD and CD are copied for a
    standard query (opcode QUERY) only; the low four bits of ``rcode`` go in the header."""
    flags = ECHOED[query_flags & ECHO_MASK] | (rcode & RCODE_MASK)
    if aa:
        flags |= AA
    if ra:
        flags |= RA
    if tc:
        flags |= TC
    return flags


def flags_of(wire: bytes) -> int:
    """The header flags of a message (at least 4 bytes)."""
    return (wire[2] << 8) | wire[3]


def is_response(wire: bytes) -> bool:
    """Whether a message of at least a header's length has QR set."""
    return bool(wire[2] & (QR >> 8))


def opcode(flags: int) -> int:
    return (flags >> 11) & 0xF


def pack_header(qid: int, flags: int, qd: int = 0, an: int = 0, ns: int = 0, ar: int = 0) -> bytes:
    return HEADER.pack(qid, flags, qd, an, ns, ar)
