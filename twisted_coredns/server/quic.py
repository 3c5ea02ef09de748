"""DNS over QUIC (``quic://``, RFC 9250) on aioquic's sans-I/O ``QuicConnection``, driven by the
reactor.

``QuicListener`` is one UDP socket: it routes each datagram to its connection by destination
connection ID (a new connection only for a client's Initial packet; anything that does not parse
as QUIC is dropped without a word), feeds it to aioquic with the reactor's clock, sends what
aioquic has to send, and keeps one ``callLater`` per connection for aioquic's next timer. There is
no second event loop: aioquic computes, the reactor waits. What aioquic has to send is sent once
the reactor has handed over every datagram it read (``transmit_soon``): the replies to a burst of
queries, and their acknowledgements, share packets, which made DoQ about 1.7 times faster. A
session object turns a connection's events into DNS: ``DoQSession`` here, ``DoH3Session`` in
doh3.py.

DoQ, as CoreDNS serves it: each query is one bidirectional stream carrying a 2-byte length and
the message (and FIN); the reply goes back on the same stream, also length-prefixed, and FIN. A
query with a non-zero ID or an edns-tcp-keepalive option, a stream that is no DNS message or is
not whole within the read timeout, closes the connection with DOQ_PROTOCOL_ERROR (0x2) (see
``DoQSession``). ``quic { max_streams }`` bounds the streams a client may open at once;
``worker_pool_size`` the queries answered at once over every connection of the socket (more wait
their turn); 200 connections are served at once, as CoreDNS's default.

Mutual TLS (``tls CERT KEY CA { client_auth ... }``) follows Go's ``tls.ClientAuthType``, as
CoreDNS's quic-go server does: ``ClientAuth`` below asks for the certificate during the handshake
and, once aioquic says the handshake is complete, refuses a connection without one (when
required) or with one that does not verify against the CA, with the TLS alert Go would send.
"""

from __future__ import annotations

import ssl
from collections import deque
from typing import TYPE_CHECKING, Any, Protocol

from aioquic.buffer import Buffer
from aioquic.quic import events
from aioquic.quic.configuration import QuicConfiguration
from aioquic.quic.connection import QuicConnection
from aioquic.quic.packet import (
    QuicErrorCode,
    QuicFrameType,
    QuicPacketType,
    encode_quic_version_negotiation,
    pull_quic_header,
)
from aioquic.tls import AlertDescription
from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID
from OpenSSL import crypto
from twisted.internet.protocol import DatagramProtocol

from ..clog import PluginLogger
from ..metrics.queries import quic_responses
from ..request import MalformedQuery, Request
from .answer import route
from .limits import StreamLimits

if TYPE_CHECKING:
    from .router import ZoneRouter
    from .tlsconfig import TLSSettings
    from .transports import ServeContext

_log = PluginLogger()

DOQ_NO_ERROR = 0x0
DOQ_INTERNAL_ERROR = 0x1
DOQ_PROTOCOL_ERROR = 0x2
_SMALLEST_INITIAL = 1200
"""RFC 9000: a client's Initial datagram is at least 1200 bytes; a shorter one opens nothing."""
_HANDSHAKE_ROOM = 64
"""Connections still in their handshake beyond ``max_connections``: more Initials are dropped."""
DEFAULT_MAX_CONNECTIONS = 200
"""CoreDNS's ``DefaultQUICMaxConnections`` (no Corefile option sets it for DoQ)."""


def quic_configuration(tls: TLSSettings | None, alpn: list[str], idle_timeout: float) -> QuicConfiguration:
    """The server's aioquic configuration from the block's ``tls`` settings.

    No CA and no ``verify_mode`` here: aioquic reads them only on the client side (a server of
    aioquic never checks a client's certificate); ``ClientAuth`` does that. No session tickets
    either, so every connection makes a full handshake, the one where a certificate is asked for.
    """
    if tls is None:
        raise ValueError("QUIC needs the tls plugin")
    config = QuicConfiguration(is_client=False, alpn_protocols=alpn, idle_timeout=idle_timeout)
    config.load_cert_chain(tls.cert_file, tls.key_file)
    return config


