"""The fixtures and the client on ::1, where the machine has IPv6 loopback."""

from __future__ import annotations

import socket
from collections.abc import Callable

import dns.rdatatype
import pytest
import pytest_twisted

from twisted_coredns.testing import DNSClient
from twisted_coredns.testing.fixtures import CoreDNSServer


def _has_ipv6_loopback() -> bool:
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_DGRAM) as sock:
            sock.bind(("::1", 0))
    except OSError:
        return False
    return True


pytestmark = pytest.mark.skipif(not _has_ipv6_loopback(), reason="no IPv6 loopback (::1) here")


@pytest.fixture
def coredns_host() -> str:
    return "::1"


@pytest.mark.parametrize("tcp", [False, True], ids=["udp", "tcp"])
@pytest_twisted.ensureDeferred
async def test_whoami_on_ipv6_loopback(coredns_server: CoreDNSServer, tcp: bool) -> None:
    assert coredns_server.host == "::1"
    reply = await coredns_server.query("a.example.", "A", tcp=tcp)
    aaaa = [rrset for rrset in reply.additional if rrset.rdtype == dns.rdatatype.AAAA]
    assert [rd.address for rd in aaaa[0]] == ["::1"]


@pytest_twisted.ensureDeferred
async def test_dns_client_on_ipv6(coredns_server: CoreDNSServer,
                                  dns_client: Callable[..., DNSClient]) -> None:
    reply = await dns_client(coredns_server.port, "::1").query("a.example.", "AAAA")
    assert reply.rcode() == 0
