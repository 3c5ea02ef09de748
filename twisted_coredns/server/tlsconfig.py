"""The server side of TLS: what the ``tls`` plugin read, and the contexts made from it.

CoreDNS keeps a Go ``tls.Config`` per server block. Here the ``tls`` plugin keeps the paths and
the client-authentication policy (``TLSSettings``), loads and checks every file once at setup (so a
bad certificate is a Corefile error and nothing is bound), and each transport asks for the form its
library takes: a pyOpenSSL context for Twisted (DoT, DoH), the plain fields for aioquic
(``QuicConfiguration.load_cert_chain``, ``load_verify_locations``, ``verify_mode``) and grpcio
(``ssl_server_credentials``). TLS 1.2 is the lowest version offered, as CoreDNS sets it.
"""

from __future__ import annotations

import os
import ssl
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from OpenSSL import SSL
from twisted.internet.interfaces import IOpenSSLContextFactory
from zope.interface import implementer

CLIENT_AUTH = ("nocert", "request", "require", "require_any", "verify_if_given", "require_and_verify")
"""CoreDNS's ``client_auth`` values; ``require_any`` is our alias of Go's RequireAnyClientCert."""

_VERIFYING = frozenset({"verify_if_given", "require_and_verify"})
_REQUIRING = frozenset({"require", "require_any", "require_and_verify"})


class TLSError(ValueError):
    """A certificate, key or CA that cannot be used; ``str()`` is CoreDNS's message."""


def _go_open_error(path: str, exc: OSError) -> str:
    # Go's os.PathError: "open cert.pem: no such file or directory".
    reason = os.strerror(exc.errno).lower() if exc.errno else str(exc)
    return f"open {path}: {reason}"


def client_tls_paths(args: Sequence[str], root: str = "") -> tuple[str, str, str]:
    """The (certificate, key, CA) paths of a client's ``tls`` arguments (forward, grpc, etcd), read
    as CoreDNS's ``NewTLSConfigFromArgs`` reads them: none, CA, CERT KEY, or CERT KEY CA; "" for
    each one not given. A relative path is under ``root`` (the Corefile's folder) when it is set."""
    paths = [a if os.path.isabs(a) or not root else os.path.join(root, a) for a in args]
    cert = key = ca = ""
    if len(paths) == 1:
        ca = paths[0]
    elif len(paths) >= 2:
        cert, key = paths[0], paths[1]
        if len(paths) == 3:
            ca = paths[2]
    return cert, key, ca


def read_cert_pair(cert_path: str, key_path: str) -> tuple[bytes, bytes]:
    """The certificate and key PEM files, read now; ``TLSError`` in CoreDNS's words if one cannot
    be opened."""
    try:
        with open(cert_path, "rb") as f:
            cert = f.read()
        with open(key_path, "rb") as f:
            key = f.read()
    except OSError as exc:
        path = exc.filename or cert_path
        raise TLSError(f"could not load TLS cert: {_go_open_error(path, exc)}") from None
    return cert, key


def read_ca(path: str) -> bytes:
    """The CA PEM file, read now; ``TLSError`` in CoreDNS's words if it cannot be opened."""
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError as exc:
        raise TLSError(f"error reading {path}: {_go_open_error(path, exc)}") from None


