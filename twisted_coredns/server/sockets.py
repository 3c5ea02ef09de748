"""Listening sockets made by us, with SO_REUSEPORT, then adopted by the reactor.

Twisted's ``listenUDP``/``listenTCP`` cannot set SO_REUSEPORT before bind, and the multisocket
launcher needs N sockets on one port in N processes, so every listener is created here. Like
CoreDNS's reuseport package, a missing SO_REUSEPORT is a warning, not a failure: the second bind on
the same port then fails with "address already in use", as it does for CoreDNS.
"""

from __future__ import annotations

import os
import socket
from typing import Any

from twisted.logger import Logger

_log = Logger(namespace="coredns")

BACKLOG = 1024


def _family_and_host(host: str) -> tuple[socket.AddressFamily, str, bool]:
    """The family to bind, the host to bind, and whether the socket is dual-stack.

    An empty host means every address, as Go's ``:53``: a dual-stack IPv6 socket where IPv6
    exists, else IPv4.
    """
    if host == "":
        if socket.has_ipv6 and _ipv6_works():
            return socket.AF_INET6, "::", True
        return socket.AF_INET, "0.0.0.0", False
    if ":" in host:
        return socket.AF_INET6, host.strip("[]"), False
    return socket.AF_INET, host, False


_ipv6_ok: bool | None = None


def _ipv6_works() -> bool:
    global _ipv6_ok
    if _ipv6_ok is None:
        try:
            with socket.socket(socket.AF_INET6, socket.SOCK_DGRAM) as s:
                s.bind(("::1", 0))
            _ipv6_ok = True
        except OSError:
            _ipv6_ok = False
    return _ipv6_ok


class ListenError(OSError):
    """A listener that could not be made, worded as Go's net package words it
    (``listen udp 127.0.0.1:53: bind: address already in use``), which is what CoreDNS prints."""

    def __init__(self, code: int | None, host: str, port: int, kind: socket.SocketKind, op: str) -> None:
        reason = os.strerror(code).lower() if code else "unknown error"
        shown = f"[{host}]" if ":" in host else host
        proto = "tcp" if kind == socket.SOCK_STREAM else "udp"
        super().__init__(code, f"listen {proto} {shown}:{port}: {op}: {reason}")

    def __str__(self) -> str:
        return str(self.strerror)


def listen_socket(host: str, port: int, kind: socket.SocketKind, bind: bool = True) -> socket.socket:
    """A bound, non-blocking socket (listening, for TCP) with SO_REUSEPORT set before bind.

    With ``bind=False`` it is made ready but left unbound: ``bind_late`` binds it where and when
    it is read. A socket joins its port's SO_REUSEPORT group, and gets its share of the queries,
    the moment it is bound; one bound long before anyone reads it would queue (and, once its
    buffer is full, drop) that share meanwhile."""
    family, _bind_host, dual = _family_and_host(host)
    sock = socket.socket(family, kind)
    try:
        if kind == socket.SOCK_STREAM:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        except (AttributeError, OSError) as exc:
            _log.warn("Failed to set SO_REUSEPORT on socket: {error}", error=exc)
        if family == socket.AF_INET6:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0 if dual else 1)
        if bind:
            _bind(sock, host, port, kind)
        # A blocking socket would hang the reactor in recvfrom, deaf even to SIGTERM.
        sock.setblocking(False)
    except BaseException:
        sock.close()
        raise
    return sock


def _bind(sock: socket.socket, host: str, port: int, kind: socket.SocketKind) -> None:
    family, bind_host, _dual = _family_and_host(host)
    address: tuple[Any, ...] = (bind_host, port)
    if "%" in bind_host:
        # A link-local address with its zone (fe80::1%eth0, from bind): bind() wants the zone
        # as a scope id, which only getaddrinfo works out.
        address = socket.getaddrinfo(bind_host, port, family, kind, 0, socket.AI_NUMERICHOST)[0][4]
    try:
        sock.bind(address)
    except OSError as exc:
        raise ListenError(exc.errno, host, port, kind, "bind") from None
    if kind == socket.SOCK_STREAM:
        sock.listen(BACKLOG)


def bind_late(sock: socket.socket, host: str, port: int) -> None:
    """Bind (and for TCP listen) a socket made with ``bind=False``; one already bound is left."""
    if sock.getsockname()[1] == 0:
        _bind(sock, host, port, sock.type)


SocketPair = tuple[socket.socket | None, socket.socket | None]
"""A listen address's UDP and TCP socket; a slot is None for a kind its transport does not use
(``tls://`` binds TCP only, ``quic://`` UDP only, so the two can share a port number)."""


