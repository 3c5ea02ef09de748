"""Go's ``time.ParseDuration`` and ``Duration.String``, for Corefile options that take a duration.

CoreDNS reads every duration (``consolidate 5m``, ``cache 30s``, ``health lameduck 5s``, ...) with
``time.ParseDuration``, so a Corefile must accept exactly the same text here and fail with the same
words. Values are kept as integer nanoseconds internally, as Go keeps them, so that rounding and
overflow behave the same; ``parse_duration`` hands callers float seconds, which is what the reactor
wants, and ``format_duration`` prints a value the way Go's ``%s`` of a ``time.Duration`` does (it
appears in log lines such as the ``errors`` plugin's ``occurred in last 5m0s``).
"""

from __future__ import annotations

__all__ = ["format_duration", "parse_duration", "parse_duration_ns"]

NANOSECOND = 1
MICROSECOND = 1000 * NANOSECOND
MILLISECOND = 1000 * MICROSECOND
SECOND = 1000 * MILLISECOND
MINUTE = 60 * SECOND
HOUR = 60 * MINUTE

_UNITS = {
    "ns": NANOSECOND,
    "us": MICROSECOND,
    "\u00b5s": MICROSECOND,  # U+00B5 micro sign
    "\u03bcs": MICROSECOND,  # U+03BC Greek small letter mu
    "ms": MILLISECOND,
    "s": SECOND,
    "m": MINUTE,
    "h": HOUR,
}

_LIMIT = 1 << 63
_DIGITS = "0123456789"


def _quote(text: str) -> str:
    """Go's ``time.quote``: double quotes, ``\\`` before ``"`` and ``\\``, and every byte of a
    non-ASCII or control character as ``\\xNN`` (not strconv.Quote's escapes)."""
    out = ['"']
    for ch in text:
        if ch >= "\x80" or ch < " ":
            out.extend(f"\\x{b:02x}" for b in ch.encode("utf-8", "surrogatepass"))
        else:
            if ch in '"\\':
                out.append("\\")
            out.append(ch)
    out.append('"')
    return "".join(out)


def _invalid(orig: str) -> ValueError:
    return ValueError(f"time: invalid duration {_quote(orig)}")


def parse_duration_ns(text: str) -> int:
    """``time.ParseDuration``: ``[-+]?([0-9]*(\\.[0-9]*)?[a-z]+)+`` to integer nanoseconds.

    Raises ``ValueError`` with Go's message: ``time: invalid duration "x"``,
    ``time: missing unit in duration "1"`` or ``time: unknown unit "d" in duration "1d"``.
    """
    orig = text
    s = text
    neg = False
    if s and s[0] in "-+":
        neg = s[0] == "-"
        s = s[1:]
    # A bare "0" (signed or not) is the only number allowed without a unit.
    if s == "0":
        return 0
    if not s:
        raise _invalid(orig)
    total = 0
    n = len(s)
    i = 0
    while i < n:
        c = s[i]
        if not (c == "." or c in _DIGITS):
            raise _invalid(orig)
        # The integer part: Go's leadingInt fails on overflow past 1<<63.
        start = i
        value = 0
        while i < n and s[i] in _DIGITS:
            if value > _LIMIT // 10:
                raise _invalid(orig)
            value = value * 10 + ord(s[i]) - 48
            if value > _LIMIT:
                raise _invalid(orig)
            i += 1
        pre = i != start
        # The fraction: Go's leadingFraction stops adding digits (but keeps consuming them)
        # once they would overflow.
        frac = 0
        scale = 1.0
        post = False
        if i < n and s[i] == ".":
            i += 1
            fstart = i
            overflow = False
            while i < n and s[i] in _DIGITS:
                if not overflow:
                    if frac > (_LIMIT - 1) // 10:
                        overflow = True
                    else:
                        nxt = frac * 10 + ord(s[i]) - 48
                        if nxt > _LIMIT:
                            overflow = True
                        else:
                            frac = nxt
                            scale *= 10
                i += 1
            post = i != fstart
        if not pre and not post:
            raise _invalid(orig)
        ustart = i
        while i < n and not (s[i] == "." or s[i] in _DIGITS):
            i += 1
        if i == ustart:
            raise ValueError(f"time: missing unit in duration {_quote(orig)}")
        unit_text = s[ustart:i]
        unit = _UNITS.get(unit_text)
        if unit is None:
            raise ValueError(f"time: unknown unit {_quote(unit_text)} in duration {_quote(orig)}")
        if value > _LIMIT // unit:
            raise _invalid(orig)
        value *= unit
        if frac > 0:
            # Go adds the fraction through a float64 (nanosecond accurate up to hours), truncating.
            value += int(float(frac) * (float(unit) / scale))
            if value > _LIMIT:
                raise _invalid(orig)
        total += value
        if total > _LIMIT:
            raise _invalid(orig)
    if neg:
        return -total
    if total > _LIMIT - 1:
        raise _invalid(orig)
    return total


def parse_duration(text: str) -> float:
    """``time.ParseDuration`` in float seconds (see ``parse_duration_ns`` for the errors)."""
    return parse_duration_ns(text) / SECOND


def _frac(value: int, prec: int) -> tuple[str, int]:
    """Go's ``fmtFrac``: the fraction of ``value / 10**prec`` without trailing zeros (and without
    the dot when it is zero), and the integer part."""
    digits = []
    printed = False
    for _ in range(prec):
        digit = value % 10
        printed = printed or digit != 0
        if printed:
            digits.append(chr(48 + digit))
        value //= 10
    if printed:
        digits.append(".")
    return "".join(reversed(digits)), value


def format_duration(value: int | float) -> str:
    """Go's ``Duration.String`` of ``value`` nanoseconds (an int), or seconds (a float):
    ``0s``, ``1.5µs``, ``500ms``, ``30s``, ``5m0s``, ``1h0m0s``."""
    ns = value if isinstance(value, int) else round(value * SECOND)
    neg = ns < 0
    u = -ns if neg else ns
    if u < SECOND:
        if u == 0:
            return "0s"
        if u < MICROSECOND:
            prec, unit = 0, "ns"
        elif u < MILLISECOND:
            prec, unit = 3, "\u00b5s"
        else:
            prec, unit = 6, "ms"
        frac, u = _frac(u, prec)
        text = f"{u}{frac}{unit}"
    else:
        frac, u = _frac(u, 9)
        text = f"{u % 60}{frac}s"
        u //= 60
        if u > 0:
            text = f"{u % 60}m{text}"
            u //= 60
            if u > 0:
                text = f"{u}h{text}"
    return f"-{text}" if neg else text
