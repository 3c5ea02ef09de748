"""DNSSEC keys and signatures, shared by ``sign`` (offline) and ``dnssec`` (on the fly).

A key pair is read from BIND's files (``Kzone.+alg+tag.key`` holds the DNSKEY record,
``Kzone.+alg+tag.private`` the private key in ``Private-key-format: v1.x``), as miekg/dns reads
them for CoreDNS. Signatures are made with dnspython's algorithm classes (on ``cryptography``),
over the RFC 4034 section 3.1.8.1 signing data built here from the canonical wire form: the
original TTL is a parameter, because ``dnssec`` signs with 3600 whatever TTL the reply carries.
"""

from __future__ import annotations

import base64
import binascii
import os
import struct
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import dns.dnssec
import dns.exception
import dns.name
import dns.rdata
import dns.rdataclass
import dns.rdataset
import dns.rdatatype
import dns.rrset
import dns.zonefile
from dns.dnssecalgs import get_algorithm_cls
from dns.dnssecalgs.base import GenericPrivateKey
from dns.rdtypes.ANY.DNSKEY import DNSKEY
from dns.rdtypes.ANY.NSEC import NSEC, Bitmap
from dns.rdtypes.ANY.RRSIG import RRSIG

from .rdata_names import CHARACTER_STRING, NAME, NAME_LAYOUTS
from .wire import WireError, expand_name

__all__ = [
    "ALGORITHMS",
    "KeyFileError",
    "NotADNSKEY",
    "SigningKey",
    "UnsupportedAlgorithm",
    "canonical_rdatas",
    "expand_rdata",
    "key_file_paths",
    "nsec",
    "open_error",
    "read_key_pair",
]

# The algorithms miekg/dns (so CoreDNS) signs with, by number.
ALGORITHMS: dict[int, str] = {
    5: "RSASHA1",
    7: "RSASHA1NSEC3SHA1",
    8: "RSASHA256",
    10: "RSASHA512",
    13: "ECDSAP256SHA256",
    14: "ECDSAP384SHA384",
    15: "ED25519",
}

_ZONE_KEY = 0x0100
_SEP = 0x0001
_RRSIG = dns.rdatatype.RRSIG
_FIXED = struct.Struct("!HBBIIIH")  # the RRSIG rdata before the signer name
_RR_FIXED = struct.Struct("!HHI")


class KeyFileError(ValueError):
    """A key file that cannot be used; the text says why, in miekg/dns's words where it has some."""


class NotADNSKEY(KeyFileError):
    """The public key file holds a record, but not a DNSKEY."""

    def __init__(self, path: str, rdtype: int) -> None:
        self.path = path
        self.rdtype = rdtype
        super().__init__(f"RR in {_go_q(path)} is not a DNSKEY: {rdtype}")


class UnsupportedAlgorithm(KeyFileError):
    """A private key of an algorithm that is not signed with here (nor by CoreDNS)."""


def _go_q(text: str) -> str:
    from ..strconv import go_quote

    return go_quote(text)


def open_error(exc: OSError, path: str) -> str:
    """Go's ``os.Open`` error text: ``open PATH: no such file or directory``."""
    return f"open {path}: {(exc.strerror or str(exc)).lower()}"


def key_file_paths(name: str, root: str = "") -> tuple[str, str]:
    """The ``.key`` and ``.private`` paths of a key named as a Corefile names it: the basename
    (``Kexample.org.+013+45330``) or either file; relative names are under ``root``."""
    base = name
    if base.endswith(".key"):
        base = base[: -len(".key")]
    elif base.endswith(".private"):
        base = base[: -len(".private")]
    if root and not os.path.isabs(base):
        base = os.path.join(root, base)
    return base + ".key", base + ".private"


def canonical_rdatas(rdataset: Iterable[dns.rdata.Rdata]) -> tuple[bytes, ...]:
    """The RRset's rdatas in canonical form and order (RFC 4034 6.2, 6.3), duplicates dropped."""
    return tuple(sorted({rd.to_digestable() for rd in rdataset}))


def expand_rdata(wire: bytes, rtype: int, rdata: int, end: int) -> bytes:
    """The data of a record (``wire[rdata:end]``) with the names that may be compressed in it
    written out: the same bytes whichever message the record was read from, so a key for the
    signatures over it (case kept: ``to_digestable`` decides what is lowered)."""
    fields = NAME_LAYOUTS.get(rtype)
    if fields is None:
        return wire[rdata:end]
    out = bytearray()
    off = rdata
    for field in fields:
        if field == NAME:
            name, off = expand_name(wire, off)
            out += name
        else:
            size = 1 + wire[off] if field == CHARACTER_STRING else field
            out += wire[off : off + size]
            off += size
        if off > end:
            raise WireError("name runs past the record data")
    out += wire[off:end]
    return bytes(out)


