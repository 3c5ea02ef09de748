"""``cache [TTL] [ZONES...] { ... }``: reading the directive, with CoreDNS's errors word for word.

CoreDNS returns Go's own errors for bad numbers and durations (``strconv.Atoi: parsing "aaa":
invalid syntax``, ``time: invalid duration "x"``), and caddy's argument error for unknown
properties; both are reproduced here.
"""

from __future__ import annotations

from ...corefile.model import Directive
from ...duration import parse_duration_ns
from ...plugin import Controller
from ...strconv import atoi
from .handler import Cache, Settings

SECOND = 1_000_000_000
MINUTE = 60 * SECOND
HOUR = 60 * MINUTE
_ONCE = "this plugin can only be used once per Server Block"


def _quote_byte(byte: int) -> str:
    """Go's ``%q`` of a byte (a rune literal)."""
    ch = chr(byte)
    if ch in "'\\":
        return f"'\\{ch}'"
    if ch.isprintable():
        return f"'{ch}'"
    return f"'\\x{byte:02x}'"


def _is_int(text: str) -> bool:
    try:
        atoi(text)
    except ValueError:
        return False
    return True


def _duration_ns(text: str) -> int:
    # Go's message as it is: ``time: invalid duration "x"``
    return parse_duration_ns(text)


def setup(controller: Controller) -> Cache:
    return Cache(parse(controller), controller.reactor)


def parse(controller: Controller) -> Settings:
    """CoreDNS's ``cacheParse``: the directive (once per block), its TTL and zones, its block."""
    settings = Settings()
    for index, directive in enumerate(controller.directives):
        if index > 0:
            raise ValueError(_ONCE)
        args = directive.args
        if args and _is_int(args[0].text):
            ttl = atoi(args[0].text)
            # zero and below are reserved
            if ttl <= 0:
                raise ValueError(f"cache TTL can not be zero or negative: {ttl}")
            settings.pttl = settings.nttl = float(ttl)
            args = args[1:]
        origins = controller.origins(args)
        stale_configured = False
        policy_configured = False
        for prop in directive.block or ():
            if prop.block is not None and prop.open_brace is not None:
                raise controller.arg_error(prop.open_brace)
            name = prop.name
            if name in ("success", "denial"):
                _parse_kind(controller, prop, settings)
            elif name == "prefetch":
                _parse_prefetch(controller, prop, settings)
            elif name == "serve_stale":
                stale_configured = True
                _parse_serve_stale(controller, prop, settings)
            elif name == "serve_stale_policy":
                if policy_configured:
                    raise ValueError("serve_stale_policy can only be specified once")
                policy_configured = True
                values = prop.values
                if len(values) != 1:
                    raise controller.arg_error(prop)
                if values[0].lower() != "prefer_positive":
                    raise ValueError(f"invalid serve_stale_policy: {values[0]}")
                settings.prefer_positive = True
            elif name == "servfail":
                values = prop.values
                if len(values) != 1:
                    raise controller.arg_error(prop)
                ns = _duration_ns(values[0])
                if ns < 0:
                    raise ValueError("invalid negative ttl for servfail")
                if ns > 5 * MINUTE:
                    # RFC 2308: SERVFAIL must not be cached for more than five minutes
                    raise ValueError("caching SERVFAIL responses over 5 minutes is not permitted")
                settings.failttl = ns / SECOND
            elif name == "disable":
                _parse_disable(controller, prop, settings)
            elif name == "keepttl":
                if prop.args:
                    raise controller.arg_error(prop)
                settings.keepttl = True
            else:
                # CoreDNS answers an unknown property with caddy's argument error at the property
                raise controller.arg_error(prop.token)
        if policy_configured and not stale_configured:
            raise ValueError("serve_stale_policy requires serve_stale")
        settings.zones = origins
    return settings


def _parse_kind(controller: Controller, prop: Directive, settings: Settings) -> None:
    """``success|denial CAPACITY [TTL] [MINTTL]``."""
    values = prop.values
    if not values:
        raise controller.arg_error(prop)
    capacity = atoi(values[0])
    ttl: float | None = None
    minttl: float | None = None
    if len(values) > 1:
        n = atoi(values[1])
        if n <= 0:
            raise ValueError(f"cache TTL can not be zero or negative: {n}")
        ttl = float(n)
        if len(values) > 2:
            n = atoi(values[2])
            if n < 0:
                raise ValueError(f"cache min TTL can not be negative: {n}")
            minttl = float(n)
    if prop.name == "success":
        settings.pcap = capacity
        settings.pttl = settings.pttl if ttl is None else ttl
        settings.minpttl = settings.minpttl if minttl is None else minttl
    else:
        settings.ncap = capacity
        settings.nttl = settings.nttl if ttl is None else ttl
        settings.minnttl = settings.minnttl if minttl is None else minttl


