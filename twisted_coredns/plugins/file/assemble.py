"""dnspython names and rdata of the common types, made without their constructors' overhead.

dnspython's objects are immutable: every ``__init__`` (the class's and each base's) runs inside a
context variable that its ``__setattr__`` checks, which is most of the 10 µs an ``A`` costs to
make; ``TXT``'s constructor tries its argument as one string first and takes an exception for a
list. For a 10^5-record zone that was a third of the load time. Here the same checks run (the
classes' own ``_as_*`` validators, dnspython's label rules) and the slots are filled directly.

``FAITHFUL`` says whether objects made here are indistinguishable from the constructors' (every
slot equal, same hash and text): it is checked once at import against the installed dnspython,
and when it is false (a dnspython whose classes changed) the zone file reader uses the
constructors.
"""

from __future__ import annotations

from typing import Any

import dns.name
import dns.rdata
import dns.rdataclass
import dns.rdatatype
import dns.rdtypes.ANY.CNAME
import dns.rdtypes.ANY.MX
import dns.rdtypes.ANY.NS
import dns.rdtypes.ANY.PTR
import dns.rdtypes.ANY.TXT
import dns.rdtypes.IN.A
import dns.rdtypes.IN.AAAA
import dns.rdtypes.IN.SRV

__all__ = ["FAITHFUL", "a", "aaaa", "mx", "plain_name", "srv", "target", "txt"]

_new = object.__new__
_set = object.__setattr__
_IN = dns.rdataclass.IN
_A, _AAAA, _MX, _SRV, _TXT = (dns.rdatatype.A, dns.rdatatype.AAAA, dns.rdatatype.MX, dns.rdatatype.SRV,
                              dns.rdatatype.TXT)
_ROOT_LABELS = (b"",)
_MAX_NAME = 255
_MAX_LABEL = 63


def _rdata(cls: type[dns.rdata.Rdata], rdtype: int) -> Any:
    rd = _new(cls)
    _set(rd, "rdclass", _IN)
    _set(rd, "rdtype", rdtype)
    _set(rd, "rdcomment", None)
    return rd


def plain_name(text: str, origin: dns.name.Name) -> dns.name.Name | None:
    """``dns.name.from_text(text, origin)`` for text of plain ASCII labels (no escapes); None when
    the text is anything else (the caller asks dnspython, which also words the errors)."""
    if text == "@":
        return origin
    if text.endswith("."):
        if text == ".":
            return dns.name.root
        labels = tuple(text[:-1].encode("ascii").split(b".")) + _ROOT_LABELS
    else:
        labels = tuple(text.encode("ascii").split(b".")) + origin.labels
    size = 0
    for label in labels[:-1]:
        length = len(label)
        if length == 0 or length > _MAX_LABEL:
            return None
        size += length + 1
    if size + 1 > _MAX_NAME:
        return None
    name = _new(dns.name.Name)
    _set(name, "labels", labels)
    return name


def a(text: str) -> dns.rdata.Rdata:
    rd = _rdata(dns.rdtypes.IN.A.A, _A)
    _set(rd, "address", dns.rdtypes.IN.A.A._as_ipv4_address(text))
    return rd


def aaaa(text: str) -> dns.rdata.Rdata:
    rd = _rdata(dns.rdtypes.IN.AAAA.AAAA, _AAAA)
    _set(rd, "address", dns.rdtypes.IN.AAAA.AAAA._as_ipv6_address(text))
    return rd


def target(cls: type[dns.rdata.Rdata], rdtype: int, name: dns.name.Name) -> dns.rdata.Rdata:
    """NS, CNAME, PTR: one name."""
    rd = _rdata(cls, rdtype)
    _set(rd, "target", name)
    return rd


def mx(preference: int, exchange: dns.name.Name) -> dns.rdata.Rdata:
    rd = _rdata(dns.rdtypes.ANY.MX.MX, _MX)
    _set(rd, "preference", dns.rdata.Rdata._as_uint16(preference))
    _set(rd, "exchange", exchange)
    return rd


def srv(priority: int, weight: int, port: int, name: dns.name.Name) -> dns.rdata.Rdata:
    rd = _rdata(dns.rdtypes.IN.SRV.SRV, _SRV)
    check = dns.rdata.Rdata._as_uint16
    _set(rd, "priority", check(priority))
    _set(rd, "weight", check(weight))
    _set(rd, "port", check(port))
    _set(rd, "target", name)
    return rd


def txt(strings: tuple[bytes, ...]) -> dns.rdata.Rdata:
    """TXT of strings already checked (each at most 255 octets, at least one)."""
    if not strings or any(len(s) > 255 for s in strings):
        raise ValueError("bad TXT strings")
    rd = _rdata(dns.rdtypes.ANY.TXT.TXT, _TXT)
    _set(rd, "strings", strings)
    return rd


# -- the check against the constructors --------------------------------------------------------


def _same(made: Any, built: Any) -> bool:
    if type(made) is not type(built):
        return False
    slots = {slot for cls in type(built).__mro__ for slot in getattr(cls, "__slots__", ())}
    try:
        if any(getattr(made, slot) != getattr(built, slot) for slot in slots):
            return False
        return bool(made == built and hash(made) == hash(built) and made.to_text() == built.to_text())
    except Exception:
        return False


def _faithful() -> bool:
    origin = dns.name.from_text("example.org.")
    name = dns.name.from_text("www", origin)
    pairs = [
        (plain_name("www", origin), name),
        (plain_name("Www.Example.NET.", origin), dns.name.from_text("Www.Example.NET.")),
        (a("192.0.2.1"), dns.rdtypes.IN.A.A(_IN, _A, "192.0.2.1")),
        (aaaa("2001:DB8::1"), dns.rdtypes.IN.AAAA.AAAA(_IN, _AAAA, "2001:DB8::1")),
        (target(dns.rdtypes.ANY.CNAME.CNAME, dns.rdatatype.CNAME, name),
         dns.rdtypes.ANY.CNAME.CNAME(_IN, dns.rdatatype.CNAME, name)),
        (mx(10, name), dns.rdtypes.ANY.MX.MX(_IN, _MX, 10, name)),
        (srv(1, 2, 3, name), dns.rdtypes.IN.SRV.SRV(_IN, _SRV, 1, 2, 3, name)),
        (txt((b"a", b"b c")), dns.rdtypes.ANY.TXT.TXT(_IN, _TXT, [b"a", b"b c"])),
    ]
    return all(_same(made, built) for made, built in pairs)


FAITHFUL = _faithful()