_CERTIFICATE_REQUIRED = int(AlertDescription.certificate_required)
_BAD_CERTIFICATE = int(AlertDescription.bad_certificate)
_UNKNOWN_CA = int(AlertDescription.unknown_ca)
_CERTIFICATE_EXPIRED = int(AlertDescription.certificate_expired)
# OpenSSL's X509_V_ERR_* codes and the alert Go's crypto/tls sends for the same failure.
_UNKNOWN_ISSUER = frozenset({2, 18, 19, 20, 21})
_OUT_OF_DATE = frozenset({9, 10})
_CLIENT_USAGES = frozenset({ExtendedKeyUsageOID.CLIENT_AUTH, ExtendedKeyUsageOID.ANY_EXTENDED_KEY_USAGE})


class ClientAuth:
    """The ``tls`` plugin's ``client_auth``, enforced on QUIC connections as Go enforces
    ``tls.ClientAuthType``: ``request`` asks for a certificate, ``require`` (``require_any``)
    needs one, ``verify_if_given`` checks one if sent, ``require_and_verify`` needs one that
    checks. Checking is against the CA file (the system's roots without one, as Go's nil
    ``ClientCAs``), with the client's chain as intermediates, for client authentication."""

    def __init__(self, tls: TLSSettings) -> None:
        mode = tls.client_auth
        self.request = mode != "nocert"
        self.required = tls.requires_client_cert
        self.verify = mode in ("verify_if_given", "require_and_verify")
        self._store: crypto.X509Store | None = None
        if self.verify:
            store = crypto.X509Store()
            if tls.ca_file:
                store.load_locations(tls.ca_file)
            else:
                roots = ssl.get_default_verify_paths()
                store.load_locations(roots.cafile, roots.capath)
            self._store = store

    @classmethod
    def of(cls, tls: TLSSettings | None) -> ClientAuth | None:
        """None when nothing is asked of clients (no ``tls``, or ``client_auth nocert``)."""
        if tls is None or tls.client_auth == "nocert":
            return None
        return cls(tls)

    def refusal(self, conn: QuicConnection) -> int | None:
        """The TLS alert that refuses ``conn`` once its handshake is complete; None: served."""
        # aioquic keeps the client's certificate and chain (whose signature over the handshake
        # it has checked) in these private fields, and offers no other way to read them.
        leaf: x509.Certificate | None = getattr(conn.tls, "_peer_certificate", None)
        if leaf is None:
            # Go: certificate_required in TLS 1.3 (QUIC is always 1.3).
            return _CERTIFICATE_REQUIRED if self.required else None
        if self._store is None:
            return None
        chain: list[x509.Certificate] = getattr(conn.tls, "_peer_certificate_chain", [])
        try:
            crypto.X509StoreContext(
                self._store,
                crypto.X509.from_cryptography(leaf),
                [crypto.X509.from_cryptography(cert) for cert in chain],
            ).verify_certificate()
        except crypto.X509StoreContextError as exc:
            code = exc.errors[0] if exc.errors else 0
            if code in _UNKNOWN_ISSUER:
                return _UNKNOWN_CA
            if code in _OUT_OF_DATE:
                return _CERTIFICATE_EXPIRED
            return _BAD_CERTIFICATE
        except Exception:  # a certificate OpenSSL cannot even read is refused
            return _BAD_CERTIFICATE
        try:
            usages = leaf.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
        except x509.ExtensionNotFound:
            return None  # no EKU: good for any use, as Go reads it
        except ValueError:
            return _BAD_CERTIFICATE
        if not _CLIENT_USAGES.intersection(usages):
            return _BAD_CERTIFICATE
        return None


