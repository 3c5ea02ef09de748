"""Shared pieces of the zone transfer tests (transfer, secondary, tsig): the test zone, the TSIG
key, a knotd peer, and what a real client sees of a transfer."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import dns.message
import dns.name
import dns.query
import dns.rdatatype
import dns.tsig
import dns.tsigkeyring
import pytest

from twisted_coredns.testing.knot import knot_available

XFR = Path(__file__).resolve().parent.parent / "data" / "xfr"
ZONE_TEXT = (XFR / "example.org.zone").read_text(encoding="utf-8")
KEY_NAME = "xfr.key."
KEY_SECRET = "NoTCJU+DMqFWywaPyxSijrDEA/eC3nK0xi3AMEZuPVk="
KEYRING = dns.tsigkeyring.from_text({KEY_NAME: ("hmac-sha256", KEY_SECRET)})

needs_knot = pytest.mark.skipif(not knot_available(), reason="knotd and knotc are not installed")


def zone_with(serial: int, www: str = "192.0.2.1", extra: int = 0) -> str:
    """The test zone with another serial, ``www`` address, and ``extra`` more A records."""
    text = ZONE_TEXT.replace(" 1 7200 3600", f" {serial} 7200 3600").replace("192.0.2.1", www)
    lines = [f"host{i} IN A 10.{i >> 16 & 255}.{i >> 8 & 255}.{i & 255}" for i in range(extra)]
    return text + "\n".join(lines) + "\n"


def axfr(port: int, zone: str = "example.org.", *, keyring: Any = None, keyname: Any = None,
         rdtype: str = "AXFR", serial: int = 0) -> list[dns.message.Message]:
    """A real client's zone transfer: dnspython reads every message, and checks each one's TSIG
    when ``keyring`` is given (it raises on a bad or missing signature)."""
    return list(dns.query.xfr("127.0.0.1", zone, port=port, keyring=keyring, keyname=keyname,
                              rdtype=rdtype, serial=serial, relativize=False, timeout=10,
                              keyalgorithm="hmac-sha256"))


def records(messages: list[dns.message.Message]) -> list[str]:
    """Every record of a transfer, one line each, in order."""
    return [line for m in messages for rrset in m.answer for line in rrset.to_text().splitlines()]


def tcp_query(port: int, name: str, rdtype: str, **kw: Any) -> dns.message.Message:
    return dns.query.tcp(dns.message.make_query(name, rdtype, **kw), "127.0.0.1", port=port, timeout=5)


def copy_zone_file(directory: Path, text: str = ZONE_TEXT) -> Path:
    path = directory / "example.org.zone"
    path.write_text(text, encoding="utf-8")
    return path


def have(tool: str) -> bool:
    return shutil.which(tool) is not None
