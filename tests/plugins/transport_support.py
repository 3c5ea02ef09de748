"""Shared by the transport tests: certificates, Corefiles from tests/data/transports, clients."""

from __future__ import annotations

import os
import ssl
from typing import Any

import dns.message
import dns.query

from twisted_coredns.testing.certs import Certificates, certificates

DATA = os.path.join(os.path.dirname(os.path.dirname(__file__)), "data", "transports")


def corefile(name: str, certs: Certificates | None = None, **extra: str) -> str:
    """A Corefile of tests/data/transports with the test's certificate paths filled in."""
    certs = certs or certificates()
    with open(os.path.join(DATA, name), encoding="utf-8") as f:
        text = f.read()
    values = {"cert": certs.cert_file, "key": certs.key_file, "ca": certs.ca_file, **extra}
    for key, value in values.items():
        text = text.replace("{" + key + "}", value)
    return text


def client_context(cert: tuple[str, str] | None = None) -> ssl.SSLContext:
    ctx = ssl.create_default_context(cafile=certificates().ca_file)
    if cert is not None:
        ctx.load_cert_chain(*cert)
    return ctx


def dot_query(port: int, name: str = "example.org.", rdtype: str = "A", cert: tuple[str, str] | None = None,
              timeout: float = 3.0) -> Any:
    q = dns.message.make_query(name, rdtype)
    return dns.query.tls(q, "127.0.0.1", port=port, ssl_context=client_context(cert),
                         server_hostname="localhost", timeout=timeout)


def doh_query(port: int, name: str = "example.org.", rdtype: str = "A", *, post: bool = True,
              h2: bool = False, timeout: float = 3.0) -> Any:
    q = dns.message.make_query(name, rdtype)
    version = dns.query.HTTPVersion.H2 if h2 else dns.query.HTTPVersion.H1
    return dns.query.https(q, f"https://127.0.0.1:{port}/dns-query", post=post, verify=certificates().ca_file,
                           timeout=timeout, http_version=version)
