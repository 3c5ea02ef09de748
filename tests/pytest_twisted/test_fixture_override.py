"""A module that serves its own Corefile by defining ``coredns_corefile``; the marker still wins."""

from __future__ import annotations

import pytest
import pytest_twisted

from twisted_coredns.testing.fixtures import CoreDNSServer

COREFILE = """\
example.org {
    hosts {
        192.0.2.53 www.example.org
    }
}
"""


@pytest.fixture
def coredns_corefile() -> str:
    return COREFILE


@pytest_twisted.ensureDeferred
async def test_module_fixture_is_served(coredns_server: CoreDNSServer) -> None:
    reply = await coredns_server.query("www.example.org.", "A")
    assert [rd.address for rd in reply.answer[0]] == ["192.0.2.53"]
    # Outside the only zone: REFUSED, as CoreDNS answers a name no block serves.
    outside = await coredns_server.query("www.example.net.", "A", tcp=True)
    assert outside.rcode() == 5


@pytest.mark.corefile(". {\n    whoami\n}\n")
@pytest_twisted.ensureDeferred
async def test_marker_beats_the_module_fixture(coredns_server: CoreDNSServer) -> None:
    reply = await coredns_server.query("www.example.org.", "A")
    assert reply.answer == []
    assert len(reply.additional) == 2
