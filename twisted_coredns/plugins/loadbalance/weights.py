"""The weight file of ``loadbalance weighted``: a domain name on a line of its own, then its
addresses with a weight from 1 to 255 each; ``#`` starts a comment line.

It is read at startup and every ``reload`` interval after, in a thread (a file read may block),
and replaced only when its bytes changed and it parses.
"""

from __future__ import annotations

import hashlib
import ipaddress
from typing import Any

from twisted.internet import threads
from twisted.internet.task import LoopingCall
from twisted.python.failure import Failure

from ...clog import PluginLogger
from ...duration import format_duration

log = PluginLogger("loadbalance")

Weights = dict[str, dict[bytes, int]]
"""Owner name (lower case, fully qualified) to address (packed: 4 octets for IPv4 and for an
IPv4-mapped IPv6 address, 16 for IPv6) to weight."""


class WeightFileMissing(OSError):
    """CoreDNS's errOpen: the file could not be opened."""

    def __init__(self) -> None:
        super().__init__("weight file open error")


def parse_weights(text: str, filename: str) -> Weights:
    """The weight file's content, with CoreDNS's errors for its bad lines."""
    domains: Weights = {}
    current: dict[bytes, int] | None = None
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        fields = line.split()
        if len(fields) == 1:
            if _ip(fields[0]) is not None:
                raise ValueError(f'wrong domain name:"{fields[0]}" in weight file {filename}. '
                                 "(Maybe a missing weight value?)")
            name = fields[0] if fields[0].endswith(".") else fields[0] + "."
            current = domains.setdefault(name.lower(), {})
        elif len(fields) == 2:
            ip = _ip(fields[0])
            if ip is None:
                raise ValueError(f'wrong IP address:"{fields[0]}" in weight file {filename}')
            value = fields[1]
            if not value.isascii() or not value.isdigit() or not 0 < int(value) < 256:
                raise ValueError(f'wrong weight value:"{value}" in weight file {filename}')
            if current is None:
                raise ValueError(f"missing domain name in weight file {filename}")
            current.setdefault(ip, int(value))  # CoreDNS uses an address's first weight
        else:
            raise ValueError(f'could not parse weight line:"{line}" in weight file {filename}')
    return domains


def _ip(text: str) -> bytes | None:
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return None
    # Go's net.IP.Equal sees 1.2.3.4 and ::ffff:1.2.3.4 as one address.
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped.packed
    return address.packed


class WeightFile:
    """The weights in force, and the loop that re-reads them."""

    def __init__(self, filename: str, reload: float, reactor: Any) -> None:
        self.filename = filename
        self.reload = reload
        self.reactor = reactor
        self.weights: Weights = {}
        self._digest = b""
        self._loop: LoopingCall | None = None

    def _read(self) -> bytes:
        try:
            with open(self.filename, "rb") as f:
                return f.read()
        except OSError:
            raise WeightFileMissing() from None

    def _update(self, content: bytes) -> None:
        digest = hashlib.md5(content, usedforsecurity=False).digest()
        if digest == self._digest:
            return
        self._digest = digest
        self.weights = parse_weights(content.decode("utf-8", "replace"), self.filename)
        log.info(f"Successfully reloaded weight file {self.filename}")

    def start(self) -> None:
        """At startup (on the reactor, before serving): a file that cannot be opened is a warning
        when it will be tried again, a file that does not parse stops the server."""
        try:
            self._update(self._read())
        except WeightFileMissing as exc:
            if self.reload == 0:
                raise ValueError(f"plugin/loadbalance: {exc}") from None
            log.warning(f"Failed to open weight file:{exc}. Will try again in {format_duration(self.reload)}")
        except ValueError as exc:
            raise ValueError(f"plugin/loadbalance: {exc}") from None
        if self.reload > 0:
            self._loop = LoopingCall(self._reload)
            self._loop.clock = self.reactor
            self._loop.start(self.reload, now=False)

    def _reload(self) -> Any:
        d = threads.deferToThreadPool(self.reactor, self.reactor.getThreadPool(), self._read)
        d.addCallback(self._update)
        d.addErrback(self._failed)
        return d

    @staticmethod
    def _failed(failure: Failure) -> None:
        log.error(str(failure.value))

    def stop(self) -> None:
        if self._loop is not None and self._loop.running:
            self._loop.stop()
        self._loop = None
