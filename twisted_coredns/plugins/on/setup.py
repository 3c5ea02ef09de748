"""on's setup: each ``on EVENT COMMAND...`` line becomes a hook.

``startup`` runs in the process that owns the listeners once the server serves (and again when a
reload brings in a new configuration, as caddy's instance startup event does); ``shutdown`` runs
there when the server is told to stop. ``certrenew`` is accepted and never fires: nothing here
renews certificates.
"""

from __future__ import annotations

import shlex
from typing import Any

from ...plugin import Controller
from .hook import EVENTS, Hook


def setup(controller: Controller) -> None:
    for directive in controller.directives:
        if not directive.args:
            raise controller.arg_error(directive)
        event_token = directive.args[0]
        event = EVENTS.get(event_token.text.lower())
        if event is None:
            message = f"Wrong event name or event not supported: '{event_token.text}'"
            raise controller.err(event_token, message)
        line = " ".join(directive.values[1:])
        last = directive.args[-1]
        try:
            parts = shlex.split(line)
        except ValueError as exc:
            raise controller.err(last, f"error parsing command: {exc}") from None
        if not parts:
            raise controller.err(last, f"no command contained in '{line}'")
        hook = Hook(event, parts[0], parts[1:], controller.reactor)
        if event == "instancestartup":
            controller.on_process_start(_ignoring_front(hook))
        elif event == "shutdown":
            controller.on_final_shutdown(hook)


def _ignoring_front(hook: Hook) -> Any:
    def run(_front: Any) -> Any:
        return hook()

    return run
