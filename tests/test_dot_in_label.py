"""A question whose first label holds a dot (``a.b`` / ``example`` / ``org``: three labels) is
``a\\.b.example.org.``, never the four-label ``a.b.example.org.``.

The old name shortcut joined the labels with dots and, finding only plain characters, took the
join as the name. Everything downstream then saw another name: the zone router, the cache key, the
log line. One real server over real sockets answers every check here, for UDP and TCP.
"""

from __future__ import annotations

import struct
from typing import Any

import dns.message
import dns.rdatatype
from twisted.trial.unittest import SynchronousTestCase

from twisted_coredns.testing import SubprocessServer, exchange_wire

DOTTED = b"\x03a.b\x07example\x03org\x00"
"""Three labels; the first is ``a.b``."""
PLAIN = b"\x01a\x01b\x07example\x03org\x00"
"""Four labels: the name the shortcut used to turn DOTTED into."""

# b.example.org is its own block (whoami): DOTTED is not below it, PLAIN is. In example.org, the
# cache sits in front of hosts, which has a different address for each name.
CORFILE = """\
b.example.org {
    whoami
}
example.org {
    log
    cache
    hosts {
        192.0.2.1 a\\.b.example.org
        192.0.2.2 a.b.example.org
        192.0.2.3 c\\.d.example.org
        192.0.2.4 c.d.example.org
    }
}
"""

_server: SubprocessServer | None = None


def server() -> SubprocessServer:
    """One server for the module (trial has no setUpClass); stopped when the process exits."""
    global _server
    if _server is None:
        import atexit

        _server = SubprocessServer(CORFILE).start(probe="probe.example.org.")
        atexit.register(_server.__exit__)
    return _server


def _query(qname: bytes, qtype: int, qid: int) -> bytes:
    return struct.pack("!HHHHHH", qid, 0x0100, 1, 0, 0, 0) + qname + struct.pack("!HH", qtype, 1)


def _exchange(wire: bytes, port: int, tcp: bool) -> bytes:
    return exchange_wire(port, wire, tcp=tcp)


class DotInLabelTests(SynchronousTestCase):
    def ask(self, qname: bytes, qtype: int, tcp: bool, qid: int = 0x1234) -> tuple[bytes, Any]:
        query = _query(qname, qtype, qid)
        wire = _exchange(query, server().port, tcp)
        # The question comes back exactly as it was asked: the same bytes, the same labels.
        self.assertEqual(wire[12 : 12 + len(query) - 12], query[12:], f"tcp={tcp}")
        return wire, dns.message.from_wire(wire)

    def check_transport(self, tcp: bool) -> None:
        # Routed to example.org (hosts), not to b.example.org (whoami).
        _wire, reply = self.ask(DOTTED, dns.rdatatype.A, tcp)
        self.assertEqual(reply.rcode(), 0)
        self.assertEqual([r.to_text() for rrset in reply.answer for r in rrset], ["192.0.2.1"])
        self.assertEqual(str(reply.question[0].name), "a\\.b.example.org.")
        # The four-label name is a different name: its own block, not the cache's copy above.
        _wire, plain = self.ask(PLAIN, dns.rdatatype.A, tcp)
        self.assertEqual(plain.answer, [], "b.example.org's whoami answers in the additional section")
        self.assertEqual(len(plain.additional), 2)

    def test_udp(self) -> None:
        self.check_transport(tcp=False)

    def test_tcp(self) -> None:
        self.check_transport(tcp=True)

    def test_cache_keys_are_apart(self) -> None:
        # Both names are inside the cached zone, each with its own address. Asked one after the
        # other (twice, so the second round comes from the cache), neither gets the other's.
        dotted_name = b"\x03c.d\x07example\x03org\x00"
        plain_name = b"\x01c\x01d\x07example\x03org\x00"
        for tcp in (False, True, False):
            _w, dotted = self.ask(dotted_name, dns.rdatatype.A, tcp)
            _w, plain = self.ask(plain_name, dns.rdatatype.A, tcp)
            self.assertEqual(str(dotted.question[0].name), "c\\.d.example.org.")
            self.assertEqual([r.to_text() for rrset in dotted.answer for r in rrset], ["192.0.2.3"])
            self.assertEqual([r.to_text() for rrset in plain.answer for r in rrset], ["192.0.2.4"])

    def test_log_line_shows_the_escape(self) -> None:
        self.ask(DOTTED, dns.rdatatype.TXT, False, qid=0x4242)
        log = server().wait_for_log('"TXT IN a\\.b.example.org. udp')
        self.assertNotIn('"TXT IN a.b.example.org. udp', log)
