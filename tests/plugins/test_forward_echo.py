"""forward never relays a reply that does not unpack: an upstream that echoes a query's own
records (unbound answers FORMERR with the whole query) gives SERVFAIL when the echo is malformed,
as CoreDNS's forward fails on a reply miekg/dns cannot unpack."""

from __future__ import annotations

import socket
import struct
from typing import Any

import dns.message
import dns.rcode
import dns.rrset
from twisted.internet import reactor
from twisted.internet.defer import inlineCallbacks
from twisted.internet.protocol import DatagramProtocol
from twisted.internet.threads import deferToThread
from twisted.trial.unittest import TestCase

from twisted_coredns.testing import InProcessServer

# The additional section of the reply: OPT, then an AAAA record with 4 octets of data.
_BAD_AAAA = bytes.fromhex("00002904d000000000000005776f72647300001c00010000000500047f000001")
_GOOD_A = bytes.fromhex("00002904d000000000000005776f7264730000010001000000050004" "7f000001")


class _Echo(DatagramProtocol):
    """Answers every query with FORMERR, its question and ``tail`` as two additional records."""

    def __init__(self, tail: bytes) -> None:
        self.tail = tail

    def datagramReceived(self, data: bytes, addr: Any) -> None:
        qid = data[:2]
        end = data.index(b"\x00", 12) + 5
        header = qid + struct.pack("!HHHHH", 0x8101, 1, 0, 0, 2)
        assert self.transport is not None
        self.transport.write(header + data[12:end] + self.tail, addr)


def _ask(port: int) -> dns.message.Message:
    query = dns.message.make_query("a.fwd.test.", "A", use_edns=0, payload=1232)
    query.additional.append(dns.rrset.from_text("words.", 300, "IN", "A", "127.0.0.1"))
    wire = query.to_wire()
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(5)
        s.sendto(wire, ("127.0.0.1", port))
        return dns.message.from_wire(s.recv(4096), ignore_trailing=True)


class EchoedRecordsTests(TestCase):
    @inlineCallbacks
    def _reply_through(self, tail: bytes) -> Any:
        upstream = reactor.listenUDP(0, _Echo(tail), interface="127.0.0.1")
        self.addCleanup(upstream.stopListening)
        server = InProcessServer(f"fwd.test {{\n    forward . 127.0.0.1:{upstream.getHost().port}\n}}\n")
        yield server.start()
        self.addCleanup(server.stop)
        reply = yield deferToThread(_ask, server.port)
        return reply

    @inlineCallbacks
    def test_a_malformed_echo_is_servfail(self) -> Any:
        reply = yield self._reply_through(_BAD_AAAA)
        self.assertEqual(reply.rcode(), dns.rcode.SERVFAIL)

    @inlineCallbacks
    def test_a_well_formed_echo_is_relayed(self) -> Any:
        reply = yield self._reply_through(_GOOD_A)
        self.assertEqual(reply.rcode(), dns.rcode.FORMERR)
        self.assertEqual(len(reply.additional), 1)
