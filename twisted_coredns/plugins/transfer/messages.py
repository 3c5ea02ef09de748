"""A zone's records as the messages of an AXFR reply.

CoreDNS starts a new message before a record would take the batch past 63,000 octets, counting
each record at its uncompressed length; so does this. Owner names are compressed within a message
(the count stays the uncompressed one, so the batches are CoreDNS's); record data is written as
it is, uncompressed, which RFC 3597 allows for every type. Each message repeats the question and
has AA set, as miekg/dns's ``Transfer.Out`` writes them.
"""

from __future__ import annotations

import io
import struct
from collections.abc import Callable, Iterable
from typing import Any

from ...dns.header import COUNTS, HEADER, reply_flags
from ...request import Request
from ...response import opt_record

BATCH = 63000
"""CoreDNS's flush threshold, leaving room below 64 KiB for the header, question and TSIG."""
_FIXED = struct.Struct("!HHIH")


def record_count(rrsets: Iterable[Any]) -> int:
    return sum(len(rrset) for rrset in rrsets)


def axfr_messages(
    request: Request, rrsets: list[Any], sign: Callable[[bytes], bytes] | None = None
) -> list[bytes]:
    """The messages of an AXFR reply to ``request``: the records of ``rrsets`` (SOA first) and
    the closing SOA. ``sign``, when given, signs each finished message in turn."""
    head = HEADER.pack(request.id, reply_flags(request.flags, 0, True), 1, 0, 0, 0)
    question = request.wire[12 : request.end_of_question]
    opt = opt_record(request) if request.edns_version >= 0 else b""
    messages: list[bytes] = []
    out = io.BytesIO()
    compress: dict[Any, int] = {}
    count = 0
    batch = 0

    def start() -> None:
        nonlocal count, batch
        out.seek(0)
        out.truncate()
        out.write(head)
        out.write(question)
        compress.clear()
        count = batch = 0

    def flush() -> None:
        wire = out.getvalue()
        wire = wire[:4] + COUNTS.pack(1, count, 0, 1 if opt else 0) + wire[12:] + opt
        messages.append(sign(wire) if sign is not None else wire)

    start()
    soa = rrsets[0]
    for rrset in [*rrsets, soa]:
        name = rrset.name
        owner_size = len(name.to_wire())
        rdtype, rdclass, ttl = rrset.rdtype, rrset.rdclass, rrset.ttl
        for rdata in rrset:
            rdata_wire = rdata.to_wire()
            size = owner_size + 10 + len(rdata_wire)
            if count and batch + size > BATCH:
                flush()
                start()
            name.to_wire(out, compress)
            out.write(_FIXED.pack(rdtype, rdclass, ttl, len(rdata_wire)))
            out.write(rdata_wire)
            count += 1
            batch += size
    flush()
    return messages
