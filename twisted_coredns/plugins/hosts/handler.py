"""The hosts handler: answers A, AAAA and PTR from the parsed hosts data, and re-reads the file.

Answering is a dictionary lookup in an ``Index`` rebuilt whenever the file changes, so a reply is
the question plus records encoded at load time. What CoreDNS does for each case:

- a name outside the plugin's zones goes to the next plugin (PTR queries excepted: reverse names
  are looked up whatever the zones, and go on only when nothing matches);
- A/AAAA with records: an authoritative answer; a name known with only the other family, or any
  other type for a known name: authoritative NODATA;
- an unknown name: the next plugin when ``fallthrough`` covers it, otherwise SERVFAIL (CoreDNS has
  no SOA to put in an NXDOMAIN, so it says SERVFAIL instead).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

from ...clog import PluginLogger
from ...dns import AAAA, PTR, SERVFAIL, A, Zones
from ...metrics import gauge
from ...plugin import Handler
from ...request import Request
from ...response import Response, reply_records
from .hostsfile import HostsMap, Index, parse

log = PluginLogger("hosts")

entries = gauge("hosts", "entries", "The combined number of entries in hosts and Corefile.", ["hostsfile"])
reload_timestamp = gauge(
    "hosts", "reload_timestamp_seconds", "The timestamp of the last reload of hosts file."
)


class Hosts(Handler):
    name = "hosts"

    def __init__(
        self,
        path: str,
        origins: Sequence[str],
        *,
        ttl: int = 3600,
        auto_reverse: bool = True,
        reload: float = 5.0,
        fall: Sequence[str] = (),
        fall_unsupported: bool = False,
        inline: str = "",
    ) -> None:
        self.path = path
        self.origins = Zones(origins)
        self.ttl = ttl
        self.auto_reverse = auto_reverse
        self.reload = reload
        self.fall = Zones(fall)
        self.fall_unsupported = fall_unsupported
        self.inline = parse(inline, self.origins, auto_reverse) if inline else HostsMap()
        self.file = HostsMap()
        # (mtime in ns, size) of the file as last parsed: an unchanged file is not parsed again.
        self._stamp: tuple[int, int] | None = None
        self.index = Index(self.file, self.inline, ttl)

    # -- loading -------------------------------------------------------------------------------

    def read_hosts(self) -> None:
        """Parse the file again if its modification time or size changed. An unreadable or
        missing file keeps what was loaded before (setup already warned about it)."""
        try:
            with open(self.path, "rb") as f:
                st = os.fstat(f.fileno())
                stamp = (st.st_mtime_ns, st.st_size)
                if stamp == self._stamp:
                    return
                data = f.read()
        except OSError:
            return
        self.file = parse(data.decode("utf-8", "replace"), self.origins, self.auto_reverse)
        log.debug(f"Parsed hosts file into {len(self.file)} entries")
        self._stamp = stamp
        self.index = Index(self.file, self.inline, self.ttl)
        entries.labels(self.path).set(len(self.inline) + len(self.file))
        reload_timestamp.set(st.st_mtime_ns / 1e9)

    # -- serving -------------------------------------------------------------------------------

    def _falls_through(self, name: str) -> bool:
        return self.fall.covers(name)

    def serve(self, request: Request) -> Any:
        name = request.name
        qtype = request.qtype
        index = self.index
        if qtype == PTR:
            # Reverse names need not be in the zones; with nothing for them, always go on.
            ptr = index.ptr.get(name)
            if ptr is None:
                return self.serve_next(request)
            return reply_records(request, ptr[0], ptr[1], aa=True, plugin="hosts")
        if not self.origins.covers(name):
            return self.serve_next(request)
        found = index.lookup(name)
        if found is None:
            if self._falls_through(name):
                return self.serve_next(request)
            return Response.not_written(SERVFAIL, None, "hosts")
        if qtype == A:
            records, count = found[0]
        elif qtype == AAAA:
            records, count = found[1]
        else:
            if self.fall_unsupported and self._falls_through(name):
                return self.serve_next(request)
            records, count = b"", 0
        return reply_records(request, records, count, aa=True, plugin="hosts")
