"""Server-block keys as zone addresses: ``[SCHEME://]ZONE[:PORT]``, or a CIDR for reverse zones.

A key decides which queries a server block answers and where it listens, so it must be read exactly
as CoreDNS reads it (``core/dnsserver/register.go`` with ``plugin/normalize.go``), oddities included:
the port is whatever follows the *last* colon if it reads as a Go integer (``example.org,example.com:1053``
is the single zone ``example.org,example.com.``), the zone check is miekg/dns's very liberal
``IsDomainName``, and a CIDR that is not on an octet (IPv4) or nibble (IPv6) boundary becomes several
reverse zones. Error texts are CoreDNS's.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass

from .strconv import atoi, go_quote

__all__ = [
    "DEFAULT_PORTS",
    "TRANSPORTS",
    "AddressError",
    "ZoneAddress",
    "go_quote",
    "host_zones",
    "parse_zone_address",
    "reverse_zones",
    "split_transport",
]

TRANSPORTS = ("dns", "tls", "quic", "grpc", "https", "https3", "unix")
DEFAULT_PORTS = {"dns": 53, "tls": 853, "quic": 853, "grpc": 443, "https": 443, "https3": 443}

_DIGITS = re.compile(r"[0-9]+", re.ASCII)


class AddressError(ValueError):
    """A server-block key CoreDNS would refuse; ``str()`` is CoreDNS's message."""


@dataclass(frozen=True, slots=True)
class ZoneAddress:
    """One zone a server block serves, with the transport and port it is served on.

    ``port`` is 0 for ``unix://`` keys without a port: CoreDNS leaves it empty and starts no server
    for that transport.
    """

    transport: str
    zone: str
    port: int

    def __str__(self) -> str:
        return f"{self.transport}://{self.zone}:{self.port}"


def split_transport(key: str) -> tuple[str, str]:
    """The transport named by ``key``'s ``scheme://`` prefix (``dns`` without one), and the rest."""
    for transport in TRANSPORTS:
        prefix = transport + "://"
        if key.startswith(prefix):
            return transport, key[len(prefix) :]
    return "dns", key


def parse_zone_address(key: str, dns_port: int = 53) -> list[ZoneAddress]:
    """The zone addresses of one server-block key, in CoreDNS's order.

    ``dns_port`` is the port of ``dns://`` keys that name none (CoreDNS's ``-dns.port``). Raises
    :class:`AddressError` with CoreDNS's message for a key CoreDNS refuses.
    """
    transport, rest = split_transport(key)
    hosts, port = _split_host_port(rest)
    for host in hosts:
        # CoreDNS checks the fully qualified form too: a name can pass bare and fail with its dot.
        _split_host_port(_fqdn(host))
    if port is None:
        port = dns_port if transport == "dns" else DEFAULT_PORTS.get(transport, 0)
    return [ZoneAddress(transport, _normalize(host), port) for host in hosts]


def reverse_zones(cidr: str) -> list[str]:
    """The reverse zones (``in-addr.arpa.``/``ip6.arpa.``) that together cover ``cidr``.

    ``10.0.0.0/8`` gives ``["10.in-addr.arpa."]``; a prefix off the octet (IPv4) or nibble (IPv6)
    boundary gives one zone per covering subnet: ``10.0.0.0/15`` gives ``0.10.in-addr.arpa.`` and
    ``1.10.in-addr.arpa.``. Raises :class:`AddressError` (``invalid CIDR ...``) for anything else,
    including the IPv6 forms CoreDNS refuses (written with a leading ``:`` or ``0``).
    """
    network = _parse_cidr(cidr)
    if network is None or not _cidr_allowed(cidr):
        raise AddressError(f"invalid CIDR {cidr}")
    return _reverse(network)


def host_zones(host: str) -> list[str]:
    """CoreDNS's ``NormalizeExact``: the normalised zones of a host, or ``[]`` if it is not one.

    Plugins use this for zone arguments (a scheme and a port are dropped, a CIDR expands to its
    reverse zones).
    """
    try:
        hosts, _ = _split_host_port(split_transport(host)[1])
    except AddressError:
        return []
    return [_normalize(h) for h in hosts]


# -- plugin.SplitHostPort -----------------------------------------------------------------------


