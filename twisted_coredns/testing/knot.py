"""knotd (Knot DNS) in tests: an authoritative server to compare answers with, a primary that our
``secondary`` transfers from, or a secondary that transfers from our ``transfer``.

``KnotServer`` writes a knot.conf into a temporary folder, starts ``knotd`` on a loopback port
(free, or the one given), and waits until it answers and, for the zones it serves from a file,
until each zone is loaded. ``knotc`` talks to it through its control socket (``zone-reload``,
``zone-refresh``, ``status``). ``stop`` ends it and removes the folder.

A zone is a primary (``text``: its zone file) or a secondary (``primary``: a ``host@port`` to
transfer from). Transfers and NOTIFY are allowed from ``allow`` (127.0.0.1 by default), with the
TSIG key when one is given (``key=(name, secret)``, hmac-sha256 unless ``algorithm`` says
otherwise): both peers then sign.

    with KnotServer([KnotZone("example.org.", text=zone)]) as knot:
        reply = knot.query("www.example.org.", "A")
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import dns.exception
import dns.message
import dns.query
import dns.rdatatype

from . import free_port, stop_child, wait_for

__all__ = ["KNOTC", "KNOTD", "KnotServer", "KnotZone", "knot_available"]

KNOTD = shutil.which("knotd") or "/usr/sbin/knotd"
KNOTC = shutil.which("knotc") or "/usr/sbin/knotc"
LOOPBACK = "127.0.0.1"


def knot_available() -> bool:
    """Whether knotd and knotc are installed (Debian: ``apt-get install knot``)."""
    return os.path.exists(KNOTD) and os.path.exists(KNOTC)


@dataclass
class KnotZone:
    """A zone of the knotd: served from ``text`` (a primary) or transferred from ``primary`` (a
    ``host@port``: a secondary)."""

    domain: str
    text: str | None = None
    primary: str | None = None
    notify: list[str] = field(default_factory=list)
    """``host@port`` addresses to NOTIFY when the zone changes."""


class KnotServer:
    """One knotd process and its folder. ``port`` may be set before ``start``."""

    def __init__(
        self,
        zones: Iterable[KnotZone],
        *,
        key: tuple[str, str] | None = None,
        algorithm: str = "hmac-sha256",
        port: int | None = None,
        allow: Iterable[str] = (LOOPBACK,),
        workers: int = 1,
    ) -> None:
        self.zones = list(zones)
        self.key = key
        self.algorithm = algorithm
        self.allow = list(allow)
        self.workers = workers
        self.dir = tempfile.mkdtemp(prefix="knot-")
        self.port = port if port is not None else free_port()
        self.conf = os.path.join(self.dir, "knot.conf")
        self.socket = os.path.join(self.dir, "knot.sock")
        self.log_path = os.path.join(self.dir, "knotd.log")
        self.process: subprocess.Popen[bytes] | None = None
        self._log: Any = None

    # -- configuration -------------------------------------------------------------------------

    def zone_path(self, domain: str) -> str:
        name = domain.rstrip(".") or "root"
        return os.path.join(self.dir, f"{name}.zone")

    def write_zone(self, domain: str, text: str) -> None:
        """Write ``domain``'s zone file (then ``knotc("zone-reload", domain)`` to serve it)."""
        with open(self.zone_path(domain), "w", encoding="utf-8") as f:
            f.write(text)

    def config(self) -> str:
        """knot.conf for these zones."""
        workers = self.workers
        lines = [
            "server:",
            f"    rundir: {self.dir}",
            f"    listen: {LOOPBACK}@{self.port}",
            f"    udp-workers: {workers}",
            f"    tcp-workers: {workers}",
            "    background-workers: 1",
            "database:",
            f"    storage: {self.dir}",
            "control:",
            f"    listen: {self.socket}",
            "log:",
            "  - target: stderr",
            "    any: info",
        ]
        key_line = ""
        if self.key:
            name, secret = self.key
            lines += ["key:", f"  - id: {name}", f"    algorithm: {self.algorithm}", f"    secret: {secret}"]
            key_line = f"    key: {name}"
        remotes: list[str] = []
        for zone in self.zones:
            for peer in [zone.primary, *zone.notify]:
                if peer and peer not in remotes:
                    remotes.append(peer)
        if remotes:
            lines.append("remote:")
            for i, peer in enumerate(remotes):
                lines += [f"  - id: peer{i}", f"    address: {peer}"]
                if key_line:
                    lines.append(key_line)
        lines += ["acl:", "  - id: peers", f"    address: [{', '.join(self.allow)}]"]
        lines.append("    action: [transfer, notify]")
        if key_line:
            lines.append(key_line)
        lines.append("zone:")
        for zone in self.zones:
            lines += [f"  - domain: {zone.domain}", f"    file: {self.zone_path(zone.domain)}"]
            lines.append("    acl: peers")
            # The zone file is the truth: never written back, no journal to replay at start.
            lines += ["    zonefile-sync: -1", "    journal-content: none"]
            if zone.text is not None:
                self.write_zone(zone.domain, zone.text)
            if zone.primary:
                lines.append(f"    master: peer{remotes.index(zone.primary)}")
            if zone.notify:
                peers = ", ".join(f"peer{remotes.index(p)}" for p in zone.notify)
                lines.append(f"    notify: [{peers}]")
        return "\n".join(lines) + "\n"

    # -- running -------------------------------------------------------------------------------

    def start(self, timeout: float = 15.0) -> KnotServer:
        """Start knotd; return once it answers on its port and has loaded its primary zones.
        ``RuntimeError`` with its log when it exits or does not come up in ``timeout`` s."""
        with open(self.conf, "w", encoding="utf-8") as f:
            f.write(self.config())
        self._log = open(self.log_path, "wb")  # closed in stop()
        self.process = subprocess.Popen([KNOTD, "-c", self.conf], stdout=self._log, stderr=subprocess.STDOUT)
        primaries = [z.domain for z in self.zones if z.text is not None]
        try:
            wait_for(self._answers, timeout, "knotd to answer")
            for domain in primaries:
                wait_for(lambda d=domain: self.serial(d) is not None, timeout, f"knotd to load {domain}")
        except AssertionError as exc:
            raise RuntimeError(f"knotd did not start ({exc}): {self.log()}") from None
        return self

    def _answers(self) -> bool:
        assert self.process is not None
        if self.process.poll() is not None:
            raise RuntimeError(f"knotd exited with {self.process.returncode}: {self.log()}")
        try:
            self.query("version.server.", "TXT", rdclass="CH", timeout=0.2)
        except (dns.exception.Timeout, OSError):
            return False
        return True

    def query(
        self, name: str, rdtype: str = "A", *, rdclass: str = "IN", timeout: float = 2.0, **kw: Any
    ) -> dns.message.Message:
        """One UDP query to knotd (``kw`` go to ``dns.message.make_query``: ``want_dnssec``...)."""
        query = dns.message.make_query(name, rdtype, rdclass, **kw)
        return dns.query.udp(query, LOOPBACK, port=self.port, timeout=timeout)

    def serial(self, domain: str) -> int | None:
        """knotd's SOA serial for ``domain``, None when it does not serve it (yet)."""
        try:
            reply = self.query(domain, "SOA", timeout=1)
        except (dns.exception.DNSException, OSError):
            return None
        for rrset in reply.answer:
            if rrset.rdtype == dns.rdatatype.SOA:
                return int(rrset[0].serial)
        return None

    def knotc(self, *args: str, timeout: float = 20.0) -> str:
        """Run ``knotc`` against this knotd's control socket; its output."""
        done = subprocess.run(
            [KNOTC, "-s", self.socket, *args], capture_output=True, text=True, timeout=timeout
        )
        return done.stdout + done.stderr

    def log(self) -> str:
        try:
            with open(self.log_path, encoding="utf-8", errors="replace") as f:
                return f.read()
        except OSError:
            return ""

    def stop(self) -> None:
        """Stop knotd (TERM, then KILL after 10 s) and remove its folder."""
        process = self.process
        stop_child(process)
        if self._log is not None:
            self._log.close()
            self._log = None
        shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self) -> KnotServer:
        return self.start() if self.process is None else self

    def __exit__(self, *exc: object) -> None:
        self.stop()
