"""The **FROM** and **TO** arguments of ``forward``, read exactly as CoreDNS reads them.

CoreDNS accepts ``1.2.3.4``, ``1.2.3.4:53``, ``[::1]:53``, ``dns://``, ``tls://1.1.1.1%sni:853``,
``https://``, ``/etc/resolv.conf``-style files (an empty one is skipped) and hostnames resolved at
start (with the system resolver, or the ``resolver`` addresses). The helpers keep Go's string forms
(``net.JoinHostPort``, no IPv6 normalisation) because the upstream's address string is also its
metrics label and what error messages print.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Callable
from dataclasses import dataclass

from ...strconv import go_quote

DNS, TLS, HTTPS = "dns", "tls", "https"
_PREFIXES = ("tls", "dns", "quic", "grpc", "https3", "https", "unix")
_DEFAULT_PORTS = {DNS: "53", TLS: "853", "quic": "853", "grpc": "443", HTTPS: "443"}


class AddressError(ValueError):
    """An address CoreDNS would reject; ``str()`` is its message."""


class NoNameservers(AddressError):
    """A resolv.conf-style file without a nameserver (CoreDNS skips it)."""

    def __init__(self) -> None:
        super().__init__("no nameservers found")


class NotAnAddress(AddressError):
    """Neither an IP address nor a readable file: maybe a hostname."""


def transport(s: str) -> tuple[str, str]:
    """``parse.Transport``: the scheme (``dns`` when there is none) and the rest."""
    for prefix in _PREFIXES:
        if s.startswith(prefix + "://"):
            return prefix, s[len(prefix) + 3 :]
    return DNS, s


def split_host_port(hostport: str) -> tuple[str, str]:
    """Go's ``net.SplitHostPort``; raises ``AddressError`` as Go fails."""
    if hostport.startswith("["):
        end = hostport.find("]")
        if end < 0:
            raise AddressError(f"address {hostport}: missing ']' in address")
        rest = hostport[end + 1 :]
        if not rest:
            raise AddressError(f"address {hostport}: missing port in address")
        if rest[0] != ":":
            raise AddressError(f"address {hostport}: missing port in address")
        host, port = hostport[1:end], rest[1:]
        if ":" in port:
            raise AddressError(f"address {hostport}: too many colons in address")
        return host, port
    colon = hostport.rfind(":")
    if colon < 0:
        raise AddressError(f"address {hostport}: missing port in address")
    host, port = hostport[:colon], hostport[colon + 1 :]
    if ":" in host:
        raise AddressError(f"address {hostport}: too many colons in address")
    if "[" in host or "]" in host or "[" in port or "]" in port:
        raise AddressError(f"address {hostport}: unexpected '[' or ']' in address")
    return host, port


def join_host_port(host: str, port: str) -> str:
    """Go's ``net.JoinHostPort``."""
    if ":" in host:
        return f"[{host}]:{port}"
    return f"{host}:{port}"


def parse_ip(text: str) -> bool:
    """Go's ``net.ParseIP(text) != nil`` (no zone, no brackets)."""
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return "%" not in text


def _strip_zone(host: str) -> str:
    pct = host.rfind("%")
    return host[:pct] if pct >= 0 else host


def split_zone(host: str) -> tuple[str, str]:
    """CoreDNS's ``splitZone``: ``tls://1.1.1.1%name:853`` is ``tls://1.1.1.1:853`` and ``name``
    (the TLS server name of one upstream); the port after the name is kept."""
    trans, sep, rest = host.partition("://")
    if not sep:
        rest, trans = trans, ""
    new_host, zone = rest, ""
    if "%" in rest:
        pct = rest.rfind("%")
        new_host = rest[:pct]
        if new_host.startswith("["):
            new_host += "]"
        zone = rest[pct + 1 :]
        if ":" in zone:
            colon = zone.rfind(":")
            new_host += zone[colon:]
            zone = zone[:colon].removesuffix("]")
    if trans:
        new_host = trans + "://" + new_host
    return new_host, zone


def read_resolv_conf(path: str) -> list[str]:
    """The nameservers of a resolv.conf-style file as ``host:53`` (miekg's
    ``ClientConfigFromFile``, then ``tryFile``)."""
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            text = f.read()
    except FileNotFoundError:
        raise NotAnAddress(
            f"failed to open file {go_quote(path)}: {go_quote(f'open {path}: no such file or directory')}"
        ) from None
    except IsADirectoryError:
        raise NotAnAddress(f"read {path}: is a directory") from None
    except OSError as exc:
        raise NotAnAddress(f"open {path}: {exc.strerror or exc}") from None
    servers = []
    for line in text.splitlines():
        fields = line.split()
        if len(fields) > 1 and fields[0] == "nameserver" and not line.lstrip().startswith(("#", ";")):
            servers.append(join_host_port(_strip_zone(fields[1]), "53"))
    return servers


def host_port_or_file(h: str) -> list[str]:
    """``parse.HostPortOrFile`` for one argument."""
    trans, host = transport(h)
    if not host:
        raise AddressError(f"invalid address: {go_quote(h)}")
    if trans == "unix":
        return [f"{trans}://{host}"]
    try:
        addr, _port = split_host_port(host)
    except AddressError:
        host = host.strip("[]")
        if not parse_ip(_strip_zone(host)):
            return _try_file(host)
        return [(trans + "://" if trans != DNS else "") + join_host_port(host, _DEFAULT_PORTS[trans])]
    if not parse_ip(_strip_zone(addr)):
        return _try_file(host)
    return [h]