def _split_host_port(s: str) -> tuple[list[str], int | None]:
    colon = s.rfind(":")
    if colon == len(s) - 1:  # also true for an empty string
        raise AddressError(f"expecting data after last colon: {go_quote(s)}")
    port: int | None = None
    if colon != -1:
        port = _go_atoi(s[colon + 1 :])
        if port is not None:
            s = s[:colon]
    size = len(_utf8(s))
    if size > 255:
        raise AddressError(f"specified zone is too long: {size} > 255")
    if not _is_domain_name(s):
        raise AddressError(f"zone is not a valid domain name: {s}")
    network = _parse_cidr(s)
    if network is None:
        return [s], port
    if not _cidr_allowed(s):
        raise AddressError(f"invalid CIDR {s}")
    return _reverse(network), port


def _go_atoi(s: str) -> int | None:
    """Go's strconv.Atoi; None where it fails."""
    try:
        return atoi(s)
    except ValueError:
        return None


# -- reverse zones -------------------------------------------------------------------------------

_Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def _parse_cidr(s: str) -> _Network | None:
    """Go's net.ParseCIDR: an address (no IPv6 zone) and a decimal prefix length within its size."""
    addr, slash, mask = s.partition("/")
    if not slash or "%" in addr or not _DIGITS.fullmatch(mask):
        return None
    try:
        ip = ipaddress.ip_address(addr)
    except ValueError:
        return None
    prefix = int(mask)
    if prefix > ip.max_prefixlen:
        return None
    return ipaddress.ip_network((ip, prefix), strict=False)


def _cidr_allowed(s: str) -> bool:
    # CoreDNS refuses IPv6 written from a leading ":" or "0" (which covers every IPv4-mapped form).
    return not (s.startswith(":") or (s.startswith("0") and ":" in s))


def _reverse(network: _Network) -> list[str]:
    step = 4 if network.version == 6 else 8
    prefix = network.prefixlen
    if not prefix % step:
        return [_reverse_name(network)]
    # Not on a label boundary: one zone per subnet at the next boundary down.
    new_prefix = -(-prefix // step) * step
    return [_reverse_name(n) for n in network.subnets(new_prefix=new_prefix)]


def _reverse_name(network: _Network) -> str:
    if network.version == 4:
        octets = network.network_address.packed[: network.prefixlen // 8]
        return "".join(f"{b}." for b in reversed(octets)) + "in-addr.arpa."
    nibbles = network.network_address.packed.hex()[: network.prefixlen // 4]
    return "".join(f"{c}." for c in reversed(nibbles)) + "ip6.arpa."


# -- miekg/dns names -----------------------------------------------------------------------------


def _utf8(s: str) -> bytes:
    return s.encode("utf-8", "surrogatepass")


def _is_fqdn(s: str) -> bool:
    """miekg/dns IsFqdn: ends in a dot that is not escaped.

    Counted in bytes as Go does, so a multi-byte character before the backslashes shifts the
    count (``é\\.`` reads as fully qualified); we keep that.
    """
    if not s.endswith("."):
        return False
    s = s[:-1]
    if not s.endswith("\\"):
        return True
    head = s.rstrip("\\")
    last = len(_utf8(head)) - len(_utf8(head[-1])) if head else -1
    return (len(_utf8(s)) - last) % 2 != 0


def _fqdn(s: str) -> str:
    return s if _is_fqdn(s) else s + "."


def _is_domain_name(s: str) -> bool:
    """miekg/dns IsDomainName: labels of at most 63 octets, at most 255 in all, no empty label."""
    if not s:
        return False
    b = _utf8(_fqdn(s))
    n = len(b)
    off = begin = 0
    was_dot = escape = False
    i = 0
    while i < n:
        c = b[i]
        if c == 0x5C:  # backslash
            escape = not escape
            if off + 1 > 256:
                return False
            ddd = b[i + 1 : i + 4]
            skip = 3 if len(ddd) == 3 and ddd.isdigit() else 1  # \DDD is one octet
            i += skip
            begin += skip
            was_dot = False
        elif c == 0x2E:  # dot
            escape = False
            if i == 0 and n > 1:
                return False
            if was_dot:
                return False
            was_dot = True
            label = i - begin
            if label >= 64:
                return False
            off += 1 + label
            if off > 256:
                return False
            begin = i + 1
        else:
            escape = False
            was_dot = False
        i += 1
    return not escape


def _normalize(host: str) -> str:
    """plugin.Name.Normalize: fully qualified, lower case (Go's per-character simple mapping)."""
    name = _fqdn(host)
    if name.isascii():
        return name.lower()
    # Character by character: str.lower() on the whole string applies the final-sigma rule, which
    # Go does not. U+0130 is the one character whose Python lowercase is two characters.
    return "".join("i" if c == "\u0130" else c.lower() for c in name)
