"""whoami: answers with the client's address and port (CoreDNS's plugin/whoami).

The reply is assembled from bytes: the question copied from the query, the owner names as
pointers to it, so a whoami answer costs no dnspython object at all.
"""

from __future__ import annotations

import socket
import struct

from ..plugin import Controller, Handler
from ..request import Request
from ..response import Response, reply
from ..rr import AAAA, QNAME_POINTER, SRV, A, encode_rr

_SRV_HEAD = struct.Struct("!HHH")
_UNDERSCORE = {"udp": b"\x04_udp", "tcp": b"\x04_tcp"}


class WhoAmI(Handler):
    name = "whoami"

    def serve(self, request: Request) -> Response:
        ip, port = request.remote[0], request.remote[1]
        # CoreDNS gives the records the query's class, so a CH query (with chaos loaded) gets CH.
        qclass = request.qclass
        if ":" in ip:
            # A client on a link-local address arrives as fe80::1%eth0; the zone is not address.
            packed = socket.inet_pton(socket.AF_INET6, ip.partition("%")[0])
            addr = encode_rr(QNAME_POINTER, AAAA, qclass, 0, packed)
        else:
            addr = encode_rr(QNAME_POINTER, A, qclass, 0, socket.inet_aton(ip))
        # _udp.<qname> (or _tcp): a label, then a pointer to the question name. For the root
        # name the pointer reaches the empty label, which gives "_udp." as CoreDNS special-cases.
        owner = _UNDERSCORE.get(request.proto, b"\x04_udp") + QNAME_POINTER
        srv = encode_rr(owner, SRV, qclass, 0, _SRV_HEAD.pack(0, 0, port) + b"\x00")
        return reply(request, additional=(addr, srv), aa=True, plugin="whoami")


def setup(controller: Controller) -> WhoAmI:
    for directive in controller.directives:
        controller.no_args(directive)
    return WhoAmI()
