"""debug: process-wide debug mode (CoreDNS's plugin/debug).

In CoreDNS, ``debug`` does two things: ``log.Debug`` lines are printed, and the server stops
recovering from panics, so a crashing plugin takes the process down with a stack trace. A Python
server that dies on the first bad query helps nobody, so the second becomes: a handler's exception
is still answered with SERVFAIL and the server keeps serving, but the log shows its full
traceback, not only the one-line error (``clog.CoreDNSObserver`` prints it while
``clog.debug_enabled`` is set).

The setting belongs to the running Corefile: ``Instance.start`` turns debug mode on when any block
has ``debug`` and off otherwise, as CoreDNS's ``NewServer`` does on every start and reload. Setup
only marks the block, so checking a Corefile never changes what the process logs.

``hexdump`` is CoreDNS's ``debug.Hexdump``: the text2pcap-friendly dump plugins may log of a
message they want to show (forward does, for a reply with the wrong ID).
"""

from __future__ import annotations

from .. import clog
from ..plugin import Controller

_PREFIX = "debug: "


def setup(controller: Controller) -> None:
    for directive in controller.directives:
        controller.no_args(directive)
    controller.config.debug = True


def hexdump(data: bytes) -> str:
    """``debug: 000000 00 0a 01 ...`` lines, 16 bytes each, then the length: the input
    ``text2pcap`` reads (``text2pcap -i 17 -u 53,53`` makes a DNS-over-UDP capture of it)."""
    lines = []
    for offset in range(0, len(data), 16):
        chunk = " ".join(f"{b:02x}" for b in data[offset : offset + 16])
        lines.append(f"{_PREFIX}{offset:06x} {chunk}")
    lines.append(f"{_PREFIX}{len(data):06x}")
    return "\n".join(lines)


def log_hexdump(log: clog.PluginLogger, text: str, wire: bytes) -> None:
    """Log ``text`` and a hexdump of ``wire`` at debug level; nothing (not even the dump's
    formatting) happens unless debug mode is on. An empty message is not dumped, as in CoreDNS."""
    if not clog.debug_enabled or not wire:
        return
    log.debug(f"{text}\n{hexdump(wire)}")