def _parse_prefetch(controller: Controller, prop: Directive, settings: Settings) -> None:
    """``prefetch AMOUNT [[DURATION] [PERCENTAGE%]]``."""
    values = prop.values
    if not values or len(values) > 3:
        raise controller.arg_error(prop)
    amount = atoi(values[0])
    if amount < 0:
        raise ValueError(f"prefetch amount should be positive: {amount}")
    settings.prefetch = amount
    if len(values) > 1:
        settings.duration = _duration_ns(values[1]) / SECOND
    if len(values) > 2:
        pct = values[2]
        raw = pct.encode("utf-8", "surrogatepass")
        last = raw[-1] if raw else 0
        if last != ord("%"):
            raise ValueError(f"last character of percentage should be `%`, but is: {_quote_byte(last)}")
        number = atoi(raw[:-1].decode("utf-8", "surrogatepass"))
        if number < 10 or number > 90:
            raise ValueError(f"percentage should fall in range [10, 90]: {number}")
        settings.percentage = number


def _parse_serve_stale(controller: Controller, prop: Directive, settings: Settings) -> None:
    """``serve_stale [DURATION] [immediate [RESPONSE_TTL [FAILURE_RECHECK]] |
    verify [VERIFY_TIMEOUT [RESPONSE_TTL [FAILURE_RECHECK]]]]``."""
    values = prop.values
    if len(values) > 5:
        raise controller.arg_error(prop)
    settings.stale_up_to = float(HOUR // SECOND)
    settings.stale_ttl = 0
    settings.stale_recheck = 0.0
    if values:
        ns = _duration_ns(values[0])
        if ns < 0:
            raise ValueError("invalid negative duration for serve_stale")
        settings.stale_up_to = ns / SECOND
    settings.verify_stale = False
    settings.verify_timeout = 0.0
    if len(values) > 1:
        mode = values[1].lower()
        if mode not in ("immediate", "verify"):
            raise ValueError(f"invalid value for serve_stale refresh mode: {mode}")
        settings.verify_stale = mode == "verify"
    if len(values) > 2:
        if settings.verify_stale:
            try:
                ns = parse_duration_ns(values[2])
            except ValueError as exc:
                raise ValueError(f"invalid serve_stale verify timeout: {exc}") from None
            if ns < 0:
                raise ValueError("invalid negative timeout for serve_stale verify")
            settings.verify_timeout = ns / SECOND
            if len(values) > 3:
                settings.stale_ttl = _stale_ttl(values[3])
            if len(values) > 4:
                settings.stale_recheck = _stale_recheck(values[4])
        else:
            if len(values) > 4:
                raise controller.arg_error(prop)
            settings.stale_ttl = _stale_ttl(values[2])
            if len(values) > 3:
                settings.stale_recheck = _stale_recheck(values[3])


def _stale_ttl(text: str) -> int:
    try:
        ns = parse_duration_ns(text)
    except ValueError as exc:
        raise ValueError(f"invalid serve_stale response TTL: {exc}") from None
    if ns < 0:
        raise ValueError("invalid negative response TTL for serve_stale")
    if ns % SECOND:
        raise ValueError("serve_stale response TTL must be a whole number of seconds")
    if ns // SECOND > 0xFFFFFFFF:
        raise ValueError("serve_stale response TTL exceeds the DNS TTL range")
    return ns // SECOND


def _stale_recheck(text: str) -> float:
    try:
        ns = parse_duration_ns(text)
    except ValueError as exc:
        raise ValueError(f"invalid serve_stale failure recheck: {exc}") from None
    if ns < 0:
        raise ValueError("invalid negative failure recheck for serve_stale")
    if ns > 5 * MINUTE:
        raise ValueError("serve_stale failure recheck cannot exceed 5 minutes")
    return ns / SECOND


def _parse_disable(controller: Controller, prop: Directive, settings: Settings) -> None:
    """``disable success|denial [ZONES...]``: no zones means every zone."""
    values = prop.values
    if not values:
        raise controller.arg_error(prop)
    zones = [_normalize(z) for z in values[1:]] or ["."]
    if values[0] == "denial":
        settings.nexcept = zones
    elif values[0] == "success":
        settings.pexcept = zones
    else:
        raise ValueError('cache type for disable must be "success" or "denial"')


def _normalize(zone: str) -> str:
    """``plugin.Name.Normalize``: fully qualified, lower case."""
    return (zone if zone.endswith(".") else zone + ".").lower()
