"""The auto handler: the file handler over a set of zones found by walking a directory.

Each walk (at start, then every ``reload``) lists the files under the directory, keeps those whose
base name matches the pattern, turns the match into an origin with the template, loads the files
of new origins, reloads the zones whose SOA serial changed, and drops the origins whose file is
gone. The reading and parsing run in a thread; the new set of zones is swapped in on the reactor.
"""

from __future__ import annotations

import os
import re
from typing import Any

from twisted.internet import threads
from twisted.internet.task import LoopingCall
from zope.interface import implementer

from ...clog import PluginLogger
from ...dns.names import Zones, normalize
from ...interfaces import IReady, ITransferer
from ...request import Request
from ..file.handler import File, parse_error_text
from ..file.zone import Zone, ZoneFileError

log = PluginLogger("auto")

_GROUP = re.compile(r"\$(?:\{(\w+)\}|(\w+))")


def template_from_corefile(text: str) -> str:
    """CoreDNS's ``rewriteToExpand``: ``{1}`` in a Corefile is Go's ``${1}``."""
    return text.replace("{", "${")


def expand(template: str, match: re.Match[str]) -> str:
    """Go's ``Regexp.ExpandString``: ``$1``, ``${1}`` and ``${name}`` replaced by the submatch
    (an unknown or unmatched one by nothing), ``$$`` by ``$``."""

    def one(m: re.Match[str]) -> str:
        key = m.group(1) or m.group(2)
        try:
            value = match.group(int(key)) if key.isdigit() else match.group(key)
        except (IndexError, error_types):
            return ""
        return value or ""

    error_types = re.error
    return _GROUP.sub(one, template.replace("$$", "\x00")).replace("\x00", "$")


@implementer(ITransferer, IReady)
class Auto(File):
    """Answers for the zones found in one directory."""

    name = "auto"

    def __init__(
        self,
        origins: list[str],
        directory: str,
        pattern: re.Pattern[str],
        template: str,
        reload: float,
        *,
        block: Any = None,
        reactor: Any = None,
    ) -> None:
        super().__init__({}, block=block)
        self.origins = Zones(origins)
        self.directory = directory
        self.pattern = pattern
        self.template = template
        self.reload = reload
        self.reactor = reactor
        self.files: dict[str, str] = {}
        self.walked = False
        self._walking: Any = None
        self.timer = LoopingCall(self.walk)
        if reactor is not None:
            self.timer.clock = reactor

    def ready(self) -> bool:
        return self.walked

    def serve(self, request: Request) -> Any:
        if not self.origins.covers(request.name):
            return self.serve_next(request)
        return super().serve(request)

    # -- walking -------------------------------------------------------------------------------

    def start(self) -> Any:
        """The first walk, then one every ``reload`` (unless it is 0)."""
        first = self.walk()
        if self.reload > 0:
            self.timer.start(self.reload, now=False)
        return first

    def stop(self) -> None:
        if self.timer.running:
            self.timer.stop()

    def walk(self) -> Any:
        if self._walking is not None:
            return None
        current = dict(self.zones)
        files = dict(self.files)
        work = threads.deferToThreadPool(
            self.reactor, self.reactor.getThreadPool(), self.scan, current, files
        )
        self._walking = work

        def swap(found: tuple[dict[str, Zone | None], dict[str, str], list[str]]) -> None:
            self._walking = None
            zones, paths, changed = found
            self.files = paths
            self.set_zones(zones)
            self.walked = True
            for origin in changed:
                self.notify(origin)

        def failed(failure: Any) -> None:
            self._walking = None
            log.error(f"walking {self.directory} failed: {failure.getErrorMessage()}")

        return work.addCallbacks(swap, failed)

    def _candidates(self) -> dict[str, str]:
        """origin -> file, for every file under the directory whose name matches."""
        directory = os.path.realpath(self.directory)
        seen: dict[str, str] = {}
        for root, dirs, names in os.walk(
            directory, onerror=lambda e: log.warning(f"error reading {e.filename}: {e}")
        ):
            dirs.sort()
            for name in sorted(names):
                match = self.pattern.search(name)
                if match is None:
                    continue
                origin = normalize(expand(self.template, match) or ".")
                path = os.path.normpath(os.path.join(root, name))
                previous = seen.get(origin)
                if previous is not None and previous != path:
                    log.warning(
                        f'Multiple zone files match origin "{origin}": using "{previous}" instead of "{path}"'
                    )
                    continue
                seen[origin] = path
        return seen

    def scan(
        self, current: dict[str, Zone | None], files: dict[str, str]
    ) -> tuple[dict[str, Zone | None], dict[str, str], list[str]]:
        """Runs in a thread: the zones after this walk, their files, and the origins that changed."""
        zones: dict[str, Zone | None] = {}
        paths: dict[str, str] = {}
        changed: list[str] = []
        for origin, path in self._candidates().items():
            old = current.get(origin)
            try:
                zone = Zone.from_file(path, origin)
            except OSError as exc:
                log.warning(f"Opening {path} failed: open {path}: {(exc.strerror or str(exc)).lower()}")
                zone = None
            except ZoneFileError as exc:
                if old is None:
                    log.warning(f"Parse zone `{origin}': {parse_error_text(path, origin, exc)}")
                else:
                    log.error(f'Parsing zone "{origin}": {parse_error_text(path, origin, exc)}')
                zone = None
            if zone is None:
                if old is not None:  # a broken file keeps the zone that was serving
                    zones[origin], paths[origin] = old, files.get(origin, path)
                continue
            if old is None:
                log.info(f"Inserting zone `{origin}' from: {path}")
                zones[origin], paths[origin] = zone, path
                changed.append(origin)
            elif zone.serial != old.serial:
                log.info(f'Successfully reloaded zone "{origin}" in "{path}" with {zone.serial} SOA serial')
                zones[origin], paths[origin] = zone, path
                changed.append(origin)
            else:
                zones[origin], paths[origin] = old, path
        for origin in current:
            if origin not in zones:
                log.info(f"Deleting zone `{origin}'")
        return zones, paths, changed
