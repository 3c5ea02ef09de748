"""transfer against real servers and clients: dnspython's zone transfer client, and knotd as a
secondary that transfers from us and follows our NOTIFY."""

from __future__ import annotations

import json
import socket
import unittest
from collections.abc import Iterator
from pathlib import Path

import dns.message
import dns.opcode
import dns.query
import dns.rcode
import dns.rdatatype
import pytest

from twisted_coredns.testing import SubprocessServer, free_port, wait_for
from twisted_coredns.testing.knot import KnotServer, KnotZone
from twisted_coredns.testing.setup import check_setup_rows, load_setup_rows

from .xfr_support import KEY_NAME, KEY_SECRET, KEYRING, XFR, axfr, needs_knot, records, tcp_query, zone_with


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SubprocessServer]:
    """example.org from a file (with 3000 more records, so a transfer takes several messages),
    transferred to 127.0.0.1; example.net, transferred to another address only."""
    directory = tmp_path_factory.mktemp("transfer")
    (directory / "example.org.zone").write_text(zone_with(7, extra=3000), encoding="utf-8")
    corefile = """example.org {
    file example.org.zone
    transfer {
        to 127.0.0.1
    }
}
example.net {
    file example.net.zone example.net
    transfer {
        to 192.0.2.99
    }
}
"""
    (directory / "example.net.zone").write_text(zone_with(1).replace("example.org.", "example.net."), "utf-8")
    server = SubprocessServer(corefile, directory=directory).start()
    yield server
    server.stop()


def test_axfr_sends_the_whole_zone_in_several_messages(served: SubprocessServer) -> None:
    messages = axfr(served.port)
    lines = records(messages)
    assert lines[0].split()[3] == "SOA" and lines[-1] == lines[0]
    assert len(lines) == 3000 + 5 + 1
    assert len(messages) > 1  # CoreDNS's 63,000-octet batches
    assert all(m.flags & dns.flags.AA for m in messages)
    assert "host2999.example.org. 3600 IN A 10.0.11.183" in lines
    assert 'Outgoing transfer of 3006 records of zone "example.org." to 127.0.0.1 for 7 SOA serial' in (
        served.wait_for_log("Outgoing transfer of 3006")
    )


def test_ixfr_with_the_current_serial_gets_the_soa_alone(served: SubprocessServer) -> None:
    messages = axfr(served.port, rdtype="IXFR", serial=7)
    assert len(messages) == 1 and len(records(messages)) == 1
    served.wait_for_log('Outgoing noop, incremental transfer for up to date zone "example.org." to 127.0.0.1 '
                        "for 7 SOA serial")


def test_ixfr_with_an_older_serial_falls_back_to_axfr(served: SubprocessServer) -> None:
    lines = records(axfr(served.port, rdtype="IXFR", serial=3))
    assert len(lines) == 3006


def test_a_client_not_in_to_is_refused(served: SubprocessServer) -> None:
    with pytest.raises(dns.query.TransferError) as failed:
        axfr(served.port, "example.net.")
    assert failed.value.rcode == dns.rcode.REFUSED


def test_axfr_over_udp_is_refused(served: SubprocessServer) -> None:
    query = dns.message.make_query("example.org.", "AXFR")
    reply = dns.query.udp(query, "127.0.0.1", port=served.port, timeout=3)
    assert reply.rcode() == dns.rcode.REFUSED


def test_ixfr_without_a_soa_is_servfail(served: SubprocessServer) -> None:
    reply = tcp_query(served.port, "example.org.", "IXFR")
    assert reply.rcode() == dns.rcode.SERVFAIL


def test_other_queries_pass_through(served: SubprocessServer) -> None:
    reply = tcp_query(served.port, "www.example.org.", "A")
    assert reply.rcode() == 0 and "192.0.2.1" in reply.answer[0].to_text()


def test_signed_axfr_is_signed_message_by_message(tmp_path: Path) -> None:
    (tmp_path / "example.org.zone").write_text(zone_with(3, extra=3000), encoding="utf-8")
    corefile = f"""example.org {{
    tsig {{
        secret {KEY_NAME} {KEY_SECRET}
        require AXFR IXFR
    }}
    file example.org.zone
    transfer {{
        to *
    }}
}}
"""
    with_server = SubprocessServer(corefile, directory=tmp_path).start()
    try:
        messages = axfr(with_server.port, keyring=KEYRING, keyname=KEY_NAME)  # dnspython checks each MAC
        assert len(messages) > 1 and all(m.had_tsig for m in messages)
        with pytest.raises(dns.query.TransferError) as failed:
            axfr(with_server.port)  # unsigned, where a signature is required
        assert failed.value.rcode == dns.rcode.REFUSED
    finally:
        with_server.stop()


