"""timeouts: the read, write and idle timeouts of a block's TCP servers, and how many queries one
connection may carry (CoreDNS's plugin/timeouts).

The plugin only records the values in the block's settings (``server.limits`` names the keys);
the server reads them when it listens. ``maxtcpconnections`` is ours: CoreDNS has no cap on DNS
over TCP connections (docs/limits.md says why we have one).

Errors are CoreDNS's, quirks included: an argument on the ``timeouts`` line and a block without
timeouts are wrapped in ``plugin/timeouts:`` twice, as CoreDNS wraps them.
"""

from __future__ import annotations

from ..duration import SECOND, format_duration, parse_duration_ns
from ..plugin import Controller, plugin_error
from ..server.limits import IDLE_TIMEOUT, MAX_TCP_CONNECTIONS, MAX_TCP_QUERIES, READ_TIMEOUT, WRITE_TIMEOUT
from ..strconv import atoi

_TIMEOUTS = {"read": READ_TIMEOUT, "write": WRITE_TIMEOUT, "idle": IDLE_TIMEOUT}
_COUNTS = {"maxtcpqueries": MAX_TCP_QUERIES, "maxtcpconnections": MAX_TCP_CONNECTIONS}
_HOUR = 3600 * SECOND


def _duration(text: str) -> int:
    """CoreDNS's ``durations.NewDurationFromArg``: a plain number is seconds."""
    try:
        atoi(text)
        text = text + "s"
    except ValueError:
        pass
    try:
        return parse_duration_ns(text)
    except ValueError:
        raise ValueError(f"failed to parse duration '{text}'") from None


def setup(controller: Controller) -> None:
    settings = controller.config.settings
    for directive in controller.directives:
        if directive.args:
            raise plugin_error("timeouts", controller.arg_error(directive))
        count = 0
        for prop in directive.block or []:
            if len(prop.args) != 1:
                raise controller.arg_error(prop)
            value = prop.args[0].text
            if prop.name in _COUNTS:
                try:
                    n = atoi(value)
                except ValueError as exc:
                    message = f"invalid value for {prop.name} '{value}': {exc}"
                    raise controller.err(prop.args[0], message) from None
                if n == 0 or n < -1:
                    message = f"{prop.name} provided '{n}' needs to be -1 (unlimited) or a positive integer"
                    raise controller.err(prop.args[0], message)
                settings[_COUNTS[prop.name]] = n
                count += 1
                continue
            try:
                ns = _duration(value)
            except ValueError as exc:
                raise controller.err(prop.args[0], str(exc)) from None
            if ns < SECOND or ns > 24 * _HOUR:
                shown = format_duration(ns)
                message = f"timeout provided '{shown}' needs to be between 1 second and 24 hours"
                raise controller.err(prop.args[0], message)
            if prop.name not in _TIMEOUTS:
                raise controller.err(prop.token, f"unknown option: '{prop.name}'")
            settings[_TIMEOUTS[prop.name]] = ns / SECOND
            count += 1
        if count == 0:
            last = directive.close_brace or directive.last_token()
            raise plugin_error("timeouts", controller.err(last, "timeouts block with no timeouts specified"))
