"""A query in wire form, as miekg's ``Msg.SetQuestion`` makes one: for the probes this server
sends itself (loop's, forward's health checks), where a dnspython message would be waste."""

from __future__ import annotations

from .constants import CLASS_IN, RD
from .header import TYPE_CLASS, pack_header
from .names import name_wire


def query_wire(name: str, qtype: int, qclass: int = CLASS_IN, *, qid: int = 0, flags: int = RD) -> bytes:
    """One question, no EDNS; RD set unless ``flags`` says otherwise."""
    return pack_header(qid, flags, 1) + name_wire(name) + TYPE_CLASS.pack(qtype, qclass)
