"""A real upstream for tests: Debian's ``unbound`` answering local data on a free loopback port.

``UnboundServer(records).start()`` writes a config into a temporary directory and runs
``unbound -d -c CONF`` in the foreground; ``.port`` is where it answers (UDP and TCP on 127.0.0.1),
``.stop()`` ends it. Every name falls in a ``static`` root zone, so anything not in ``records`` is
answered NXDOMAIN (or NODATA) from the config and unbound never recurses: no packet leaves this
machine. With ``tls=(cert_pem_path, key_pem_path)`` it also serves DNS-over-TLS on ``.tls_port``.

``stubs={"slow.test.": PORT}`` makes unbound recurse for the names of a zone, asking only
127.0.0.1:PORT (a ``stub-zone``); with ``"."`` among them there is no static root, and every name
outside the local zones goes to that port. A test that holds a UDP socket there without answering
gets a resolver that is slow on those names (unbound retries for well over 30 seconds) and answers
its local data at once. Nothing is ever sent anywhere but the stubs' ports.

``unbound_missing()`` says why tests should be skipped (``None`` when unbound is installed).
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

from . import stop_child

UNBOUND = shutil.which("unbound") or next(
    (p for p in ("/usr/sbin/unbound", "/usr/local/sbin/unbound") if Path(p).exists()), None
)


def unbound_missing() -> str | None:
    """A skip reason when the ``unbound`` binary is not installed, else ``None``."""
    if UNBOUND is None:
        return "unbound is not installed (apt-get install unbound)"
    return None


def _free_port() -> int:
    # Free for both UDP and TCP at this moment.
    while True:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
            udp.bind(("127.0.0.1", 0))
            port = int(udp.getsockname()[1])
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as tcp:
                try:
                    tcp.bind(("127.0.0.1", port))
                except OSError:
                    continue
                return port


def _quote(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


class UnboundServer:
    """unbound serving ``records`` (zone-file lines such as ``"a.test. 300 IN A 127.0.0.2"``).

    ``zones`` adds ``local-zone`` lines (``"bench. static"``); ``extra`` adds raw ``server:``
    lines; ``stubs`` maps zones to the 127.0.0.1 port unbound asks for their names.
    """

    def __init__(
        self,
        records: list[str],
        *,
        zones: list[str] | None = None,
        extra: list[str] | None = None,
        tls: tuple[str, str] | None = None,
        threads: int = 1,
        stubs: dict[str, int] | None = None,
    ) -> None:
        self.records = list(records)
        self.zones = list(zones or [])
        self.extra = list(extra or [])
        self.stubs = {zone.rstrip(".") + ".": port for zone, port in (stubs or {}).items()}
        self.tls = tls
        self.threads = threads
        self.port = 0
        self.tls_port = 0
        self.process: subprocess.Popen[bytes] | None = None
        self._tmp: tempfile.TemporaryDirectory[str] | None = None
        self.directory: Path | None = None

    def config(self) -> str:
        lines = [
            "server:",
            f"  interface: 127.0.0.1@{self.port}",
            f"  port: {self.port}",
            "  do-daemonize: no",
            '  chroot: ""',
            '  username: ""',
            '  pidfile: ""',
            f"  directory: {_quote(str(self.directory))}",
            "  use-syslog: no",
            '  logfile: ""',
            "  verbosity: 0",
            '  module-config: "iterator"',
            "  access-control: 127.0.0.0/8 allow",
            "  do-ip6: no",
            f"  num-threads: {self.threads}",
            "  so-reuseport: no",
            "  num-queries-per-thread: 4096",
            "  outgoing-range: 64",
            "  rrset-roundrobin: no",
            "  minimal-responses: no",
            # The stubs are on 127.0.0.1; without any, unbound never queries anyone.
            f"  do-not-query-localhost: {'no' if self.stubs else 'yes'}",
        ]
        # Everything is local or stubbed: nothing is ever looked up on the Internet.
        if "." not in self.stubs:
            lines.append('  local-zone: "." static')
        # A stubbed zone under the static root must be transparent, or the root would answer it.
        lines += [f"  local-zone: {_quote(zone)} transparent" for zone in self.stubs if zone != "."]
        for zone in self.zones:
            name, _, kind = zone.partition(" ")
            lines.append(f"  local-zone: {_quote(name)} {kind or 'static'}")
        for record in self.records:
            lines.append(f"  local-data: {_quote(record)}")
        if self.tls is not None:
            lines += [
                f"  interface: 127.0.0.1@{self.tls_port}",
                f"  tls-port: {self.tls_port}",
                f"  tls-service-pem: {_quote(self.tls[0])}",
                f"  tls-service-key: {_quote(self.tls[1])}",
            ]
        lines += [f"  {line}" for line in self.extra]
        for zone, port in self.stubs.items():
            lines += ["stub-zone:", f"  name: {_quote(zone)}", f"  stub-addr: 127.0.0.1@{port}"]
        lines += ["remote-control:", "  control-enable: no", ""]
        return "\n".join(lines)

    def start(self, timeout: float = 10.0) -> UnboundServer:
        reason = unbound_missing()
        if reason is not None:
            raise RuntimeError(reason)
        assert UNBOUND is not None
        self._tmp = tempfile.TemporaryDirectory(prefix="unbound-test-")
        self.directory = Path(self._tmp.name)
        self.port = _free_port()
        if self.tls is not None:
            self.tls_port = _free_port()
        conf = self.directory / "unbound.conf"
        conf.write_text(self.config(), encoding="utf-8")
        self.output = self.directory / "unbound.log"
        with open(self.output, "wb") as out:
            self.process = subprocess.Popen(
                [UNBOUND, "-d", "-c", str(conf)], stdout=out, stderr=subprocess.STDOUT, cwd=self.directory
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                log = self.log()
                self.stop()
                raise RuntimeError(f"unbound exited with {self.process and self.process.returncode}:\n{log}")
            if self._answers():
                return self
            time.sleep(0.05)
        log = self.log()
        self.stop()
        raise RuntimeError(f"unbound did not answer within {timeout}s:\n{log}")

    def _answers(self) -> bool:
        # id.server. CH TXT: answered by unbound itself whatever its zones (". NS" waits on a stub).
        query = b"\x12\x34\x00\x00\x00\x01\x00\x00\x00\x00\x00\x00\x02id\x06server\x00\x00\x10\x00\x03"
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.settimeout(0.2)
            try:
                s.sendto(query, ("127.0.0.1", self.port))
                data = s.recv(4096)
            except OSError:
                return False
        return data[:2] == b"\x12\x34"

    def log(self) -> str:
        try:
            return self.output.read_text(encoding="utf-8", errors="replace")
        except (AttributeError, FileNotFoundError):
            return ""

    def stop(self) -> None:
        process, self.process = self.process, None
        stop_child(process)
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None

    def __enter__(self) -> UnboundServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
