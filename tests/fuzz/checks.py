"""What the server must do with each fuzzed packet: the oracle, independent of the server's code.

A packet shorter than a header, or with QR set, gets no reply at all. Every other packet gets one
reply that dnspython parses, with the packet's ID and QR set, no larger than the client's limit
(512 octets, or the OPT record's size when larger; 65535 over TCP), and an rcode that is an error
the server may give (FORMERR, NOTIMP, REFUSED, SERVFAIL) or an answer (NOERROR, NXDOMAIN, and
BADVERS for an EDNS version above 0). When the reply has a question, it has the packet's name (in
any case) and type: what forward checks of an upstream's reply, as CoreDNS's ``Request.Match``.

The opcode is not checked: forward passes on the upstream's reply as it is, and unbound answers a
NOTIFY it cannot parse with a FORMERR of opcode QUERY (CoreDNS passes that on too).
"""

from __future__ import annotations

import dns.exception
import dns.message
import dns.rcode

from twisted_coredns.dns.constants import CLASS_CH, OPT, A
from twisted_coredns.dns.header import HEADER
from twisted_coredns.dns.wire import WireError, records, skip_question

__all__ = ["ALLOWED_RCODES", "check_reply", "expects_reply", "reply_limit"]

ALLOWED_RCODES = frozenset({
    dns.rcode.NOERROR, dns.rcode.NXDOMAIN, dns.rcode.BADVERS,  # answers
    dns.rcode.FORMERR, dns.rcode.NOTIMP, dns.rcode.REFUSED, dns.rcode.SERVFAIL,  # errors
})  # fmt: skip


def expects_reply(packet: bytes) -> bool:
    """False for what must be dropped in silence: less than a header, or a response (QR=1)."""
    return len(packet) >= 12 and not packet[2] & 0x80


def _query_message(packet: bytes) -> dns.message.Message | None:
    try:
        return dns.message.from_wire(packet, ignore_trailing=True, keyring=False)
    except (dns.exception.DNSException, ValueError, TypeError, IndexError, UnicodeError):
        return None


def _opt_size(packet: bytes) -> int | None:
    """The UDP size of the first OPT record in any section of a packet dnspython cannot parse (its
    options, say): the server may read that OPT record all the same."""
    try:
        _id, _flags, qd, an, ns, ar = HEADER.unpack_from(packet)
        for _section, _start, rtype, rclass, _ttl, _rdata, _end in records(
            packet, skip_question(packet, qd), an, ns, ar
        ):
            if rtype == OPT:
                return rclass
    except (WireError, IndexError, ValueError):
        return None
    return None


def _ch_a_as_in(wire: bytes) -> bytes | None:
    """``wire`` with its CH-class A records made IN, or None when it has none."""
    try:
        _id, _flags, qd, an, ns, ar = HEADER.unpack_from(wire)
        found = [ttl - 2 for _s, _start, rtype, rclass, ttl, _rdata, _end
                 in records(wire, skip_question(wire, qd), an, ns, ar) if rtype == A and rclass == CLASS_CH]
    except (WireError, IndexError, ValueError):
        return None
    if not found:
        return None
    patched = bytearray(wire)
    for offset in found:
        patched[offset : offset + 2] = b"\x00\x01"
    return bytes(patched)


def _reply_message(reply: bytes) -> dns.message.Message:
    """The reply as dnspython reads it. whoami answers a CH query with A records of class CH laid
    out as IN A records, as CoreDNS does (docs/plugins/whoami.md); dnspython reads a CH A record
    as Chaosnet's (a name and a 16-bit address) and fails, so such records are read as IN."""
    try:
        return dns.message.from_wire(reply, keyring=False)
    except dns.exception.DNSException:
        patched = _ch_a_as_in(reply)
        if patched is None:
            raise
        return dns.message.from_wire(patched, keyring=False)


def reply_limit(packet: bytes, proto: str, query: dns.message.Message | None = None) -> int:
    """The largest reply the client of ``packet`` accepts."""
    if proto == "tcp":
        return 65535
    if query is not None:
        size = query.payload if query.edns >= 0 else None
    else:
        size = _opt_size(packet)
    return max(512, size or 0)


def check_reply(packet: bytes, reply: bytes | None, proto: str) -> str | None:
    """What is wrong with ``reply`` as the answer to ``packet``, or None when it is right."""
    if not expects_reply(packet):
        return None if reply is None else "a reply to a packet that must get none"
    if reply is None:
        return "no reply"
    query = _query_message(packet)
    limit = reply_limit(packet, proto, query)
    if len(reply) > limit:
        return f"reply of {len(reply)} octets over the client's limit of {limit}"
    try:
        message = _reply_message(reply)
    except Exception as exc:  # anything dnspython raises is the finding
        return f"reply does not parse: {type(exc).__name__}: {exc}"
    if message.id != int.from_bytes(packet[:2], "big"):
        return f"reply ID {message.id} is not the query's {int.from_bytes(packet[:2], 'big')}"
    if not message.flags & 0x8000:
        return "reply without QR"
    rcode = message.rcode()
    if rcode not in ALLOWED_RCODES:
        return f"reply rcode {dns.rcode.to_text(rcode)}"
    if message.question and query is not None and query.question:
        asked, got = query.question[0], message.question[0]
        if (got.name, got.rdtype) != (asked.name, asked.rdtype):
            return f"reply question {got} is not the query's {asked}"
    return None