class _ServerConnection(QuicConnection):
    """aioquic's server connection, asking for the client's certificate when told to.

    aioquic's TLS has no public setting for a server to send a CertificateRequest: only the
    private ``tls.Context._request_client_certificate`` flag (for its own tests), read when the
    ClientHello is answered. The context is made in ``_initialize``, on the client's first
    Initial, so the flag is set right after it. tests/test_quic.py pins this (a client without a
    certificate is refused, which it would not be if the flag stopped working).
    """

    request_client_certificate = False

    def _initialize(self, peer_cid: bytes) -> None:
        super()._initialize(peer_cid)
        if self.request_client_certificate:
            self.tls._request_client_certificate = True


class Session(Protocol):
    """What turns one connection's QUIC events into DNS."""

    def event(self, event: events.QuicEvent) -> None: ...

    def closed(self) -> None: ...


class QuicPeer:
    """One QUIC connection of a listener: aioquic's state, its timer and its session."""

    def __init__(self, listener: QuicListener, conn: QuicConnection, addr: Any) -> None:
        self.listener = listener
        self.conn = conn
        self.addr = addr
        self.remote = (_unmapped(addr[0]), addr[1])
        self.timer: Any = None
        self.session: Session = listener.make_session(self)
        self.cids: set[bytes] = set()
        self.refused = False
        self.counted = False
        """Counted in the listener's ``served``."""
        self.gone = False
        """Forgotten by the listener: its connection ended, nothing more is sent."""

    def receive(self, data: bytes, addr: Any) -> None:
        self.addr = addr
        self.conn.receive_datagram(data, addr, now=self.listener.reactor.seconds())
        self.process()

    def process(self) -> None:
        """Hand aioquic's events to the session, send its datagrams, set its next timer."""
        listener = self.listener
        conn = self.conn
        event = conn.next_event()
        while event is not None:
            if isinstance(event, events.ConnectionIdIssued):
                self.cids.add(event.connection_id)
                listener.peers[event.connection_id] = self
            elif isinstance(event, events.ConnectionIdRetired):
                self.cids.discard(event.connection_id)
                listener.peers.pop(event.connection_id, None)
            elif isinstance(event, events.ConnectionTerminated):
                self.session.event(event)
                self.forget()
            elif self.refused:
                pass  # a refused client's streams are never read
            elif isinstance(event, events.HandshakeCompleted):
                self._admit(event)
            else:
                self.session.event(event)
            event = conn.next_event()
        listener.transmit_soon(self)

    def _admit(self, event: events.HandshakeCompleted) -> None:
        """The handshake is done: refuse the client (its certificate, the connection limit) or
        serve it."""
        listener = self.listener
        conn = self.conn
        if listener.client_auth is not None:
            alert = listener.client_auth.refusal(conn)
            if alert is not None:
                self.refused = True
                # As a TLS alert travels in QUIC (RFC 9001 4.8): CRYPTO_ERROR + the alert.
                conn.close(QuicErrorCode.CRYPTO_ERROR + alert, QuicFrameType.CRYPTO, "client certificate")
                self.session.closed()
                return
        if listener.max_connections and listener.served_now() >= listener.max_connections:
            self.refused = True
            conn.close(listener.excess_load, None, "too many connections")
            self.session.closed()
            return
        self.counted = True
        listener.served += 1
        self.session.event(event)

    def transmit_soon(self) -> None:
        """Send what aioquic has to send once the reactor is done with the datagrams it read:
        the replies and acknowledgements of a burst of queries share packets."""
        self.listener.transmit_soon(self)

    def transmit(self) -> None:
        if self.gone:
            return
        listener = self.listener
        reactor = listener.reactor
        now = reactor.seconds()
        for data, addr in self.conn.datagrams_to_send(now=now):
            listener.send(data, addr)
        when = self.conn.get_timer()
        timer = self.timer
        if when is None:
            if timer is not None and timer.active():
                timer.cancel()
            self.timer = None
        elif timer is not None and timer.active():
            if timer.getTime() != when:
                timer.reset(max(0.0, when - now))
        else:
            self.timer = reactor.callLater(max(0.0, when - now), self._timeout)

    def _timeout(self) -> None:
        self.timer = None
        self.conn.handle_timer(now=self.listener.reactor.seconds())
        self.process()

    def close(self, code: int, reason: str = "") -> None:
        self.conn.close(error_code=code, reason_phrase=reason)
        self.transmit()

    def forget(self) -> None:
        self.gone = True
        listener = self.listener
        if self.counted:
            self.counted = False
            listener.served -= 1
        listener.unsent.discard(self)
        for cid in self.cids:
            if listener.peers.get(cid) is self:
                del listener.peers[cid]
        self.cids.clear()
        if self.timer is not None and self.timer.active():
            self.timer.cancel()
        self.timer = None
        if self in listener.connections:
            listener.connections.discard(self)
            self.session.closed()


