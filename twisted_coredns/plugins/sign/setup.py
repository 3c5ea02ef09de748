"""Setup for ``sign``: the Corefile syntax, CoreDNS's errors, and when zones are signed.

::

    sign DBFILE [ZONES...] {
        key file|directory KEY...|DIR...
        directory DIR
    }

``sign`` adds no handler: it writes files. Signing happens once per server, in the process that
owns the listeners (never once per multisocket worker, which would race on the same file): at
start for every zone whose signed file is missing or due, then every 5 hours. The work runs in
the reactor's thread pool; its outcome is logged with CoreDNS's lines.
"""

from __future__ import annotations

import os
import time
from typing import Any

from twisted.internet.defer import Deferred, DeferredList, succeed
from twisted.internet.task import LoopingCall
from twisted.internet.threads import deferToThreadPool
from twisted.python.failure import Failure

from ...clog import PluginLogger
from ...duration import format_duration
from ...plugin import Controller
from ...strconv import go_quote
from .keys import parse_key
from .signer import REFRESH_HOURS, Signer, go_time

log = PluginLogger("sign")

__all__ = ["Sign", "parse", "setup"]


class Sign:
    """The signers of one server block, and the timer that keeps their files fresh."""

    def __init__(self, signers: list[Signer], reactor: Any, clock: Any = None, wall: Any = time.time) -> None:
        self.signers = signers
        self.reactor = reactor
        self.clock = reactor if clock is None else clock
        self.wall = wall
        self._busy: dict[int, Deferred[None]] = {}
        self._loop: LoopingCall | None = None
        self.first_round: Deferred[Any] = succeed(None)

    def start(self, _front: Any = None) -> None:
        """CoreDNS's OnStartup: sign what is due now, without holding the start up for it (the
        ``file`` plugin picks the signed file up on its next reload), then check every 5 hours.
        ``first_round`` fires when this first signing is done."""
        rounds = []
        for signer in self.signers:
            reason = signer.resign_reason(self.wall())
            if reason is None:
                log.info(f"Skipping signing zone {go_quote(signer.origin)} in {go_quote(signer.path)}: "
                         "signatures are valid")
                continue
            rounds.append(self._sign_in_thread(signer, reason))
        loop = self._loop = LoopingCall(self.refresh)
        loop.clock = self.clock
        loop.start(REFRESH_HOURS, now=False)
        self.first_round = DeferredList(rounds)

    def stop(self) -> None:
        if self._loop is not None and self._loop.running:
            self._loop.stop()
        self._loop = None

    def refresh(self) -> Deferred[Any]:
        """One check of every zone: sign those that are due."""
        return DeferredList([self._check_in_thread(signer) for signer in self.signers])

    def _pool(self, fn: Any, *args: Any) -> Deferred[Any]:
        return deferToThreadPool(self.reactor, self.reactor.getThreadPool(), fn, *args)

    def _check_in_thread(self, signer: Signer) -> Deferred[None]:
        def check_and_sign() -> None:
            reason = signer.resign_reason(self.wall())
            if reason is not None:
                self.sign_and_log(signer, reason)

        return self._once(signer, check_and_sign)

    def _sign_in_thread(self, signer: Signer, reason: str) -> Deferred[None]:
        return self._once(signer, lambda: self.sign_and_log(signer, reason))

    def _once(self, signer: Signer, work: Any) -> Deferred[None]:
        """Run ``work`` in the pool unless this zone is being signed already."""
        if id(signer) in self._busy:
            return succeed(None)
        d = self._pool(work)
        self._busy[id(signer)] = d

        def done(result: Any) -> None:
            self._busy.pop(id(signer), None)
            if isinstance(result, Failure):
                log.failure(f"signing {signer.origin} failed", result)

        d.addBoth(done)
        return d

    def sign_and_log(self, signer: Signer, reason: str) -> None:
        """CoreDNS's ``signAndLog``: sign, write, and say how it went (in a thread)."""
        start = self.wall()
        origin = go_quote(signer.origin)
        next_check = go_time(start + REFRESH_HOURS)
        try:
            zone = signer.sign(start)
        except (OSError, ValueError) as exc:
            log.info(f"Signing {origin} because {reason}")
            log.warning(f"Error signing {origin} with key tags {go_quote(signer.key_tags)} in "
                        f"{format_duration(self.wall() - start)}: {_error_text(exc)}, next: {next_check}")
            return
        log.info(f"Signing {origin} because {reason}")
        try:
            signer.write(zone)
        except OSError as exc:
            log.warning(f"Error signing {origin}: failed to move zone file into place: {_error_text(exc)}")
            return
        log.info(f"Successfully signed zone {origin} in {go_quote(signer.path)} with key tags "
                 f"{go_quote(signer.key_tags)} and {zone.serial} SOA serial, elapsed "
                 f"{self.wall() - start:f}, next: {next_check}")


def _error_text(exc: BaseException) -> str:
    if isinstance(exc, OSError) and exc.filename:
        return f"open {exc.filename}: {(exc.strerror or str(exc)).lower()}"
    return str(exc)


def parse(controller: Controller) -> list[Signer]:
    """Every ``sign`` directive of the block, one signer per zone it names."""
    root = controller.config.root or ""
    signers: list[Signer] = []
    for directive in controller.directives:
        if not directive.args:
            raise controller.arg_error(directive)
        dbfile = directive.args[0].text
        if not os.path.isabs(dbfile) and root:
            dbfile = os.path.join(root, dbfile)
        # A token that was not valid UTF-8 would never name a file: CoreDNS refuses it here.
        if "\ufffd" in dbfile or any(0xDC80 <= ord(c) <= 0xDCFF for c in dbfile):
            raise ValueError(f"dbfile {go_quote(dbfile)} contains invalid characters")
        block = [Signer(dbfile, origin) for origin in controller.origins(list(directive.args[1:]))]
        for prop in directive.block or ():
            if prop.name == "key":
                keys = parse_key(controller, prop, [signer.origin for signer in block])
                for signer in block:
                    signer.keys.extend(keys.get(signer.origin, ()))
            elif prop.name == "directory":
                if len(prop.args) != 1:
                    raise ValueError(f"can only be one argument after {go_quote('directory')}")
                directory = prop.args[0].text
                if not os.path.isabs(directory) and root:
                    directory = os.path.join(root, directory)
                for signer in block:
                    signer.directory = directory
            else:
                raise controller.unknown_property(prop)
        signers.extend(block)
    return signers


def setup(controller: Controller) -> None:
    sign = Sign(parse(controller), controller.reactor)
    controller.on_process_start(sign.start)
    controller.on_process_stop(sign.stop)
    return None  # sign is not in the chain: it writes the files others serve
