"""``dnstap listen``: sinks connect to us, and each gets every message from then on.

CoreDNS's plugin/dnstap/listener.go: a listening socket (unix, tcp, or tls with a certificate and,
optionally, a CA that client certificates must be signed by); each accepted connection is a Frame
Streams sender that shakes hands, then gets every message as it is tapped. There is no queue: a
sink whose connection cannot take more (its transport paused) misses messages until it can, and
nobody else waits for it.
"""

from __future__ import annotations

import errno
import os
from typing import Any

from twisted.internet import error
from twisted.internet.defer import Deferred, DeferredList, maybeDeferred
from twisted.internet.protocol import Factory

from ...clog import PluginLogger
from .framestream import FrameStreamSender
from .output import DROPPED, TCP_TIMEOUT, split_host_port

__all__ = ["Listener"]

log = PluginLogger("dnstap")


class _SinkFactory(Factory):
    noisy = False

    def __init__(self, listener: Listener) -> None:
        self.listener = listener

    def buildProtocol(self, addr: Any) -> FrameStreamSender:
        sender = FrameStreamSender(self.listener, self.listener.clock, self.listener.timeout)
        self.listener.pending.add(sender)
        return sender


def listen_error(network: str, address: str, exc: BaseException) -> str:
    """Go's wording of a listen error: ``listen tcp 127.0.0.1:6000: bind: address already in
    use``; ``open FILE: no such file or directory`` for a certificate that cannot be read."""
    if isinstance(exc, error.CannotListenError):
        socket_error = exc.socketError
        if isinstance(socket_error, OSError) and socket_error.errno is not None:
            return f"listen {network} {address}: bind: {os.strerror(socket_error.errno).lower()}"
        if network == "unix" and "too long" in str(socket_error):  # the kernel's (and Go's) EINVAL
            return f"listen {network} {address}: bind: {os.strerror(errno.EINVAL).lower()}"
        return f"listen {network} {address}: {socket_error}"
    if isinstance(exc, OSError) and exc.filename is not None and exc.errno is not None:
        return f"open {exc.filename}: {os.strerror(exc.errno).lower()}"
    return str(exc)


class Listener:
    """Accepts dnstap sinks on ``address`` (``network`` is ``unix``, ``tcp`` or ``tls``)."""

    timeout = TCP_TIMEOUT

    def __init__(
        self,
        network: str,
        address: str,
        reactor: Any,
        *,
        clock: Any = None,
        cert_file: str | None = None,
        key_file: str | None = None,
        ca_file: str | None = None,
        skip_verify: bool = False,
    ) -> None:
        self.network = network
        self.address = address
        self.reactor = reactor
        self.clock = reactor if clock is None else clock
        self.cert_file = cert_file
        self.key_file = key_file
        self.ca_file = ca_file
        self.skip_verify = skip_verify
        self.clients: list[FrameStreamSender] = []
        """The sinks that shook hands: each gets every message."""
        self.pending: set[FrameStreamSender] = set()
        self.dropped_total = 0
        self.port: Any = None

    # -- the hot path -----------------------------------------------------------------------------

    def admit(self) -> bool:
        """True when some sink is connected (with none, there is nobody to drop a message for)."""
        return bool(self.clients)

    def put(self, frame: bytes) -> None:
        for client in self.clients:
            if client.paused:
                self.dropped_total += 1
                DROPPED.inc()
            else:
                client.write(frame)

    # -- listening --------------------------------------------------------------------------------

    def _tls_options(self) -> Any:
        from cryptography import x509
        from cryptography.hazmat.primitives.serialization import load_pem_private_key
        from twisted.internet import ssl

        assert self.cert_file is not None and self.key_file is not None
        # cryptography's objects, which pyOpenSSL's context takes (its own are deprecated there),
        # though Twisted's annotations name pyOpenSSL's.
        certificate: Any
        key: Any
        with open(self.cert_file, "rb") as f:
            certificate = x509.load_pem_x509_certificate(f.read())
        with open(self.key_file, "rb") as f:
            key = load_pem_private_key(f.read(), None)
        authorities = []
        if self.ca_file:
            from OpenSSL.crypto import X509

            with open(self.ca_file, "rb") as f:
                # The trust store takes pyOpenSSL's certificates only.
                authorities = [X509.from_cryptography(ca) for ca in x509.load_pem_x509_certificates(f.read())]
        return ssl.CertificateOptions(
            privateKey=key,
            certificate=certificate,
            # With a CA, client certificates are checked against it; `skipverify` makes one
            # optional (Go's VerifyClientCertIfGiven), without it one is required.
            verify=bool(authorities),
            caCerts=authorities or None,
            requireCertificate=bool(authorities) and not self.skip_verify,
        )

    def start(self) -> None:
        """Listen (CoreDNS's OnStartup); a failure is logged, and the server runs without it."""
        factory = _SinkFactory(self)
        try:
            if self.network == "unix":
                self.port = self.reactor.listenUNIX(self.address, factory)
                return
            host, port = split_host_port(self.address)
            if self.network == "tls":
                if not self.cert_file or not self.key_file:
                    log.warning("TLS listener requires cert and key files")
                    return
                self.port = self.reactor.listenSSL(port, factory, self._tls_options(), interface=host)
            else:
                self.port = self.reactor.listenTCP(port, factory, interface=host)
        except (error.CannotListenError, OSError, ValueError) as exc:
            # ValueError: also a certificate or key that is no PEM (cryptography's error)
            log.error(f"Failed to start dnstap listener: {listen_error(self.network, self.address, exc)}")
        except Exception as exc:  # a key that does not match the certificate (OpenSSL's error)
            from OpenSSL.SSL import Error as SSLError

            if not isinstance(exc, SSLError):
                raise
            log.error(f"Failed to start dnstap listener: tls: {exc}")

    # -- what the senders report ------------------------------------------------------------------

    def sender_ready(self, sender: FrameStreamSender) -> None:
        self.pending.discard(sender)
        self.clients.append(sender)

    def sender_failed(self, sender: FrameStreamSender, reason: str) -> None:
        log.warning(f"Error creating encoder for dnstap client: {reason}")

    def sender_resumed(self, sender: FrameStreamSender) -> None:
        pass  # nothing waits: the next message goes to it

    def sender_lost(self, sender: FrameStreamSender) -> None:
        self.pending.discard(sender)
        if sender in self.clients:
            self.clients.remove(sender)

    # -- the end ----------------------------------------------------------------------------------

    def stop(self) -> Deferred[Any]:
        """Stop listening, and end every sink's stream (STOP, FINISH, close)."""
        waits: list[Deferred[Any]] = []
        if self.port is not None:
            waits.append(maybeDeferred(self.port.stopListening))
            self.port = None
        for sender in [*self.clients, *self.pending]:
            waits.append(sender.stop())
        return DeferredList(waits, consumeErrors=True)

    def __repr__(self) -> str:
        return f"<Listener {self.network}://{self.address} sinks={len(self.clients)}>"