class QuicListener(DatagramProtocol):
    """One UDP socket serving QUIC; ``make_session(peer)`` gives each connection's session."""

    noisy = False
    alpn: list[str] = []
    max_streams = 0
    max_connections = 0
    """Connections served at once (0: no limit). As CoreDNS's quic-go servers, one over the limit
    is closed once its handshake is done, with ``excess_load`` and "too many connections"."""
    excess_load = 0

    def __init__(self, ctx: ServeContext) -> None:
        self.router: ZoneRouter = ctx.router
        self.reactor = ctx.reactor
        self.server = ctx.router.address
        # CoreDNS gives quic-go the server's idle timeout (10 s, or ``timeouts { idle }``) and
        # reads a DoQ query within its read timeout (3 s, or ``timeouts { read }``).
        self.stream_limits = StreamLimits.of(block for _key, block in ctx.group.entries)
        self.config = quic_configuration(ctx.tls, self.alpn, self.stream_limits.idle_timeout)
        self.client_auth = ClientAuth.of(ctx.tls)
        self.peers: dict[bytes, QuicPeer] = {}
        self.connections: set[QuicPeer] = set()
        self.unsent: set[QuicPeer] = set()
        self._sending: Any = None
        self.served = 0
        """Connections past their handshake and under ``max_connections``."""
        self.local: tuple[str, int] | None = None

    def make_session(self, peer: QuicPeer) -> Session:
        raise NotImplementedError

    def startProtocol(self) -> None:
        host = self.transport.getHost()  # type: ignore[union-attr]
        self.local = (host.host, host.port)

    def stopProtocol(self) -> None:
        if self._sending is not None and self._sending.active():
            self._sending.cancel()
        self._sending = None
        for peer in list(self.connections):
            peer.forget()

    def served_now(self) -> int:
        """``served``, less the connections already closing: a client that said goodbye frees
        its place at once (as quic-go ends the connection's context), not when aioquic's
        draining period ends. aioquic tells a closing connection only by a private field."""
        if self.served >= self.max_connections:
            for peer in self.connections:
                if peer.counted and getattr(peer.conn, "_close_event", None) is not None:
                    peer.counted = False
                    self.served -= 1
        return self.served

    def transmit_soon(self, peer: QuicPeer) -> None:
        self.unsent.add(peer)
        if self._sending is None:
            self._sending = self.reactor.callLater(0, self._transmit)

    def _transmit(self) -> None:
        self._sending = None
        unsent, self.unsent = self.unsent, set()
        for peer in unsent:
            peer.transmit()

    def send(self, data: bytes, addr: Any) -> None:
        try:
            self.transport.write(data, addr)  # type: ignore[union-attr]
        except OSError:
            pass  # UDP is lossy: QUIC retransmits what mattered

    def datagramReceived(self, data: bytes, addr: Any) -> None:
        try:
            header = pull_quic_header(Buffer(data=data), host_cid_length=self.config.connection_id_length)
        except ValueError:
            return  # not QUIC: no reply, nothing kept
        peer = self.peers.get(header.destination_cid)
        if peer is not None:
            peer.receive(data, addr)
            return
        if header.packet_type == QuicPacketType.VERSION_NEGOTIATION:
            return
        if header.version is not None and header.version not in self.config.supported_versions:
            self.send(
                encode_quic_version_negotiation(
                    source_cid=header.destination_cid,
                    destination_cid=header.source_cid,
                    supported_versions=self.config.supported_versions,
                ),
                addr,
            )
            return
        if header.packet_type != QuicPacketType.INITIAL or len(data) < _SMALLEST_INITIAL:
            return
        if self.max_connections and len(self.connections) >= self.max_connections + _HANDSHAKE_ROOM:
            return  # no state for more: the client retries its Initial
        conn = _ServerConnection(
            configuration=self.config, original_destination_connection_id=header.destination_cid
        )
        if self.client_auth is not None:
            conn.request_client_certificate = True
        if self.max_streams:
            # aioquic has no setting for the streams a peer may open; its limit is this field.
            conn._local_max_streams_bidi.value = self.max_streams
        peer = QuicPeer(self, conn, addr)
        self.connections.add(peer)
        self.peers[header.destination_cid] = peer
        peer.cids.add(header.destination_cid)
        host_cid = conn.host_cid
        self.peers[host_cid] = peer
        peer.cids.add(host_cid)
        peer.receive(data, addr)


