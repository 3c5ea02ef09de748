"""One signed exchange: the TSIG record of a query checked, and the replies signed with its key.

A query's TSIG record is the last record of its additional section. ``verify`` checks it against
the configured secrets (the algorithm is the one the query names: CoreDNS's secrets carry none)
and returns a ``TsigSession`` holding what signing the replies needs: the key, the query's MAC,
and the TSIG error to report (BADKEY, BADSIG, BADTIME or none). ``sign`` signs one reply; called
again, it signs the next message of a multi-message reply (a zone transfer), each MAC chained to
the one before, as RFC 8945 section 5.3.1 asks.
"""

from __future__ import annotations

import struct
from typing import Any

import dns.exception
import dns.name
import dns.rcode
import dns.rdata
import dns.rdataclass
import dns.rdatatype
import dns.tsig
from dns.rdtypes.ANY.TSIG import TSIG as _TSIG

from ...dns.constants import CLASS_ANY, TSIG
from ...dns.header import HEADER, U16
from ...dns.wire import WireError, read_name, records, skip_question

FUDGE = 300
_RR_FIXED = struct.Struct("!HHIH")


class TsigSession:
    """The key and state for signing the replies to one TSIG-signed query."""

    __slots__ = ("_ctx", "error", "key", "keyname", "request", "signed_by_chain", "time")

    def __init__(
        self, keyname: dns.name.Name, key: dns.tsig.Key | None, request: Any, error: int, now: int
    ) -> None:
        self.keyname = keyname
        self.key = key
        self.request = request
        """The query's TSIG rdata (its MAC, algorithm, time)."""
        self.error = error
        self.time = now
        self._ctx: Any = None
        self.signed_by_chain = False
        """Set by a plugin that signed its replies itself (``transfer``, message by message)."""

    @property
    def ok(self) -> bool:
        return self.error == 0

    def sign(self, wire: bytes) -> bytes:
        """``wire`` with a TSIG record appended: signed with the query's key, or, after BADKEY or
        BADSIG, unsigned with the error (RFC 8945 section 5.3.2: the key cannot be trusted)."""
        original_id = U16.unpack_from(wire, 0)[0]
        request = self.request
        other = b""
        time_signed = self.time
        if self.error == dns.rcode.BADTIME:
            # The client's time goes back with the server's in "other data", so it can tell the skew.
            time_signed = request.time_signed
            other = struct.pack("!Q", self.time)[2:]
        template = _TSIG(
            dns.rdataclass.ANY, dns.rdatatype.TSIG, request.algorithm, time_signed, FUDGE, b"",
            original_id, self.error, other,
        )
        if self.key is None or self.error in (dns.rcode.BADKEY, dns.rcode.BADSIG):
            rdata = template.replace(mac=b"")
        else:
            first = self._ctx is None
            rdata, self._ctx = dns.tsig.sign(
                wire, self.key, template, time_signed, request.mac if first else None, self._ctx, multi=True
            )
        body = rdata.to_wire() or b""
        record = (self.keyname.to_wire() or b"") + _RR_FIXED.pack(TSIG, CLASS_ANY, 0, len(body)) + body
        arcount = U16.unpack_from(wire, 10)[0] + 1
        return wire[:10] + U16.pack(arcount) + wire[12:] + record

    @property
    def record_size(self) -> int:
        """An upper bound on the size of the TSIG record ``sign`` appends (for truncation)."""
        name = len(self.keyname.to_wire() or b"")
        algorithm = len(dns.name.from_text(str(self.request.algorithm)).to_wire() or b"")
        return name + 10 + algorithm + 16 + 64 + 6


def tsig_record(wire: bytes) -> tuple[int, int, int] | None:
    """Where the query's TSIG record is: (its start, its rdata start, its end); None when the last
    record is no TSIG."""
    _id, _flags, qd, an, ns, ar = HEADER.unpack_from(wire)
    if not ar:
        return None
    last = None
    for record in records(wire, skip_question(wire, qd), an, ns, ar):
        last = record
    if last is None or last[0] != 2 or last[2] != TSIG:
        return None
    return last[1], last[5], last[6]


def strip(wire: bytes, start: int) -> bytes:
    """The query without its TSIG record (what the rest of the chain sees, as in CoreDNS)."""
    arcount = U16.unpack_from(wire, 10)[0] - 1
    return wire[:10] + U16.pack(arcount) + wire[12:start]


def verify(wire: bytes, where: tuple[int, int, int], secrets: dict[str, str], now: int) -> TsigSession:
    """Check the TSIG record at ``where`` in ``wire``; the session says what was found.

    Raises ``WireError`` when the record itself does not parse (the query is a FORMERR)."""
    start, rdata_start, end = where
    owner_text, _ = read_name(wire, start)
    try:
        keyname = dns.name.from_text(owner_text)
        rdata: Any = dns.rdata.from_wire(
            dns.rdataclass.ANY, dns.rdatatype.TSIG, wire, rdata_start, end - rdata_start
        )
    except dns.exception.DNSException as exc:
        raise WireError(f"bad TSIG record: {exc}") from None
    secret = secrets.get(owner_text.lower())
    if secret is None:
        return TsigSession(keyname, None, rdata, dns.rcode.BADKEY, now)
    try:
        key = dns.tsig.Key(keyname, secret, rdata.algorithm)
        dns.tsig.validate(wire, key, keyname, rdata, now, b"", start)
    except dns.tsig.BadTime:
        return TsigSession(keyname, key, rdata, dns.rcode.BADTIME, now)
    except (dns.tsig.BadAlgorithm, NotImplementedError):
        return TsigSession(keyname, None, rdata, dns.rcode.BADKEY, now)
    except (dns.tsig.BadSignature, dns.exception.DNSException, ValueError):
        return TsigSession(keyname, key, rdata, dns.rcode.BADSIG, now)
    return TsigSession(keyname, key, rdata, 0, now)
