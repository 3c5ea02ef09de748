"""chaos: answers the CH class TXT queries that name a server's version, authors and host
(CoreDNS's plugin/chaos).

``version.bind`` / ``version.server`` give the version, ``authors.bind`` the authors (one TXT
record each, in a new random order for every query), ``hostname.bind`` / ``id.server`` the host
name. Any other query goes to the next plugin. Loading chaos lets CH class queries into the
server at all: without it (or forward) the router refuses every class but IN.

The records are encoded once at setup, owned by a pointer to the question name, so an answer
costs a list and a join. Only the host name is read per query, as CoreDNS does, so a renamed
host answers with its new name.
"""

from __future__ import annotations

import random
import socket
from typing import Any

from .. import __version__
from ..dns import CLASS_CH, QNAME, TXT, records
from ..plugin import Controller, Handler
from ..request import Request
from ..response import reply

DEFAULT_VERSION = f"twisted-coredns-{__version__}"
"""What ``version.bind`` answers without a VERSION argument (CoreDNS answers CoreDNS-<version>)."""

AUTHORS = ("twisted-coredns contributors",)
"""What ``authors.bind`` answers without AUTHORS arguments (CoreDNS lists its maintainers' GitHub
handles)."""

_VERSION_NAMES = frozenset(("version.bind.", "version.server."))
_HOSTNAME_NAMES = frozenset(("hostname.bind.", "id.server."))
_AUTHORS_NAME = "authors.bind."


def _trim(text: str) -> str:
    """At most 255 bytes, as CoreDNS's ``trim`` cuts (by bytes; a cut UTF-8 character is dropped
    here rather than left broken)."""
    raw = text.encode("utf-8", "surrogateescape")
    if len(raw) < 256:
        return text
    return raw[:255].decode("utf-8", "ignore")


def _txt(text: str) -> bytes:
    """One CH TXT record with a single string (cut to 255 bytes, as CoreDNS's record holds one),
    TTL 0, owned by the question name."""
    raw = text.encode("utf-8", "surrogateescape")[:255]
    return records.txt(QNAME, 0, raw, rclass=CLASS_CH)


class Chaos(Handler):
    name = "chaos"

    def __init__(self, version: str, authors: list[str]) -> None:
        self.version = version
        self.authors = authors
        self._version = (_txt(version),)
        self._authors = [_txt(a) for a in authors]

    def serve(self, request: Request) -> Any:
        if request.qclass != CLASS_CH or request.qtype != TXT:
            return self.serve_next(request)
        name = request.name
        if name in _VERSION_NAMES:
            answer: Any = self._version
        elif name == _AUTHORS_NAME:
            answer = random.sample(self._authors, len(self._authors))
        elif name in _HOSTNAME_NAMES:
            answer = (_txt(_hostname()),)
        else:
            return self.serve_next(request)
        # No AA: CoreDNS's reply only copies the query's flags.
        return reply(request, answer=answer, plugin="chaos")


def _hostname() -> str:
    try:
        return socket.gethostname() or "localhost"
    except OSError:
        return "localhost"


def parse(controller: Controller) -> tuple[str, list[str]]:
    """The version and authors, as CoreDNS reads them: only the block's first ``chaos`` line
    counts; one argument is the version, more add the authors (deduplicated, each cut to 255
    bytes, sorted); an empty ``{}`` is allowed, a property in it is not."""
    directive = controller.directives[0]
    args = directive.values
    authors = list(AUTHORS)
    if not args:
        version = _trim(DEFAULT_VERSION)
    elif len(args) == 1:
        version = _trim(args[0])
    else:
        # CoreDNS leaves the version uncut in this case; the TXT record cuts it anyway.
        version = args[0]
        authors = sorted(_trim(a) for a in dict.fromkeys(args[1:]))
    if directive.block:
        raise controller.unknown_property(directive.block[0])
    return version, authors


def setup(controller: Controller) -> Chaos:
    version, authors = parse(controller)
    controller.config.enable_chaos = True
    return Chaos(version, authors)
