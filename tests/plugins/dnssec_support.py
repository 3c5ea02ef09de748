"""Shared by the tests of dnssec and sign: BIND's ``delv`` validating a server's answers from a
trust anchor made of the zone's key."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

from twisted.internet.defer import Deferred
from twisted.internet.threads import deferToThread


def write_trust_anchor(path: Path, zone: str, dnskey: Any) -> Path:
    """A ``trust-anchors`` file at ``path`` holding ``dnskey`` (a dnspython DNSKEY rdata) as the
    static key of ``zone``, for ``delv -a``."""
    public = dnskey.to_text().split(None, 3)[3].replace(" ", "")
    path.write_text(
        f"trust-anchors {{\n  {zone} static-key {dnskey.flags} {dnskey.protocol} "
        f'{dnskey.algorithm} "{public}";\n}};\n'
    )
    return path


def delv(port: int, anchor: Path, root: str, qname: str, qtype: str) -> Deferred[Any]:
    """``delv`` asking 127.0.0.1:``port`` for ``qname qtype`` with ``root`` as the trust point, in
    a thread; the CompletedProcess, whose output says how far it validated."""
    return deferToThread(
        subprocess.run,
        ["delv", "@127.0.0.1", "-p", str(port), "-a", str(anchor), f"+root={root}", qname, qtype],
        capture_output=True,
        text=True,
        timeout=20,
    )
