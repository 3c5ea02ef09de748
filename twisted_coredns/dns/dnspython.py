"""dnspython, set up once for reading what strangers send.

dnspython finds the class that reads a record's data in a table it fills on demand
(``dns.rdata.get_rdata_class``). Two things about that table matter to a server:

- A record of class ANY and of a type dnspython implements for IN only (A, AAAA, SRV...) stores
  the generic reader under ``(ANY, type)``, and a later lookup of ``(IN, type)`` that is not in
  the table yet falls back to that entry. After one such packet the process reads IN AAAA
  records of any length: a query that must be a FORMERR goes on to the plugins, and an upstream's
  reply that does not parse is relayed. Which packet comes first decides, so the fuzz test
  failed in one worker out of two, now and then.
- Every new (class, type) pair is stored, and the first of each costs two failed imports:
  records with random classes grow the table without bound.

So before dnspython reads any wire, every implementation is loaded up front with dynamic loading
turned off (``load_all_types``), and the table keeps real implementations only: the generic
reader is what a miss gives, never what a lookup finds. ``parse_message`` is the way in for
plugins; the table is private to dnspython, and ``tests/dns/test_dnspython.py`` catches a dnspython
that changes it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import dns.message

__all__ = ["load_rdata_types", "parse_message"]

_loaded = False


class _Implementations(dict[Any, Any]):
    """dnspython's rdata class table, refusing the generic reader as a value: ``table``'s
    entries but the generic ones."""

    def __init__(self, table: dict[Any, Any], generic: Any) -> None:
        super().__init__((key, cls) for key, cls in table.items() if cls is not generic)
        self.generic = generic

    def __setitem__(self, key: Any, value: Any) -> None:
        if value is not self.generic:
            super().__setitem__(key, value)


def load_rdata_types() -> None:
    """Load every rdata implementation and guard dnspython's table; idempotent, about 25 ms the
    first time. The fork server calls it so that workers start with it done."""
    global _loaded
    if _loaded:
        return
    import dns.rdata

    table = getattr(dns.rdata, "_rdata_classes", None)
    if isinstance(table, dict) and not isinstance(table, _Implementations):
        # Generic entries stored before this call go first: one under (ANY, type) would be what
        # loading finds for (IN, type), and the IN implementation would never load.
        dns.rdata._rdata_classes = _Implementations(table, dns.rdata.GenericRdata)
    dns.rdata.load_all_types(disable_dynamic_load=True)
    _loaded = True


def parse_message(wire: bytes, **kwargs: Any) -> dns.message.Message:
    """``dns.message.from_wire`` with the rdata table set up first: what a plugin calls to read a
    query or a reply with dnspython."""
    import dns.message

    load_rdata_types()
    return dns.message.from_wire(wire, **kwargs)
