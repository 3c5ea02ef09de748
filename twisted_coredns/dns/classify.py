"""CoreDNS's ``plugin/pkg/response``: what kind of reply a message is, and which class that falls in.

The cache decides from the type whether and for how long it keeps a reply; the log plugin filters
on the class (``class success denial error``) and shows the type as ``log/type``. Both read the
reply straight from its wire bytes (``twisted_coredns.dns.wire``) and gather the few facts ``typify``
looks at; the rules themselves live here once.

Types are the strings CoreDNS's ``Type.String()`` prints, so a type is also its own name.
"""

from __future__ import annotations

import struct
import time
from collections.abc import Iterable

from .constants import (
    AXFR,
    IXFR,
    NOTIMP,
    NS,
    NXDOMAIN,
    OPCODE_NOTIFY,
    OPCODE_UPDATE,
    OPT,
    RRSIG,
    SERVFAIL,
    SOA,
)
from .header import HEADER, RR_FIXED
from .wire import WireError, skip_name, skip_question

__all__ = [
    "ALL",
    "CLASSES",
    "DELEGATION",
    "DENIAL",
    "ERROR",
    "META",
    "NAME_ERROR",
    "NO_DATA",
    "NO_ERROR",
    "OTHER_ERROR",
    "RRSIG_FIXED",
    "SERVER_ERROR",
    "SUCCESS",
    "UPDATE",
    "class_from_string",
    "classify",
    "signatures_expired",
    "typify",
    "typify_rcode_only",
    "typify_wire",
]

# Response types (response.Type), named as CoreDNS's String() prints them.
NO_ERROR = "NOERROR"
NAME_ERROR = "NXDOMAIN"
SERVER_ERROR = "SERVERERROR"
NO_DATA = "NODATA"
DELEGATION = "DELEGATION"
META = "META"
UPDATE = "UPDATE"
OTHER_ERROR = "OTHERERROR"

# Response classes (response.Class).
ALL = "all"
SUCCESS = "success"
DENIAL = "denial"
ERROR = "error"
CLASSES = (ALL, SUCCESS, DENIAL, ERROR)

_SIG_TIMES = struct.Struct("!II")
_YEAR68 = 1 << 31
RRSIG_FIXED = 18
"""An RRSIG's rdata before the signer's name; shorter, miekg cannot unpack it."""


def class_from_string(text: str) -> str:
    """``response.ClassFromString``: one of ``all success denial error``, or ``ValueError`` with
    CoreDNS's ``invalid Class: X``."""
    if text in CLASSES:
        return text
    raise ValueError(f"invalid Class: {text}")


def classify(rtype: str) -> str:
    """``response.Classify``: NOERROR and DELEGATION are success, NXDOMAIN and NODATA are denial,
    everything else is an error."""
    if rtype in (NO_ERROR, DELEGATION):
        return SUCCESS
    if rtype in (NAME_ERROR, NO_DATA):
        return DENIAL
    return ERROR


def typify(
    opcode: int, qtype: int, rcode: int, answers: int, soa: bool, delegations: int, expired: bool
) -> str:
    """``response.Typify`` from what it looks at: the opcode, the question's type (0 without a
    question), the rcode, the number of answers, whether the authority section has an SOA record
    and how many NS records, and whether DO is set and a signature has expired."""
    if opcode == OPCODE_UPDATE:
        return UPDATE
    if opcode == OPCODE_NOTIFY:
        return META
    if qtype in (AXFR, IXFR):
        return META
    if expired:
        return OTHER_ERROR
    if answers > 0 and rcode == 0:
        return NO_ERROR
    if answers > 0 and rcode == NXDOMAIN:
        return OTHER_ERROR
    if soa and rcode == 0:
        return NO_DATA
    if rcode == NXDOMAIN:
        return NAME_ERROR
    if rcode in (SERVFAIL, NOTIMP):
        return SERVER_ERROR
    if delegations > 0 and rcode == 0:
        return DELEGATION
    if rcode == 0:
        return NO_ERROR
    return OTHER_ERROR


def typify_rcode_only(opcode: int, qtype: int, rcode: int) -> str:
    """``Typify`` of the bare reply CoreDNS makes for a rcode nobody wrote (``SetRcode``): no
    records, the query's opcode and question."""
    return typify(opcode, qtype, rcode, 0, False, 0, False)


def _go_div(a: int, b: int) -> int:
    """Go's integer division, which truncates toward zero."""
    q = abs(a) // b
    return -q if a < 0 else q


def signatures_expired(wire: bytes, rdata_offsets: Iterable[int], now: int) -> bool:
    """Whether any RRSIG (given by where its rdata starts) is outside its validity period: miekg's
    ``RRSIG.ValidityPeriod``, serial-number arithmetic on the 32-bit times (RFC 4034)."""
    for rdata in rdata_offsets:
        expiration, inception = _SIG_TIMES.unpack_from(wire, rdata + 8)
        modi = _go_div(inception - now, _YEAR68)
        mode = _go_div(expiration - now, _YEAR68)
        if not inception + modi * _YEAR68 <= now <= expiration + mode * _YEAR68:
            return True
    return False


def typify_wire(wire: bytes, qtype: int, rcode: int | None = None, now: float | None = None) -> str:
    """``response.Typify`` of a reply in wire format.

    ``qtype`` is the question's type (a reply repeats the query's question); ``rcode`` overrides
    the header's four bits (extended rcodes live in the OPT record). A reply that cannot be read is
    OTHERERROR, as a missing message is.
    """
    try:
        _id, flags, qd, an, ns, ar = HEADER.unpack_from(wire)
    except struct.error:
        return OTHER_ERROR
    opcode = (flags >> 11) & 0xF
    if opcode in (OPCODE_UPDATE, OPCODE_NOTIFY) or qtype in (AXFR, IXFR):
        return typify_rcode_only(opcode, qtype, 0)
    if rcode is None:
        rcode = flags & 0xF
    # One pass over the records: SOA and NS in the authority section, the OPT record's DO bit, and
    # where any signatures are (they matter only when DO is set).
    soa = False
    delegations = 0
    do = False
    signatures: list[int] = []
    # A loop of its own rather than ``wire.records``: the log plugin runs this for every reply it
    # filters by class, and the generator's tuples cost about as much again as the walk.
    authority_end = an + ns
    try:
        off = skip_question(wire, qd)
        length = len(wire)
        for index in range(authority_end + ar):
            off = skip_name(wire, off)
            rtype, _cls, ttl, rdlen = RR_FIXED.unpack_from(wire, off)
            off += 10
            if rtype == RRSIG:
                if rdlen >= RRSIG_FIXED:
                    signatures.append(off)
            elif index >= an:
                if index < authority_end:
                    if rtype == SOA:
                        soa = True
                    elif rtype == NS:
                        delegations += 1
                elif rtype == OPT:
                    do = bool(ttl & 0x8000)
            off += rdlen
            if off > length:
                raise WireError("record data truncated")
    except (IndexError, struct.error, WireError):
        return OTHER_ERROR
    # With DO set, an expired signature anywhere makes the reply an error.
    expired = do and bool(signatures) and signatures_expired(
        wire, signatures, int(time.time() if now is None else now)
    )
    return typify(opcode, qtype, rcode, an, soa, delegations, expired)