@dataclass
class SigningKey:
    """One key pair: the DNSKEY (``owner``, ``ttl``, ``dnskey``), its private half, its tag."""

    owner: dns.name.Name
    ttl: int
    dnskey: DNSKEY
    private: GenericPrivateKey
    tag: int
    path: str = ""

    @property
    def flags(self) -> int:
        return int(self.dnskey.flags)

    @property
    def algorithm(self) -> int:
        return int(self.dnskey.algorithm)

    def is_ksk(self) -> bool:
        """A zone key with the SEP bit: a KSK (or a CSK, when it is the only kind)."""
        return self.flags & (_ZONE_KEY | _SEP) == _ZONE_KEY | _SEP

    def is_zsk(self) -> bool:
        """A zone key without the SEP bit (RFC 4034 2.1.1)."""
        return self.flags & (_ZONE_KEY | _SEP) == _ZONE_KEY

    def dnskey_rrset(self, owner: dns.name.Name, ttl: int | None = None) -> dns.rrset.RRset:
        rrset = dns.rrset.RRset(owner, dns.rdataclass.IN, dns.rdatatype.DNSKEY)
        rrset.add(self.dnskey, self.ttl if ttl is None else ttl)
        return rrset

    def sign(
        self,
        owner: dns.name.Name,
        rdtype: int,
        rdatas: Sequence[bytes],
        signer: dns.name.Name,
        original_ttl: int,
        inception: int,
        expiration: int,
        rdclass: int = dns.rdataclass.IN,
    ) -> RRSIG:
        """The RRSIG over the RRset ``owner``/``rdtype`` whose canonical rdatas (sorted, see
        ``canonical_rdatas``) are ``rdatas``, as ``original_ttl`` gives its TTL."""
        labels = len(owner) - 1
        if owner.is_wild():
            labels -= 1
        fixed = _pack(rdtype, self.algorithm, labels, original_ttl, expiration, inception, self.tag)
        data = bytearray(fixed)
        data += signer.to_digestable()
        head = owner.to_digestable() + _pack_rr(rdtype, rdclass, original_ttl)
        for rdata in rdatas:
            data += head
            data += len(rdata).to_bytes(2, "big")
            data += rdata
        signature = self.private.sign(bytes(data), verify=False, deterministic=True)
        return RRSIG(
            dns.rdataclass.IN, _RRSIG, rdtype, self.algorithm, labels, original_ttl,
            expiration, inception, self.tag, signer, signature,
        )

    def sign_rrset(
        self, rrset: dns.rrset.RRset, signer: dns.name.Name, inception: int, expiration: int,
        original_ttl: int | None = None,
    ) -> RRSIG:
        """``sign`` for a dnspython RRset (its own TTL unless ``original_ttl`` is given)."""
        return self.sign(
            rrset.name, rrset.rdtype, canonical_rdatas(rrset), signer,
            rrset.ttl if original_ttl is None else original_ttl, inception, expiration, rrset.rdclass,
        )


def _pack(rdtype: int, alg: int, labels: int, ttl: int, expiration: int, inception: int, tag: int) -> bytes:
    return _FIXED.pack( rdtype, alg, labels, ttl & 0xFFFFFFFF, expiration & 0xFFFFFFFF,
                       inception & 0xFFFFFFFF, tag)


def _pack_rr(rdtype: int, rdclass: int, ttl: int) -> bytes:
    return _RR_FIXED.pack(rdtype, rdclass, ttl)


def nsec(next_name: dns.name.Name, types: Iterable[int]) -> NSEC:
    """An NSEC rdata naming ``next_name`` with the type bitmap of ``types``."""
    bitmap = Bitmap.from_rdtypes(sorted({dns.rdatatype.RdataType(t) for t in types}))
    return NSEC(dns.rdataclass.IN, dns.rdatatype.NSEC, next_name, bitmap)


# -- reading key files ----------------------------------------------------------------------------


def _read_text(path: str) -> str:
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            return f.read()
    except OSError as exc:
        raise KeyFileError(open_error(exc, path)) from None


