"""Reading ``reload [INTERVAL] [JITTER]``: 30s and 15s by default, at least 2s and 1s.

The jitter is capped at half the interval and applied once, at setup, as a random offset of up
to half of it either way, so that many servers started together do not read their Corefiles in
step. Errors are CoreDNS's, Go's ``time.ParseDuration`` texts included.
"""

from __future__ import annotations

import random
from typing import Any

from ...corefile.errors import CorefileError
from ...duration import format_duration, parse_duration_ns
from ...interfaces import IFront
from ...plugin import Controller
from .watcher import CorefileWatcher

SECOND = 1_000_000_000
DEFAULT_INTERVAL = 30 * SECOND
DEFAULT_JITTER = 15 * SECOND
MIN_INTERVAL = 2 * SECOND
MIN_JITTER = 1 * SECOND


def parse(controller: Controller, rng: random.Random | None = None) -> float:
    """The interval, in seconds, with the jitter applied."""
    directive = controller.directives[0]
    args = directive.args
    if len(args) > 2:
        raise controller.arg_error(directive)
    interval = DEFAULT_INTERVAL
    if args:
        try:
            interval = parse_duration_ns(args[0].text)
        except ValueError as exc:
            raise CorefileError(str(exc)) from None
    if interval < MIN_INTERVAL:
        raise CorefileError(f"interval value must be greater or equal to {format_duration(MIN_INTERVAL)}")
    jitter = DEFAULT_JITTER
    if len(args) > 1:
        try:
            jitter = parse_duration_ns(args[1].text)
        except ValueError as exc:
            raise CorefileError(str(exc)) from None
    if jitter != 0 and jitter < MIN_JITTER:
        raise CorefileError(f"jitter value must be 0 or greater or equal to {format_duration(MIN_JITTER)}")
    if jitter > 0 and jitter > interval // 2:
        jitter = interval // 2
    if jitter > 0:
        interval += (rng or random).randrange(jitter) - jitter // 2
    return interval / SECOND


_watching: dict[int, CorefileWatcher] = {}
"""The watcher of each running configuration, by the id of its Instance: one per process, as in
CoreDNS, however many server blocks (or keys of one block) say ``reload``. The first to start
it sets the interval."""


def setup(controller: Controller) -> None:
    interval = parse(controller)
    owned: list[int] = []

    def start(front: IFront) -> None:
        instance = front.starting
        if id(instance) in _watching:
            return
        watcher = CorefileWatcher(
            front, front.corefile_source, instance.corefile, instance.filename, interval
        )
        watcher.start()
        _watching[id(instance)] = watcher
        owned.append(id(instance))

    def stop() -> Any:
        while owned:
            watcher = _watching.pop(owned.pop(), None)
            if watcher is not None:
                watcher.stop()

    controller.on_process_start(start)
    controller.on_process_stop(stop)
