"""nsid [DATA]: answers the EDNS NSID option (RFC 5001) with DATA, by default the host's name
(CoreDNS's plugin/nsid).

Only a query that asks (an OPT record holding an NSID option) gets one back; the reply's OPT
record carries the NSID, added where the reply had no OPT record.
"""

from __future__ import annotations

import socket

from ..dns.constants import EDNS_DO
from ..dns.edns import Opt, read_opt, split_options, with_opt
from ..dns.wire import WireError
from ..plugin import Controller, Handler
from ..request import Request
from ..response import HandlerResult, Response, opt_record

EDNS_NSID = 3


def _asks_for_nsid(options: bytes) -> bool:
    return any(code == EDNS_NSID for code, _data in split_options(options))


class Nsid(Handler):
    name = "nsid"

    def __init__(self, data: str) -> None:
        self.data = data.encode()

    def serve(self, request: Request) -> HandlerResult:
        if not request.edns_options or not _asks_for_nsid(request.edns_options):
            return self.serve_next(request)
        return self.serve_next_then(request, lambda response: self._add(request, response))

    def _add(self, request: Request, response: Response) -> Response:
        if response.wire is None:
            return response  # the server writes a bare error reply; CoreDNS's has no NSID either
        wire = response.wire
        try:
            opt = read_opt(wire)
        except (WireError, IndexError, ValueError):
            return response
        if opt is None:
            # The OPT record the server would add, then the NSID in it.
            kept = split_options(opt_record(request, response.rcode)[11:])
            opt = Opt(request.udp_size, (response.rcode >> 4) & 0xFF, 0, request.edns_flags & EDNS_DO, kept)
        options = opt.options or []
        for i, (code, _data) in enumerate(options):
            if code == EDNS_NSID:
                options[i] = (EDNS_NSID, self.data)
                break
        else:
            options.append((EDNS_NSID, self.data))
        opt.options = options
        return Response(with_opt(wire, opt), response.rcode, response.error, response.plugin, True)


def setup(controller: Controller) -> Nsid:
    directive = controller.once()
    controller.no_block(directive)
    try:
        data = socket.gethostname()
    except OSError:
        data = "localhost"
    if directive.args:
        data = " ".join(directive.values)
    return Nsid(data)
