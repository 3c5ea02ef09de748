"""Watching the Corefile by the SHA-512 of its parsed form.

CoreDNS hashes the JSON of caddy's parsed server blocks: every token with its file and line. So
a change in an imported file counts, and an edit that changes no token and no line number (a
comment at the end of a line) does not. The hash here is of the same things, in our parser's
terms; its value differs from CoreDNS's, its behaviour does not.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from typing import Any

from twisted.internet.task import LoopingCall

from ... import metrics
from ...clog import PluginLogger
from ...corefile import CorefileError, parse
from ...corefile.model import Directive, ServerBlock, Token
from ...interfaces import IFront
from ...metrics import PROCESS_REGISTRY

_log = PluginLogger("reload")

version_info = metrics.gauge(
    "reload", "version_info",
    "A metric with a constant '1' value labeled by hash, and value which type of hash generated.",
    ["hash", "value"], registry=PROCESS_REGISTRY,
)


_shown: dict[str, int] = {}
"""How many running watchers show each hash: after a reload to the same Corefile (SIGUSR1) the
new watcher shows the hash before the old one stops, and the series must outlive the old one."""


def _show(sha512: str) -> None:
    _shown[sha512] = _shown.get(sha512, 0) + 1
    version_info.labels("sha512", sha512).set(1)


def _hide(sha512: str) -> None:
    left = _shown.get(sha512, 0) - 1
    if left > 0:
        _shown[sha512] = left
        return
    _shown.pop(sha512, None)
    try:
        version_info.remove("sha512", sha512)
    except KeyError:
        pass


def _token(token: Token) -> dict[str, Any]:
    return {"File": token.file, "Line": token.line, "Text": token.text}


def _tokens(directive: Directive) -> list[dict[str, Any]]:
    out = [_token(directive.token), *(_token(t) for t in directive.args)]
    if directive.open_brace is not None:
        out.append(_token(directive.open_brace))
    for inner in directive.block or []:
        out.extend(_tokens(inner))
    if directive.close_brace is not None:
        out.append(_token(directive.close_brace))
    return out


def _as_data(blocks: list[ServerBlock]) -> list[dict[str, Any]]:
    data = []
    for block in blocks:
        tokens: dict[str, list[dict[str, Any]]] = {}
        for directive in block.directives:
            tokens.setdefault(directive.name, []).extend(_tokens(directive))
        data.append({"Keys": block.key_texts, "Tokens": tokens})
    return data


def corefile_hash(text: str, filename: str) -> str:
    """The SHA-512, in hex, of the Corefile's parsed server blocks. Raises ``CorefileError``."""
    blocks = parse(text, filename)
    encoded = json.dumps(_as_data(blocks), separators=(",", ":"), sort_keys=True).encode("utf-8")
    return hashlib.sha512(encoded).hexdigest()


class CorefileWatcher:
    """Every ``interval`` seconds, read the Corefile; reload when its hash changed."""

    def __init__(
        self,
        front: IFront,
        source: Callable[[], tuple[str, str]],
        running_text: str,
        running_filename: str,
        interval: float,
    ) -> None:
        self.front = front
        self.source = source
        self.interval = interval
        self.sha512 = corefile_hash(running_text, running_filename)
        self.loop = LoopingCall(self.check)
        self.loop.clock = front.reactor
        self.reloading = False
        self.shown = False

    def start(self) -> None:
        _log.info(f"Running configuration SHA512 = {self.sha512}")
        _show(self.sha512)
        self.shown = True
        self.loop.start(self.interval, now=False)

    def stop(self) -> None:
        if self.loop.running:
            self.loop.stop()
        if self.shown:
            _hide(self.sha512)
            self.shown = False

    def check(self) -> Any:
        if self.reloading:
            return None
        try:
            text, filename = self.source()
        except OSError:
            return None  # CoreDNS's loader error: try again at the next tick
        try:
            sha512 = corefile_hash(text, filename)
        except CorefileError as exc:
            _log.warning(f"Corefile parse failed: {exc}")
            return None
        if sha512 == self.sha512:
            return None
        self.reloading = True
        return self.front.reload("reload").addBoth(self._done, sha512)

    def _done(self, ok: object, sha512: str) -> None:
        self.reloading = False
        if ok is None:
            return  # another reload (a SIGUSR1) was under way: look again at the next tick
        if ok is True:
            # The new configuration runs its own watcher (if it kept reload), which shows its hash.
            if self.loop.running:
                self.loop.stop()
            return
        _log.error(f"Corefile changed but reload failed: {self.front.last_reload_error or ok}")
        # Not tried again until the file changes again, as in CoreDNS, which also shows the hash
        # of the file that failed.
        if self.shown:
            _hide(self.sha512)
        self.sha512 = sha512
        _show(sha512)
        self.shown = True
