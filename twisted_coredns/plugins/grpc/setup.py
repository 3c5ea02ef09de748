"""``grpc FROM TO... { except; tls; tls_servername; policy; fallthrough }``: CoreDNS's options,
defaults and error messages.

The addresses are read as CoreDNS's ``parse.HostPortOrFile`` reads them (forward's reader: a bare
IP gets port 53, a file is a resolv.conf, ``unix://`` a socket path). TLS files are read here, so a
missing certificate stops the server at start; grpcio's channels are opened when serving starts.
Errors CoreDNS raises with the dispenser carry the file and line; the others are bare messages,
both prefixed ``plugin/grpc: `` by the framework.
"""

from __future__ import annotations

from typing import Any

from ...address import host_zones
from ...corefile.errors import CorefileError
from ...corefile.model import Directive
from ...dns import Zones
from ...plugin import Controller
from ...server.tlsconfig import client_tls_paths, read_ca, read_cert_pair
from ..forward.addresses import AddressError, host_port_or_file
from ..forward.policy import Policy, Random, RoundRobin, Sequential
from .handler import GRPC
from .proxy import Proxy, TLSMaterial

MAX_UPSTREAMS = 15

_POLICIES: dict[str, type[Policy[Any]]] = {
    "random": Random,
    "round_robin": RoundRobin,
    "sequential": Sequential,
}


def _tls_material(args: list[str], root: str) -> TLSMaterial:
    """CoreDNS's ``NewTLSConfigFromArgs``: none, CA, CERT KEY, or CERT KEY CA; files read now."""
    cert = key = ca = None
    cert_path, key_path, ca_path = client_tls_paths(args, root)
    if cert_path:
        cert, key = read_cert_pair(cert_path, key_path)
        _check_pair(cert, key)
    if ca_path:
        ca = read_ca(ca_path)
        if b"-----BEGIN CERTIFICATE-----" not in ca:
            raise ValueError("could not read root certs: <nil>")
    return TLSMaterial(ca=ca, key=key, cert=cert)


def _check_pair(cert: bytes, key: bytes) -> None:
    """Refuse at setup what grpcio would only refuse at the first call (Go's ``X509KeyPair``)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization

    try:
        public = x509.load_pem_x509_certificate(cert).public_key()
    except ValueError:
        raise ValueError(
            "could not load TLS cert: tls: failed to find any PEM data in certificate input"
        ) from None
    try:
        private = serialization.load_pem_private_key(key, password=None)
    except (ValueError, TypeError):
        raise ValueError("could not load TLS cert: tls: failed to find any PEM data in key input") from None
    pem = serialization.PublicFormat.SubjectPublicKeyInfo
    enc = serialization.Encoding.PEM
    if private.public_key().public_bytes(enc, pem) != public.public_bytes(enc, pem):
        raise ValueError("could not load TLS cert: tls: private key does not match public key")


def _one_arg(c: Controller, prop: Directive) -> str:
    if not prop.args:
        raise c.arg_error(prop.token)
    if len(prop.args) > 1:
        # caddy's NextArg takes one word; the block loop then reads the next word as a property.
        raise c.err(prop.args[1], f"unknown property '{prop.args[1].text}'")
    return prop.args[0].text


def _parse_block(
    c: Controller, prop: Directive, g: GRPC, tls: list[TLSMaterial | None], names: list[str]
) -> None:
    if prop.block is not None and prop.open_brace is not None:
        raise c.err(prop.open_brace, "unknown property '{'")
    name = prop.name
    if name == "except":
        if not prop.args:
            raise c.arg_error(prop.token)
        g.ignored = Zones([*g.ignored, *(z for tok in prop.args for z in host_zones(tok.text))])
    elif name == "tls":
        if len(prop.args) > 3:
            raise c.arg_error(prop.args[-1])
        tls[0] = _tls_material([a.text for a in prop.args], c.config.root)
    elif name == "tls_servername":
        names[0] = _one_arg(c, prop)
    elif name == "policy":
        policy = _one_arg(c, prop)
        if policy not in _POLICIES:
            raise c.err(prop.args[0], f"unknown policy '{policy}'")
        g.policy = _POLICIES[policy]()
    elif name == "fallthrough":
        zones: list[str] = []
        for tok in prop.args or ():
            zones.extend(host_zones(tok.text))
        g.fall = Zones(zones or ["."])
    else:
        raise c.unknown_property(prop)


def _parse_stanza(c: Controller, d: Directive) -> GRPC:
    g = GRPC(c.reactor)
    if not d.args:
        raise c.arg_error(d.token)
    zones = host_zones(d.args[0].text)
    if not zones:
        raise ValueError(f"unable to normalize '{d.args[0].text}'")
    g.from_zone = zones[0]  # CoreDNS uses only the first zone of a CIDR
    if len(d.args) < 2:
        raise c.arg_error(d.args[0])
    hosts: list[str] = []
    try:
        for tok in d.args[1:]:
            hosts.extend(host_port_or_file(tok.text))
    except AddressError as exc:
        raise ValueError(str(exc)) from None
    tls: list[TLSMaterial | None] = [None]
    names = [""]
    for prop in d.block or ():
        _parse_block(c, prop, g, tls, names)
    material = tls[0]
    if names[0]:
        material = TLSMaterial(
            ca=material.ca if material else None,
            key=material.key if material else None,
            cert=material.cert if material else None,
            server_name=names[0],
        )
    g.proxies = [Proxy(host, c.reactor, material) for host in hosts]
    return g


def setup(c: Controller) -> GRPC:
    g = _parse_stanza(c, c.once())
    if len(g.proxies) > MAX_UPSTREAMS:
        raise CorefileError(f"more than {MAX_UPSTREAMS} TOs configured: {len(g.proxies)}")
    c.on_startup(g.on_startup)
    c.on_shutdown(g.on_shutdown)
    return g
