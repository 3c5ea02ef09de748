"""bind: the addresses a server block listens on (CoreDNS's plugin/bind).

Without bind a block listens on every address. With it, ``BlockConfig.listen_hosts`` lists the
addresses given: IPs as written, interface names expanded to every address the interface has when
the Corefile is loaded (IPv4 first, then IPv6, as Go's ``net.Interfaces`` lists them), IPv6
link-local ones with the interface as zone (``fe80::1%eth0``), since such an address means
nothing without one. ``except`` takes addresses back out, compared as text, as CoreDNS compares
them. Several ``bind`` lines add up; each line's ``except`` applies to that line only.

Interfaces are read with the C library's ``getifaddrs`` through ctypes: on Linux it asks the kernel
over netlink, as Go does, it exists on the BSDs and macOS too, and it needs no extra dependency or
subprocess. Where it is missing, bind warns as CoreDNS does and accepts IP addresses only.
"""

from __future__ import annotations

import ctypes
import ipaddress
import os
import socket
import sys

from ..clog import PluginLogger
from ..corefile.model import Directive
from ..plugin import Controller

# Go's %q, as the address module already writes it for key errors.
from ..strconv import go_quote

_log = PluginLogger("bind")


class _IfAddrs(ctypes.Structure):
    """The head of ``struct ifaddrs``: these four fields are laid out alike on every system
    that has it; the rest is never read."""


_IfAddrs._fields_ = [
    ("ifa_next", ctypes.POINTER(_IfAddrs)),
    ("ifa_name", ctypes.c_char_p),
    ("ifa_flags", ctypes.c_uint),
    ("ifa_addr", ctypes.c_void_p),
]

# BSD-derived systems start a sockaddr with a length byte, then a one-byte family; the others
# (Linux, Solaris) with a two-byte family.
_BSD_SOCKADDR = sys.platform.startswith(("darwin", "freebsd", "openbsd", "netbsd", "dragonfly"))


def _family(sockaddr: int) -> int:
    if _BSD_SOCKADDR:
        return ctypes.c_uint8.from_address(sockaddr + 1).value
    return ctypes.c_uint16.from_address(sockaddr).value


def _is_link_local(packed: bytes) -> bool:
    """Go's ``IsLinkLocalUnicast`` (fe80::/10) or ``IsLinkLocalMulticast`` (ffx2::/16) for IPv6."""
    unicast = packed[0] == 0xFE and packed[1] & 0xC0 == 0x80
    multicast = packed[0] == 0xFF and packed[1] & 0x0F == 0x02
    return unicast or multicast


def _ipv6_text(packed: bytes, interface: str) -> str:
    addr = ipaddress.IPv6Address(packed)
    if addr.ipv4_mapped is not None:
        return str(addr.ipv4_mapped)  # Go prints a mapped address as IPv4, and never zones it
    text = str(addr)
    return f"{text}%{interface}" if _is_link_local(packed) else text


def interface_addresses() -> dict[str, list[str]]:
    """Each interface's name and its addresses as text, in the system's order.

    Interfaces without an address are listed too (binding to one binds nothing, which is not an
    error in CoreDNS). Raises OSError when the system cannot tell.
    """
    result: dict[str, list[str]] = {}
    try:
        for _index, name in socket.if_nameindex():
            result[name] = []
    except (AttributeError, OSError):
        pass  # getifaddrs below still names every interface that has an address
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        getifaddrs = libc.getifaddrs
        freeifaddrs = libc.freeifaddrs
    except (AttributeError, OSError, TypeError) as exc:
        raise OSError(f"getifaddrs is not available: {exc}") from None
    head = ctypes.POINTER(_IfAddrs)()
    if getifaddrs(ctypes.byref(head)) != 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err))
    try:
        node = head
        while node:
            entry = node.contents
            node = entry.ifa_next
            name = (entry.ifa_name or b"").decode("utf-8", "replace")
            addresses = result.setdefault(name, [])
            sockaddr = entry.ifa_addr
            if not sockaddr:
                continue
            family = _family(sockaddr)
            if family == socket.AF_INET:
                addresses.append(socket.inet_ntop(socket.AF_INET, ctypes.string_at(sockaddr + 4, 4)))
            elif family == socket.AF_INET6:
                addresses.append(_ipv6_text(ctypes.string_at(sockaddr + 8, 16), name))
    finally:
        freeifaddrs(head)
    return result


def _valid_ip(text: str) -> bool:
    """Go's ``net.ParseIP`` accepts it: dotted IPv4 without leading zeros, or IPv6 without a zone."""
    if "%" in text:
        return False
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


def _list_ip(args: list[str], interfaces: dict[str, list[str]]) -> list[str]:
    """The addresses named by ``args``: interface names expanded, IP addresses kept as written."""
    found: list[str] = []
    for arg in args:
        addresses = interfaces.get(arg)
        if addresses is not None:
            found.extend(addresses)
        elif _valid_ip(arg):
            found.append(arg)
        else:
            raise ValueError(f"not a valid IP address or interface name: {go_quote(arg)}")
    return found


def _parse(directive: Directive) -> tuple[list[str], list[str]]:
    addrs = directive.values
    if not addrs:
        raise ValueError("at least one address or interface name is expected")
    excepted: list[str] = []
    for prop in directive.block or ():
        if prop.name != "except":
            raise ValueError(f"invalid option {go_quote(prop.name)}")
        if not prop.args:
            raise ValueError("at least one address or interface must be given to except subdirective")
        if prop.block is not None:
            # caddy reads one level of block only: the '{' is the next "option".
            raise ValueError('invalid option "{"')
        excepted = prop.values  # a later except line replaces an earlier one, as in CoreDNS
    return addrs, excepted


def setup(controller: Controller) -> None:
    try:
        interfaces = interface_addresses()
    except OSError as exc:
        _log.warning(f"failed to get interfaces list, cannot bind by interface name: {exc}")
        interfaces = {}
    hosts: list[str] = []
    for directive in controller.directives:
        addrs, excepted = _parse(directive)
        ips = _list_ip(addrs, interfaces)
        drop = set(_list_ip(excepted, interfaces))
        hosts.extend(ip for ip in ips if ip not in drop)
    controller.config.listen_hosts = hosts