class DoQListener(QuicListener):
    alpn = ["doq"]

    def __init__(self, ctx: ServeContext) -> None:
        from ..plugins.quic import QuicLimits

        limits = ctx.settings.get("quic") or QuicLimits()
        self.max_streams = limits.max_streams
        self.max_connections = DEFAULT_MAX_CONNECTIONS
        self.excess_load = DOQ_NO_ERROR  # CoreDNS closes with code 0
        self.worker_pool_size = limits.worker_pool_size
        self.busy = 0
        self.waiting: deque[tuple[DoQSession, int, Request]] = deque()
        super().__init__(ctx)
        self.no_error = quic_responses.labels(self.server, f"0x{DOQ_NO_ERROR:x}")

    def make_session(self, peer: QuicPeer) -> DoQSession:
        return DoQSession(self, peer)

    def count(self, code: int) -> None:
        quic_responses.labels(self.server, f"0x{code:x}").inc()

    def start(self, session: DoQSession, stream_id: int, request: Request) -> None:
        """Answer now if the pool has room, else when a query ahead of it is answered."""
        if self.busy >= self.worker_pool_size:
            self.waiting.append((session, stream_id, request))
            return
        self.busy += 1
        session.serve(stream_id, request)

    def done(self) -> None:
        self.busy -= 1
        while self.waiting and self.busy < self.worker_pool_size:
            session, stream_id, request = self.waiting.popleft()
            if session.open:
                self.busy += 1
                session.serve(stream_id, request)


class _Unread:
    """A stream whose query has not arrived whole: its bytes so far and its read deadline."""

    __slots__ = ("data", "deadline")

    def __init__(self, data: bytes | bytearray, deadline: Any) -> None:
        self.data = bytearray(data)
        self.deadline = deadline


def _whole(data: bytes | bytearray) -> int:
    """The length of the DoQ message at the start of ``data`` (2-byte length, then that many
    bytes) when it is all there, else -1. A length of 0 is CoreDNS's "probably unsupported DoQ
    version": 0, which the caller refuses."""
    if len(data) < 2:
        return -1
    size = (data[0] << 8) | data[1]
    return size if len(data) >= 2 + size else -1


