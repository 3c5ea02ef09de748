"""Certificates for tests: one CA, a server certificate and client certificates, made once per
test run in a temporary folder (``certificates()``).

The server certificate names ``localhost``, ``dns.example.org``, 127.0.0.1 and ::1, so every
client (dnspython, kdig, httpx, grpcio, aioquic) can verify it against ``ca_file``. A client
certificate signed by the same CA is accepted by ``client_auth require_and_verify``; one signed
by another CA (``stranger_cert_file``) is not.
"""

from __future__ import annotations

import atexit
import datetime
import ipaddress
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

SERVER_NAMES = ("localhost", "dns.example.org")
SERVER_IPS = ("127.0.0.1", "::1")


@dataclass(frozen=True)
class Certificates:
    """Paths of the PEM files (all in ``folder``)."""

    folder: Path
    ca_file: str
    ca_key_file: str
    cert_file: str
    key_file: str
    client_cert_file: str
    client_key_file: str
    stranger_ca_file: str
    stranger_cert_file: str
    stranger_key_file: str


_made: Certificates | None = None


def certificates() -> Certificates:
    """The certificates of this test run (made on first use, removed at exit)."""
    global _made
    if _made is None:
        folder = Path(tempfile.mkdtemp(prefix="coredns-certs-"))
        atexit.register(shutil.rmtree, folder, True)
        _made = make_certificates(folder)
    return _made


def make_certificates(folder: Path) -> Certificates:
    """Write a CA, a server and a client certificate (and a stranger CA and client) to ``folder``."""
    ca_key, ca_cert = _ca("twisted-coredns test CA")
    server_key, server_cert = _leaf(ca_key, ca_cert, "localhost", server=True)
    client_key, client_cert = _leaf(ca_key, ca_cert, "test client", server=False)
    stranger_ca_key, stranger_ca = _ca("stranger CA")
    stranger_key, stranger_cert = _leaf(stranger_ca_key, stranger_ca, "stranger", server=False)

    def write(name: str, data: bytes) -> str:
        path = folder / name
        path.write_bytes(data)
        return str(path)

    return Certificates(
        folder=folder,
        ca_file=write("ca.pem", _cert_pem(ca_cert)),
        ca_key_file=write("ca-key.pem", _key_pem(ca_key)),
        cert_file=write("cert.pem", _cert_pem(server_cert)),
        key_file=write("key.pem", _key_pem(server_key)),
        client_cert_file=write("client.pem", _cert_pem(client_cert)),
        client_key_file=write("client-key.pem", _key_pem(client_key)),
        stranger_ca_file=write("stranger-ca.pem", _cert_pem(stranger_ca)),
        stranger_cert_file=write("stranger.pem", _cert_pem(stranger_cert)),
        stranger_key_file=write("stranger-key.pem", _key_pem(stranger_key)),
    )


def _name(common: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common)])


def _validity(builder: x509.CertificateBuilder) -> x509.CertificateBuilder:
    now = datetime.datetime.now(datetime.UTC)
    return builder.not_valid_before(now - datetime.timedelta(hours=1)).not_valid_after(
        now + datetime.timedelta(days=30)
    )


def _ca(common: str) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    key = ec.generate_private_key(ec.SECP256R1())
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(common))
        .issuer_name(_name(common))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True, content_commitment=False, key_encipherment=False,
                data_encipherment=False, key_agreement=False, key_cert_sign=True, crl_sign=True,
                encipher_only=False, decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
    )
    return key, _validity(builder).sign(key, hashes.SHA256())


def _leaf(
    ca_key: ec.EllipticCurvePrivateKey, ca_cert: x509.Certificate, common: str, server: bool
) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    key = ec.generate_private_key(ec.SECP256R1())
    usage = ExtendedKeyUsageOID.SERVER_AUTH if server else ExtendedKeyUsageOID.CLIENT_AUTH
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(common))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False
        )
    )
    if server:
        names: list[x509.GeneralName] = [x509.DNSName(n) for n in SERVER_NAMES]
        names += [x509.IPAddress(ipaddress.ip_address(ip)) for ip in SERVER_IPS]
        builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
    return key, _validity(builder).sign(ca_key, hashes.SHA256())


def _cert_pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


__all__ = ["Certificates", "certificates", "make_certificates"]