@needs_knot
@pytest.mark.parametrize("signed", [False, True], ids=["plain", "tsig"])
def test_knotd_secondary_transfers_from_us_and_follows_our_notify(tmp_path: Path, signed: bool) -> None:
    port = free_port()
    knot_port = free_port()
    key = (KEY_NAME, KEY_SECRET) if signed else None
    knot = KnotServer([KnotZone("example.org.", primary=f"127.0.0.1@{port}")], key=key)
    knot.port = knot_port
    zone_file = tmp_path / "example.org.zone"
    zone_file.write_text(zone_with(1), encoding="utf-8")
    tsig = ""
    if signed:
        tsig = f"    tsig {{\n        secret {KEY_NAME} {KEY_SECRET}\n        require AXFR IXFR\n    }}\n"
    corefile = f"""example.org {{
{tsig}    file example.org.zone {{
        reload 1s
    }}
    transfer {{
        to 127.0.0.1:{knot_port}
    }}
}}
"""
    server = SubprocessServer(corefile, directory=tmp_path, port=port).start()
    try:
        knot.start()
        wait_for(lambda: knot.serial("example.org.") == 1, 15, "knotd's first transfer")
        zone_file.write_text(zone_with(2, www="192.0.2.2"), encoding="utf-8")
        try:
            wait_for(lambda: knot.serial("example.org.") == 2, 15, "knotd following our NOTIFY")
        except AssertionError:
            raise AssertionError(server.log() + knot.log()) from None
        query = dns.message.make_query("www.example.org.", "A")
        reply = dns.query.udp(query, "127.0.0.1", port=knot_port, timeout=2)
        assert "192.0.2.2" in reply.answer[0].to_text()
        log = server.log()
        assert "plugin/transfer: Outgoing transfer of" in log
        assert "Failed sending notifies" not in log
    finally:
        knot.stop()
        server.stop()


def test_notify_failures_are_logged_as_coredns_words_them(tmp_path: Path) -> None:
    silent = free_port()
    zone_file = tmp_path / "example.org.zone"
    zone_file.write_text(zone_with(1), encoding="utf-8")
    corefile = f"""example.org {{
    file example.org.zone {{
        reload 1s
    }}
    transfer {{
        to 127.0.0.1:{silent}
    }}
}}
"""
    server = SubprocessServer(corefile, directory=tmp_path).start()
    try:
        zone_file.write_text(zone_with(2), encoding="utf-8")
        log = server.wait_for_log("Failed sending notifies", timeout=20)
        assert f'notify for zone "example.org." was not accepted by "127.0.0.1:{silent}"' in log
    finally:
        server.stop()


def test_notify_goes_out_from_the_source_address(tmp_path: Path) -> None:
    # A secondary of our own: a UDP socket that waits for the NOTIFY and answers it.
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as secondary:
        secondary.bind(("127.0.0.1", 0))
        secondary.settimeout(20)
        port = secondary.getsockname()[1]
        zone_file = tmp_path / "example.org.zone"
        zone_file.write_text(zone_with(1), encoding="utf-8")
        corefile = f"""example.org {{
    file example.org.zone {{
        reload 1s
    }}
    transfer {{
        to 127.0.0.1:{port}
        source 127.0.0.2
    }}
}}
"""
        server = SubprocessServer(corefile, directory=tmp_path).start()
        try:
            zone_file.write_text(zone_with(2), encoding="utf-8")
            wire, sender = secondary.recvfrom(512)
            notify = dns.message.from_wire(wire)
            secondary.sendto(dns.message.make_response(notify).to_wire(), sender)
            assert sender[0] == "127.0.0.2"
            assert notify.opcode() == dns.opcode.NOTIFY
            assert notify.question[0].name.to_text() == "example.org."
            server.wait_for_log("plugin/file: Successfully reloaded zone", timeout=5)
            assert "Failed sending notifies" not in server.log()
        finally:
            server.stop()


class TransferSetupTests(unittest.TestCase):
    def test_coredns_setup_rows(self) -> None:
        rows = load_setup_rows(XFR / "setup_cases.json", "transfer", source_contains="coredns/coredns")
        assert check_setup_rows(self, rows) == len(rows)

    def test_readme_corefiles_start(self) -> None:
        for path in sorted(XFR.glob("transfer_*.corefile")):
            with self.subTest(corefile=path.name):
                server = SubprocessServer(path.read_text(encoding="utf-8")).start()
                server.stop()


def test_setup_rows_file_is_attributed() -> None:
    data = json.loads((XFR / "setup_cases.json").read_text(encoding="utf-8"))
    assert "coredns/coredns" in data["source"]