def _read_public(path: str) -> tuple[dns.name.Name, int, Any]:
    """The first record of the ``.key`` file: its owner, TTL (3600 when absent, as miekg's zone
    parser defaults) and rdata."""
    text = _read_text(path)
    try:
        rrsets = dns.zonefile.read_rrsets(
            text, rdclass=None, default_ttl=3600, origin=dns.name.root, relativize=False
        )
    except dns.exception.DNSException as exc:
        raise KeyFileError(f"dns: {exc}: in {_go_q(path)}") from None
    if not rrsets:
        raise KeyFileError(f"no record found in {_go_q(path)}")
    first = rrsets[0]
    return first.name, first.ttl, first[0]


def _private_fields(text: str) -> dict[str, str]:
    """``Key: value`` lines, keys lower-cased; ``;`` starts a comment (miekg's key lexer)."""
    fields: dict[str, str] = {}
    for line in text.splitlines():
        line = line.split(";", 1)[0]
        key, sep, value = line.partition(":")
        if sep:
            fields[key.strip().lower()] = value.strip()
    return fields


def _b64(fields: dict[str, str], name: str) -> bytes:
    try:
        return base64.b64decode(fields[name], validate=False)
    except (KeyError, binascii.Error, ValueError):
        raise KeyFileError("dns: bad private key") from None


def _b64int(fields: dict[str, str], name: str) -> int:
    return int.from_bytes(_b64(fields, name), "big")


def _private_key(fields: dict[str, str], algorithm: int) -> Any:
    """The ``cryptography`` private key the fields describe."""
    from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

    if algorithm in (5, 7, 8, 10):
        n, e = _b64int(fields, "modulus"), _b64int(fields, "publicexponent")
        d, p, q = _b64int(fields, "privateexponent"), _b64int(fields, "prime1"), _b64int(fields, "prime2")
        numbers = rsa.RSAPrivateNumbers(
            p, q, d, rsa.rsa_crt_dmp1(d, p), rsa.rsa_crt_dmq1(d, q), rsa.rsa_crt_iqmp(p, q),
            rsa.RSAPublicNumbers(e, n),
        )
        return numbers.private_key()
    if algorithm in (13, 14):
        curve = ec.SECP256R1() if algorithm == 13 else ec.SECP384R1()
        return ec.derive_private_key(_b64int(fields, "privatekey"), curve)
    seed = _b64(fields, "privatekey")
    if len(seed) != 32:
        raise KeyFileError("dns: bad private key")
    return ed25519.Ed25519PrivateKey.from_private_bytes(seed)


def read_key_pair(public_path: str, private_path: str) -> SigningKey:
    """The key pair in ``public_path`` (a DNSKEY record) and ``private_path`` (BIND's private key
    format). Raises ``KeyFileError`` for a file that cannot be read (its text Go's ``open PATH:
    ...``) or cannot be used: not a DNSKEY, a bad or unsupported private key,
    or a private key that is not the public key's other half."""
    owner, ttl, rdata = _read_public(public_path)
    if rdata.rdtype != dns.rdatatype.DNSKEY:
        raise NotADNSKEY(public_path, int(rdata.rdtype))
    fields = _private_fields(_read_text(private_path))
    if fields.get("private-key-format") not in ("v1.2", "v1.3"):
        raise KeyFileError("dns: bad private key")
    try:
        algorithm = int(fields.get("algorithm", "").split(" ", 1)[0])
    except ValueError:
        raise KeyFileError("dns: bad private key") from None
    if algorithm not in ALGORITHMS:
        name = dns.dnssec.algorithm_to_text(algorithm) if 0 <= algorithm < 256 else str(algorithm)
        raise UnsupportedAlgorithm(
            f"unsupported algorithm {name} ({algorithm}) in {_go_q(private_path)}: "
            f"supported are {', '.join(ALGORITHMS.values())}"
        )
    if algorithm != rdata.algorithm:
        raise KeyFileError(
            f"algorithm {algorithm} of {_go_q(private_path)} is not the algorithm "
            f"{int(rdata.algorithm)} of the DNSKEY in {_go_q(public_path)}"
        )
    try:
        key = _private_key(fields, algorithm)
    except KeyFileError:
        raise
    except (ValueError, TypeError):
        raise KeyFileError("dns: bad private key") from None
    private = get_algorithm_cls(algorithm)(key=key)
    if private.public_key().to_dnskey(flags=rdata.flags, protocol=rdata.protocol).key != rdata.key:
        raise KeyFileError(
            f"the private key in {_go_q(private_path)} is not the one of the DNSKEY in {_go_q(public_path)}"
        )
    return SigningKey(owner, ttl, rdata, private, dns.dnssec.key_id(rdata), public_path)