def _try_file(host: str) -> list[str]:
    try:
        servers = read_resolv_conf(host)
    except NotAnAddress as exc:
        raise NotAnAddress(f"not an IP address or file {go_quote(host)}: {exc}") from None
    if not servers:
        raise NoNameservers()
    return servers


def is_domain_name(s: str) -> bool:
    """miekg's ``dns.IsDomainName``: escapes allowed, no empty label, labels under 64 octets,
    the whole name under 256."""
    if not s:
        return False
    if not s.endswith(".") or s.endswith("\\."):
        s += "."
    off = begin = 0
    was_dot = False
    i = 0
    n = len(s)
    while i < n:
        c = s[i]
        if c == "\\":
            if off + 1 > 256:
                return False
            if i + 3 < n and s[i + 1 : i + 4].isdigit():
                i += 3
                begin += 3
            else:
                i += 1
                begin += 1
            was_dot = False
        elif c == ".":
            if i == 0 and n > 1:
                return False
            if was_dot:
                return False
            was_dot = True
            if i - begin >= 64:
                return False
            off += 1 + i - begin
            if off > 256:
                return False
            begin = i + 1
        else:
            was_dot = False
        i += 1
    return True


def _system_lookup(hostname: str) -> list[str]:
    try:
        infos = socket.getaddrinfo(hostname, None, proto=socket.IPPROTO_UDP)
    except socket.gaierror:
        raise AddressError(f"lookup {hostname}: no such host") from None
    seen: dict[str, None] = {}
    for info in infos:
        seen.setdefault(str(info[4][0]), None)
    if not seen:
        raise AddressError(f"no addresses found for {go_quote(hostname)}")
    return list(seen)


system_lookup: Callable[[str], list[str]] = _system_lookup
"""How hostnames are resolved when no ``resolver`` is given (a seam for tests, which must not
send lookups off this machine)."""


def _dns_lookup(hostname: str, resolvers: list[str]) -> list[str]:
    """CoreDNS's ``dnsLookup``: A then AAAA from each resolver in turn, 2 s timeouts."""
    import dns.exception
    import dns.message
    import dns.query
    import dns.rdatatype

    last: Exception | None = None
    fqdn = hostname if hostname.endswith(".") else hostname + "."
    for resolver in resolvers:
        try:
            host, port = split_host_port(resolver)
        except AddressError:
            host, port = resolver, "53"
        ips: list[str] = []
        try:
            for rdtype in (dns.rdatatype.A, dns.rdatatype.AAAA):
                q = dns.message.make_query(fqdn, rdtype)
                try:
                    r = dns.query.udp(q, host, port=int(port), timeout=2.0)
                except (OSError, dns.exception.DNSException) as exc:
                    if ips:
                        return ips
                    raise exc
                for rrset in r.answer:
                    if rrset.rdtype == rdtype:
                        ips.extend(rd.address for rd in rrset)
        except (OSError, dns.exception.DNSException) as exc:
            last = exc
            continue
        if ips:
            return ips
    if last is not None:
        raise AddressError(f"no addresses found for {go_quote(hostname)}: {last}")
    raise AddressError(f"no addresses found for {go_quote(hostname)}")


@dataclass
class HostEntry:
    """A **TO** given as a hostname, resolved when the plugin is set up."""

    hostname: str
    port: str
    transport: str
    zone: str


def _parse_host_entry(h: str) -> HostEntry | None:
    clean, zone = split_zone(h)
    trans, host = transport(clean)
    if trans not in (DNS, TLS, HTTPS):
        return None
    hostname, port = host, _DEFAULT_PORTS[trans]
    try:
        hostname, port = split_host_port(host)
    except AddressError:
        pass
    hostname = hostname.strip("[]")
    if not hostname or not is_domain_name(hostname) or parse_ip(hostname):
        return None
    return HostEntry(hostname, port, trans, zone)


def _format_resolved(ip: str, entry: HostEntry) -> str:
    if entry.transport in (TLS, HTTPS):
        if entry.zone:
            if ":" in ip:
                return f"{entry.transport}://[{ip}%{entry.zone}]:{entry.port}"
            return f"{entry.transport}://{ip}%{entry.zone}:{entry.port}"
        return f"{entry.transport}://{join_host_port(ip, entry.port)}"
    return join_host_port(ip, entry.port)


def classify(to: list[str]) -> list[list[str] | HostEntry]:
    """CoreDNS's ``classifyToAddrs``: each **TO** as addresses, or a hostname to resolve;
    resolv.conf files without nameservers are dropped."""
    entries: list[list[str] | HostEntry] = []
    for h in to:
        try:
            entries.append(host_port_or_file(h))
            continue
        except NoNameservers:
            continue
        except NotAnAddress as exc:
            if "not an IP address or file" not in str(exc):
                raise
        entry = _parse_host_entry(h)
        if entry is None:
            raise AddressError(f"not an IP address, file, or valid domain: {go_quote(h)}")
        entries.append(entry)
    return entries


def expand(entries: list[list[str] | HostEntry], resolvers: list[str]) -> list[str]:
    """CoreDNS's ``expandAndDedup``: hostnames resolved, duplicates (by address) dropped, the
    first one kept."""
    seen: set[str] = set()
    result = []
    for entry in entries:
        if isinstance(entry, HostEntry):
            try:
                ips = _dns_lookup(entry.hostname, resolvers) if resolvers else system_lookup(entry.hostname)
            except AddressError as exc:
                raise AddressError(f"failed to resolve {go_quote(entry.hostname)}: {exc}") from None
            addrs = [_format_resolved(ip, entry) for ip in ips]
        else:
            addrs = entry
        for addr in addrs:
            key = transport(split_zone(addr)[0])[1]
            if key not in seen:
                seen.add(key)
                result.append(addr)
    return result