class DoQSession:
    """The DoQ streams of one connection.

    As CoreDNS's ``readDOQMessage``: a stream is read up to its 2-byte length and that many bytes,
    then answered, its end (FIN) awaited or not; an end before the message is whole, or a stream
    not whole within the read timeout, closes the connection with DOQ_PROTOCOL_ERROR. Bytes after
    the message are not read. The usual query (one frame, with FIN) costs no timer.
    """

    def __init__(self, listener: DoQListener, peer: QuicPeer) -> None:
        self.listener = listener
        self.peer = peer
        self.unread: dict[int, _Unread] = {}
        self.answered: set[int] = set()
        """Streams read whole before their end came (bytes after the message are dropped)."""
        self.open = True

    def event(self, event: events.QuicEvent) -> None:
        if isinstance(event, events.StreamDataReceived):
            stream_id = event.stream_id
            unread = self.unread.get(stream_id)
            if unread is None:
                if stream_id in self.answered:
                    if event.end_stream:
                        self.answered.discard(stream_id)
                    return
                data: bytes | bytearray = event.data
            else:
                unread.data += event.data
                data = unread.data
            size = _whole(data)
            if size >= 0:
                if unread is not None:
                    del self.unread[stream_id]
                    unread.deadline.cancel()
                if not event.end_stream:
                    self.answered.add(stream_id)
                self._query(stream_id, bytes(data[2 : 2 + size]))
            elif event.end_stream:
                self._protocol_error()  # the stream ended inside the message
            elif unread is None:
                timeout = self.listener.stream_limits.read_timeout
                deadline = self.listener.reactor.callLater(timeout, self._read_timeout, stream_id)
                self.unread[stream_id] = _Unread(data, deadline)
        elif isinstance(event, events.StreamReset):
            # CoreDNS's read of the query fails: a protocol error. Once it was read, nothing.
            if event.stream_id in self.unread:
                self._protocol_error()
            self.answered.discard(event.stream_id)
        elif isinstance(event, events.ConnectionTerminated):
            self.closed()

    def closed(self) -> None:
        self.open = False
        for unread in self.unread.values():
            if unread.deadline.active():
                unread.deadline.cancel()
        self.unread.clear()
        self.answered.clear()

    def _read_timeout(self, stream_id: int) -> None:
        if self.unread.pop(stream_id, None) is not None and self.open:
            self._protocol_error()

    def _protocol_error(self) -> None:
        if not self.open:
            return
        self.listener.count(DOQ_PROTOCOL_ERROR)
        self.closed()
        self.peer.close(DOQ_PROTOCOL_ERROR)

    def _query(self, stream_id: int, wire: bytes) -> None:
        # RFC 9250 4.3.3, as CoreDNS checks it: a message that does not unpack, that is no query,
        # with a non-zero ID or an edns-tcp-keepalive option, is a protocol error.
        if len(wire) < 12 or wire[0] or wire[1] or wire[2] & 0x80:
            self._protocol_error()
            return
        try:
            request = Request(wire, self.peer.remote, "udp", self.listener.local, self.listener.server)
        except MalformedQuery:
            self._protocol_error()
            return
        if (wire[10] or wire[11]) and _keepalive(request):  # no OPT without an additional record
            self._protocol_error()
            return
        self.listener.start(self, stream_id, request)

    def serve(self, stream_id: int, request: Request) -> None:
        result = route(self.listener.router, request)
        if isinstance(result, bytes):
            self._reply(result, stream_id)
        else:
            result.addCallback(self._reply, stream_id)

    def _reply(self, wire: bytes, stream_id: int) -> None:
        self.listener.done()
        if not self.open:
            return
        if not wire:
            # The chain chose not to answer: end the stream, as CoreDNS's writer closes it.
            self.peer.conn.send_stream_data(stream_id, b"", end_stream=True)
        else:
            self.peer.conn.send_stream_data(stream_id, len(wire).to_bytes(2, "big") + wire, end_stream=True)
        self.listener.no_error.inc()
        self.peer.transmit_soon()


_EDNS_TCP_KEEPALIVE = 11


def _keepalive(request: Request) -> bool:
    """RFC 9250 4.3.3: a DoQ query must not carry edns-tcp-keepalive (RFC 7828)."""
    options = request.edns_options
    pos = 0
    while pos + 4 <= len(options):
        code = int.from_bytes(options[pos : pos + 2], "big")
        if code == _EDNS_TCP_KEEPALIVE:
            return True
        pos += 4 + int.from_bytes(options[pos + 2 : pos + 4], "big")
    return False


def _unmapped(host: str) -> str:
    return host[7:] if host.startswith("::ffff:") and "." in host else host


def serve_doq(ctx: ServeContext) -> DoQListener:
    """The ``quic`` transport's UDP protocol (server/transports.py)."""
    return DoQListener(ctx)


__all__ = ["ClientAuth", "DoQListener", "QuicListener", "QuicPeer", "quic_configuration", "serve_doq"]
