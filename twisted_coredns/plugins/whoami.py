"""whoami: answers with the client's address and port (CoreDNS's plugin/whoami).

The reply is assembled from bytes: the question copied from the query, the owner names as
pointers to it, so a whoami answer costs no dnspython object at all.
"""

from __future__ import annotations

import socket
import struct

from ..plugin import Controller, Handler
from ..request import Request
from ..response import Response, reply_records
from ..rr import AAAA, QNAME_POINTER, SRV, A, encode_rr

# _udp.<qname> (or _tcp): a label, then a pointer to the question name; SRV 0 0 PORT "." with TTL 0.
# For the root name the pointer reaches the empty label, giving "_udp." as CoreDNS special-cases.
_SRV_RECORD = struct.Struct("!5s2sHHIHHHHB")
_UNDERSCORE = {"udp": b"\x04_udp", "tcp": b"\x04_tcp"}


class WhoAmI(Handler):
    name = "whoami"

    def __init__(self) -> None:
        # The address record depends only on the client's address and the query's class, and
        # clients repeat: keep the encoded record (bounded, since addresses are many).
        self._addresses: dict[tuple[str, int], bytes] = {}

    def _address_record(self, ip: str, qclass: int) -> bytes:
        if ":" in ip:
            # A client on a link-local address arrives as fe80::1%eth0; the zone is not address.
            packed = socket.inet_pton(socket.AF_INET6, ip.partition("%")[0])
            record = encode_rr(QNAME_POINTER, AAAA, qclass, 0, packed)
        else:
            record = encode_rr(QNAME_POINTER, A, qclass, 0, socket.inet_aton(ip))
        if len(self._addresses) >= 4096:
            self._addresses.clear()
        self._addresses[(ip, qclass)] = record
        return record

    def serve(self, request: Request) -> Response:
        ip, port = request.remote
        # CoreDNS gives the records the query's class, so a CH query (with chaos loaded) gets CH.
        qclass = request.qclass
        addr = self._addresses.get((ip, qclass)) or self._address_record(ip, qclass)
        srv = _SRV_RECORD.pack(
            _UNDERSCORE.get(request.proto, b"\x04_udp"), QNAME_POINTER, SRV, qclass, 0, 7, 0, 0, port, 0
        )
        return reply_records(request, addr + srv, additional=2, aa=True, plugin="whoami")


def setup(controller: Controller) -> WhoAmI:
    for directive in controller.directives:
        controller.no_args(directive)
    return WhoAmI()
