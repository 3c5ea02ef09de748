"""Where the domain names lie in the data of the record types that carry them, for code that edits
a message's names in its bytes (``rewrite`` puts a reply's names back without building it again).

A name inside record data may be compressed (a pointer to an earlier name) for the types RFC 1035
defined, and a reader must expect it in a few later ones too (RFC 3597, section 4). An editor that
moves bytes must find those names to move their pointers with them; the types whose names are never
compressed (RRSIG, NSEC, ...) it can copy as they are, since nothing in them points anywhere.
"""

from __future__ import annotations

from .constants import CNAME, DNAME, MX, NAPTR, NS, PTR, SOA, SRV

__all__ = ["CHARACTER_STRING", "NAME", "NAME_LAYOUTS", "UNWALKED"]

NAME = -1
"""In a layout: a domain name, possibly compressed."""
CHARACTER_STRING = -2
"""In a layout: one length-prefixed character string."""

NAME_LAYOUTS: dict[int, tuple[int, ...]] = {
    NS: (NAME,),
    3: (NAME,),  # MD
    4: (NAME,),  # MF
    CNAME: (NAME,),
    SOA: (NAME, NAME, 20),
    7: (NAME,),  # MB
    8: (NAME,),  # MG
    9: (NAME,),  # MR
    PTR: (NAME,),
    14: (NAME, NAME),  # MINFO
    MX: (2, NAME),
    17: (NAME, NAME),  # RP
    18: (2, NAME),  # AFSDB
    21: (2, NAME),  # RT
    26: (2, NAME, NAME),  # PX
    SRV: (6, NAME),
    NAPTR: (4, CHARACTER_STRING, CHARACTER_STRING, CHARACTER_STRING, NAME),
    36: (2, NAME),  # KX
    DNAME: (NAME,),
}
"""The data of each type that holds names, in order: a number is that many fixed octets, ``NAME``
a domain name, ``CHARACTER_STRING`` a character string. The data ends with the last item."""

UNWALKED = frozenset({24, 30})
"""SIG and NXT: names a reader must decompress (RFC 3597) after fields not worth a layout here; an
editor gives up on a message that holds one."""
