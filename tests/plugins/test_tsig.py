"""tsig with a real server and dnspython as the client: signed queries verified and the replies
signed, bad signatures NOTAUTH with the TSIG error (BADSIG, BADKEY, BADTIME), unsigned queries
refused where required."""

from __future__ import annotations

import socket
import struct
import time
import unittest
from collections.abc import Iterator
from pathlib import Path
from unittest import mock

import dns.message
import dns.query
import dns.rcode
import dns.tsig
import dns.tsigkeyring
import pytest

from twisted_coredns.testing import SubprocessServer
from twisted_coredns.testing.setup import check_setup_rows, load_setup_rows

from .xfr_support import KEY_NAME, KEY_SECRET, KEYRING, XFR


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SubprocessServer]:
    directory = tmp_path_factory.mktemp("tsig")
    (directory / "keys.conf").write_text(
        f'key "{KEY_NAME}" {{\n    algorithm hmac-sha256;\n    secret "{KEY_SECRET}";\n}};\n', "utf-8")
    corefile = """signed.example {
    tsig {
        secrets keys.conf
        require A
    }
    whoami
}
. {
    whoami
}
"""
    s = SubprocessServer(corefile, directory=directory).start()
    yield s
    s.stop()


def _ask(
    server: SubprocessServer, name: str, keyring: object = None, tcp: bool = False
) -> dns.message.Message:
    q = dns.message.make_query(name, "A")
    if keyring is not None:
        q.use_tsig(keyring, KEY_NAME, algorithm="hmac-sha256")
    send = dns.query.tcp if tcp else dns.query.udp
    return send(q, "127.0.0.1", port=server.port, timeout=3)  # dnspython checks the reply's TSIG


@pytest.mark.parametrize("tcp", [False, True], ids=["udp", "tcp"])
def test_a_signed_query_gets_a_signed_reply(server: SubprocessServer, tcp: bool) -> None:
    reply = _ask(server, "signed.example.", KEYRING, tcp)
    assert reply.rcode() == dns.rcode.NOERROR and reply.had_tsig


def test_unsigned_query_of_a_required_type_is_refused(server: SubprocessServer) -> None:
    assert _ask(server, "signed.example.").rcode() == dns.rcode.REFUSED


def test_unsigned_query_outside_the_zones_passes(server: SubprocessServer) -> None:
    assert _ask(server, "other.example.").rcode() == dns.rcode.NOERROR


def test_a_wrong_secret_is_notauth_badsig(server: SubprocessServer) -> None:
    wrong = dns.tsigkeyring.from_text({KEY_NAME: ("hmac-sha256", "AAAA" + KEY_SECRET[4:])})
    q = dns.message.make_query("signed.example.", "A")
    q.use_tsig(wrong, KEY_NAME, algorithm="hmac-sha256")
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(3)
        s.sendto(q.to_wire(), ("127.0.0.1", server.port))
        wire, _ = s.recvfrom(4096)
    reply = dns.message.from_wire(wire, keyring=False)
    assert reply.rcode() == dns.rcode.NOTAUTH
    assert reply.tsig_error == dns.rcode.BADSIG


def test_an_unknown_key_is_notauth_badkey(server: SubprocessServer) -> None:
    other = dns.tsigkeyring.from_text({"other.key.": ("hmac-sha256", KEY_SECRET)})
    q = dns.message.make_query("signed.example.", "A")
    q.use_tsig(other, "other.key.", algorithm="hmac-sha256")
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(3)
        s.sendto(q.to_wire(), ("127.0.0.1", server.port))
        wire, _ = s.recvfrom(4096)
    reply = dns.message.from_wire(wire, keyring=False)
    assert reply.rcode() == dns.rcode.NOTAUTH and reply.tsig_error == dns.rcode.BADKEY


@pytest.mark.parametrize("skew", [-3600, 3600], ids=["behind", "ahead"])
def test_a_time_far_off_is_notauth_badtime_with_both_times(server: SubprocessServer, skew: int) -> None:
    q = dns.message.make_query("signed.example.", "A")
    q.use_tsig(KEYRING, KEY_NAME, algorithm="hmac-sha256")
    client_time = int(time.time()) + skew
    with mock.patch("time.time", return_value=float(client_time)):
        wire = q.to_wire()  # dnspython signs with the time of the moment it renders
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(3)
        s.sendto(wire, ("127.0.0.1", server.port))
        answer, _ = s.recvfrom(4096)
        now = int(time.time())
    reply = dns.message.from_wire(answer, keyring=False)
    assert reply.rcode() == dns.rcode.NOTAUTH and reply.tsig_error == dns.rcode.BADTIME
    tsig = reply.tsig[0]
    # RFC 8945 5.2.3 (and CoreDNS): the client's time signed, the server's in the other data, and
    # a MAC, since the key itself is good.
    assert tsig.time_signed == client_time
    assert len(tsig.other) == 6 and abs(struct.unpack("!Q", b"\0\0" + tsig.other)[0] - now) <= 5
    assert len(tsig.mac) == 32
    with pytest.raises(dns.tsig.PeerBadTime):  # what a client reading it with the key is told
        dns.message.from_wire(answer, keyring=KEYRING, request_mac=q.mac)


def test_a_time_within_the_fudge_is_accepted(server: SubprocessServer) -> None:
    q = dns.message.make_query("signed.example.", "A")
    q.use_tsig(KEYRING, KEY_NAME, algorithm="hmac-sha256")
    with mock.patch("time.time", return_value=float(int(time.time()) - 200)):  # the fudge is 300 s
        wire = q.to_wire()
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(3)
        s.sendto(wire, ("127.0.0.1", server.port))
        answer, _ = s.recvfrom(4096)
    reply = dns.message.from_wire(answer, keyring=KEYRING, request_mac=q.mac)
    assert reply.rcode() == dns.rcode.NOERROR and reply.had_tsig


class TsigSetupTests(unittest.TestCase):
    def test_coredns_setup_rows(self) -> None:
        rows = load_setup_rows(XFR / "setup_cases.json", "tsig", source_contains="coredns/coredns")
        assert check_setup_rows(self, rows) == len(rows)

    def test_readme_corefiles_start(self) -> None:
        for path in sorted(XFR.glob("tsig_*.corefile")):
            with self.subTest(corefile=path.name):
                SubprocessServer(path.read_text(encoding="utf-8")).start().stop()


def test_key_file_data() -> None:
    assert Path(XFR).is_dir()
