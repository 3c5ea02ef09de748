"""whoami: answers with the client's address and port (CoreDNS's plugin/whoami).

The reply is assembled from bytes: the question copied from the query, the owner names as
pointers to it, so a whoami answer costs no dnspython object at all.
"""

from __future__ import annotations

from ..dns import QNAME, records
from ..plugin import Controller, Handler
from ..request import Request
from ..response import Response, reply_records

# _udp.<qname> (or _tcp): for the root name the pointer reaches the empty label, giving "_udp." as
# CoreDNS special-cases it.
_UNDERSCORE = {"udp": records.below("_udp"), "tcp": records.below("_tcp")}
_REMEMBERED = 4096
_LONGEST_PARENT = 255 - 5
"""The longest question name (wire octets) that ``_udp.`` or ``_tcp.`` can go in front of: a name
holds at most 255 octets."""


def address_record(ip: str, qclass: int) -> bytes:
    """A or AAAA with the client's address, owned by the question name."""
    if ":" in ip:
        return records.aaaa(QNAME, 0, ip, rclass=qclass)
    return records.a(QNAME, 0, ip, rclass=qclass)


def answer_records(ip: str, port: int, proto: str, qclass: int) -> bytes:
    """The two additional records: A or AAAA with the client's address, SRV with its port."""
    owner = _UNDERSCORE.get(proto, _UNDERSCORE["udp"])
    return address_record(ip, qclass) + records.srv(owner, 0, 0, 0, port, ".", rclass=qclass)


class WhoAmI(Handler):
    name = "whoami"

    def __init__(self) -> None:
        # The records depend only on the client's address and port, the transport and the class,
        # and clients repeat them: keep the encoded records (bounded, since clients are many).
        self._records: dict[tuple[str, int, str, int], bytes] = {}

    def serve(self, request: Request) -> Response:
        ip, port = request.remote
        if request.end_of_question - 16 > _LONGEST_PARENT:
            # _udp.<name> would be over 255 octets: no such name, so no SRV record. (CoreDNS
            # fails to pack the reply and sends nothing.)
            return reply_records(request, address_record(ip, request.qclass), additional=1, aa=True,
                                 plugin="whoami")
        # CoreDNS gives the records the query's class, so a CH query (with chaos loaded) gets CH.
        key = (ip, port, request.proto, request.qclass)
        found = self._records.get(key)
        if found is None:
            if len(self._records) >= _REMEMBERED:
                self._records.clear()
            found = self._records[key] = answer_records(*key)
        return reply_records(request, found, additional=2, aa=True, plugin="whoami")


def setup(controller: Controller) -> WhoAmI:
    for directive in controller.directives:
        controller.no_args(directive)
    return WhoAmI()