def listen_pair(
    host: str, port: int, bind: bool = True, *, udp: bool = True, tcp: bool = True
) -> SocketPair:
    """A UDP and a TCP socket on the same port (only the kinds asked for); port 0 picks one free
    for both. With ``bind=False`` (a port already served), both are left for ``bind_late``."""
    if not (udp and tcp):
        kind = socket.SOCK_DGRAM if udp else socket.SOCK_STREAM
        if bind and not port:
            port = _unheld_port(host, udp=udp, tcp=tcp)
        only = listen_socket(host, port, kind, bind=bind)
        return (only, None) if udp else (None, only)
    if not bind:
        first = listen_socket(host, port, socket.SOCK_DGRAM, bind=False)
        try:
            return first, listen_socket(host, port, socket.SOCK_STREAM, bind=False)
        except BaseException:
            first.close()
            raise
    for _attempt in range(50):
        try:
            chosen = port or _unheld_port(host)
            first = listen_socket(host, chosen, socket.SOCK_DGRAM)
        except OSError:
            if port:
                raise
            continue  # taken between the probe and the bind
        try:
            second = listen_socket(host, chosen, socket.SOCK_STREAM)
        except OSError:
            first.close()
            if port:
                raise
            continue
        return first, second
    raise OSError("could not find a port free for both UDP and TCP")


def _unheld_port(host: str, *, udp: bool = True, tcp: bool = True) -> int:
    """A port no socket holds, for the kinds asked: what port 0 means for a listener.

    Binding port 0 with SO_REUSEPORT set is not enough: Linux counts a port that another
    SO_REUSEPORT socket of the same user holds as free, and hands it out, and the two servers then
    split that port's queries (a test's queries answered by another test's server, REFUSED). So the
    port is found with probes bound without SO_REUSEPORT, which only a port nobody holds satisfies.
    ``OSError`` when the TCP probe finds the UDP probe's port taken (the caller tries again)."""
    family, _bind_host, dual = _family_and_host(host)
    probes = []
    try:
        for kind in ([socket.SOCK_DGRAM] if udp else []) + ([socket.SOCK_STREAM] if tcp else []):
            probe = socket.socket(family, kind)
            probes.append(probe)
            if family == socket.AF_INET6:
                probe.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0 if dual else 1)
            chosen = probes[0].getsockname()[1] if len(probes) > 1 else 0
            _bind(probe, host, chosen, kind)
        return int(probes[0].getsockname()[1])
    finally:
        for probe in probes:
            probe.close()


def pair_port(pair: SocketPair) -> int:
    """The port a pair is bound to (0 while unbound)."""
    sock = pair[0] if pair[0] is not None else pair[1]
    return int(sock.getsockname()[1]) if sock is not None else 0


def close_pair(pair: SocketPair) -> None:
    for sock in pair:
        if sock is not None:
            sock.close()


def adopt_udp(reactor: Any, sock: socket.socket, protocol: Any) -> Any:
    """Hand ``sock`` to the reactor; the reactor keeps its own duplicate, ours is closed."""
    port = reactor.adoptDatagramPort(sock.fileno(), sock.family, protocol, maxPacketSize=65535)
    sock.close()
    return port


def adopt_tcp(reactor: Any, sock: socket.socket, factory: Any) -> Any:
    port = reactor.adoptStreamPort(sock.fileno(), sock.family, factory)
    sock.close()
    return port


def leave_group(sock: socket.socket) -> bool:
    """Stop the kernel from giving ``sock`` any more datagrams, keeping those it holds.

    Closing a UDP socket drops what is queued in it. Linux hands a connected socket of a
    SO_REUSEPORT group only its peer's datagrams, so connecting it to a port nobody sends from
    takes it out of the group's share while its queue stays readable: read it empty, then close,
    and nothing is lost when a reload retires a socket. False where that cannot be done."""
    try:
        host = sock.getsockname()[0]
        if host in ("0.0.0.0", "::", "::ffff:0.0.0.0"):
            host = "::1" if sock.family == socket.AF_INET6 else "127.0.0.1"
        sock.connect((host, 1))
    except OSError:
        return False
    return True


def queued(sock: socket.socket) -> bool:
    """Whether a datagram waits in ``sock`` (FIONREAD, without reading it)."""
    import fcntl
    import struct
    import termios

    try:
        raw = fcntl.ioctl(sock.fileno(), termios.FIONREAD, b"\0\0\0\0")
    except OSError:
        return False
    return bool(struct.unpack("i", raw)[0])
