"""Go's ``strconv`` for the numbers and quoted strings in CoreDNS's error messages.

Corefile errors must read as CoreDNS's word for word, and many of them are Go's own: a number
parsed with ``strconv.Atoi`` or ``strconv.ParseUint`` fails with ``strconv.Atoi: parsing "x":
invalid syntax``, and a name is shown with ``%q``. Python's ``int()`` accepts spaces, underscores
and non-ASCII digits and never overflows, and ``repr()`` quotes differently, so every plugin uses
these instead.
"""

from __future__ import annotations

import re

__all__ = ["atoi", "go_quote", "parse_int", "parse_uint"]

_SIGNED = re.compile(r"[+-]?[0-9]+\Z")
_UNSIGNED = re.compile(r"[0-9]+\Z")
_INT64 = 1 << 63
_GO_ESCAPES = {"\a": "\\a", "\b": "\\b", "\f": "\\f", "\n": "\\n", "\r": "\\r", "\t": "\\t", "\v": "\\v"}


def go_quote(s: str) -> str:
    """Go's ``strconv.Quote`` (what ``%q`` prints for a string)."""
    out = ['"']
    for ch in s:
        if ch in ('"', "\\"):
            out.append("\\" + ch)
        elif ch.isprintable():
            # Python's printable set is Go's unicode.IsPrint: letters, marks, numbers,
            # punctuation, symbols and the ASCII space.
            out.append(ch)
        elif ch in _GO_ESCAPES:
            out.append(_GO_ESCAPES[ch])
        else:
            code = ord(ch)
            if code < 0x20 or code == 0x7F:
                out.append(f"\\x{code:02x}")
            elif code < 0x10000:
                out.append(f"\\u{code:04x}")
            else:
                out.append(f"\\U{code:08x}")
    out.append('"')
    return "".join(out)


def atoi(text: str) -> int:
    """Go's ``strconv.Atoi`` (64-bit ``int``): an optional sign and ASCII digits, within int64.

    Raises ``ValueError`` with Go's message.
    """
    if not _SIGNED.match(text):
        raise ValueError(f"strconv.Atoi: parsing {go_quote(text)}: invalid syntax")
    value = int(text)
    if not -_INT64 <= value < _INT64:
        raise ValueError(f"strconv.Atoi: parsing {go_quote(text)}: value out of range")
    return value


def parse_uint(text: str, bits: int) -> int:
    """Go's ``strconv.ParseUint(text, 10, bits)``: ASCII digits only (no sign), below ``2**bits``.

    Raises ``ValueError`` with Go's message.
    """
    if not _UNSIGNED.match(text):
        raise ValueError(f"strconv.ParseUint: parsing {go_quote(text)}: invalid syntax")
    value = int(text)
    if value >> bits:
        raise ValueError(f"strconv.ParseUint: parsing {go_quote(text)}: value out of range")
    return value


def parse_int(text: str, bits: int) -> int:
    """Go's ``strconv.ParseInt(text, 10, bits)``: an optional sign and ASCII digits, within a
    signed ``bits``-bit integer. Raises ``ValueError`` with Go's message."""
    if not _SIGNED.match(text):
        raise ValueError(f"strconv.ParseInt: parsing {go_quote(text)}: invalid syntax")
    value = int(text)
    limit = 1 << (bits - 1)
    if not -limit <= value < limit:
        raise ValueError(f"strconv.ParseInt: parsing {go_quote(text)}: value out of range")
    return value