@dataclass(frozen=True)
class TLSSettings:
    """One block's ``tls CERT KEY [CA] { client_auth ...; keylog FILE }``."""

    cert_file: str
    key_file: str
    ca_file: str | None = None
    client_auth: str = "nocert"
    keylog_file: str | None = None

    # -- checked at setup ------------------------------------------------------------------------

    def check(self) -> None:
        """Load every file now; ``TLSError`` with CoreDNS's wording if one cannot be used."""
        for path in (self.cert_file, self.key_file):
            try:
                with open(path, "rb"):
                    pass
            except OSError as exc:
                raise TLSError(f"could not load TLS cert: {_go_open_error(path, exc)}") from None
        try:
            self._context([])
        except SSL.Error as exc:
            raise TLSError(f"could not load TLS cert: tls: {_openssl_reason(exc)}") from None
        if self.ca_file:
            pem = read_ca(self.ca_file)
            if b"-----BEGIN CERTIFICATE-----" not in pem:
                raise TLSError("could not read root certs: %!s(<nil>)")

    # -- for Twisted (pyOpenSSL) -----------------------------------------------------------------

    def server_context(self, alpn: list[bytes]) -> ServerContextFactory:
        """A context factory for ``TLSMemoryBIOFactory`` / ``listenSSL``, offering ``alpn``."""
        return ServerContextFactory(self._context(alpn))

    def _context(self, alpn: list[bytes]) -> SSL.Context:
        ctx = SSL.Context(SSL.TLS_SERVER_METHOD)
        ctx.set_min_proto_version(SSL.TLS1_2_VERSION)
        ctx.set_options(SSL.OP_NO_COMPRESSION | SSL.OP_CIPHER_SERVER_PREFERENCE)
        ctx.use_certificate_chain_file(self.cert_file)
        ctx.use_privatekey_file(self.key_file)
        ctx.check_privatekey()
        # Many connections: OpenSSL's session cache helps clients that resume.
        ctx.set_session_id(b"twisted-coredns")
        if self.client_auth != "nocert":
            mode = SSL.VERIFY_PEER
            if self.client_auth in _REQUIRING:
                mode |= SSL.VERIFY_FAIL_IF_NO_PEER_CERT
            if self.client_auth in _VERIFYING:
                if self.ca_file:
                    ctx.load_verify_locations(self.ca_file)
                else:
                    ctx.set_default_verify_paths()
                ctx.set_verify(mode, _verified)
            else:
                # Go's RequestClientCert / RequireAnyClientCert: a certificate is asked for (or
                # required) but not verified.
                ctx.set_verify(mode, _accept_any)
        if alpn:
            offered = list(alpn)

            def select(_conn: Any, protocols: list[bytes]) -> Any:
                for proto in offered:
                    if proto in protocols:
                        return proto
                # No protocol in common: go on without ALPN, as Go's server does for a client
                # that offers none of ours.
                return SSL.NO_OVERLAPPING_PROTOCOLS

            ctx.set_alpn_select_callback(select)
        if self.keylog_file:
            path = self.keylog_file

            def keylog(_conn: Any, line: bytes) -> None:
                with open(path, "ab") as f:
                    f.write(line + b"\n")

            ctx.set_keylog_callback(keylog)
        return ctx

    # -- for aioquic and grpcio ------------------------------------------------------------------

    @property
    def verify_mode(self) -> ssl.VerifyMode:
        """The ``ssl`` verify mode closest to ``client_auth`` (aioquic's ``verify_mode``)."""
        if self.client_auth in ("require_and_verify", "require", "require_any"):
            return ssl.CERT_REQUIRED
        if self.client_auth in ("verify_if_given", "request"):
            return ssl.CERT_OPTIONAL
        return ssl.CERT_NONE

    @property
    def requires_client_cert(self) -> bool:
        return self.client_auth in _REQUIRING

    def read_files(self) -> tuple[bytes, bytes, bytes | None]:
        """(certificate chain PEM, private key PEM, CA PEM or None): grpcio's
        ``ssl_server_credentials([(key, chain)], root_certificates=ca, require_client_auth=...)``."""
        with open(self.cert_file, "rb") as f:
            chain = f.read()
        with open(self.key_file, "rb") as f:
            key = f.read()
        ca = None
        if self.ca_file:
            with open(self.ca_file, "rb") as f:
                ca = f.read()
        return chain, key, ca


@implementer(IOpenSSLContextFactory)
class ServerContextFactory:
    """Twisted's context factory: one ``SSL.Context`` for every connection."""

    isClient = False

    def __init__(self, context: SSL.Context) -> None:
        self._context = context

    def getContext(self) -> SSL.Context:
        return self._context


def _verified(_conn: Any, _cert: Any, _errno: int, _depth: int, ok: int) -> bool:
    return bool(ok)


def _accept_any(_conn: Any, _cert: Any, _errno: int, _depth: int, _ok: int) -> bool:
    return True


def _openssl_reason(exc: SSL.Error) -> str:
    try:
        return str(exc.args[0][0][2])
    except (IndexError, TypeError):
        return str(exc)


__all__ = [
    "CLIENT_AUTH",
    "ServerContextFactory",
    "TLSError",
    "TLSSettings",
    "client_tls_paths",
    "read_ca",
    "read_cert_pair",
]
