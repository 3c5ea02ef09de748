"""bufsize [SIZE]: caps the EDNS UDP size that queries advertise (CoreDNS's plugin/bufsize).

A query whose OPT record offers more than SIZE (default 1232, from 512 to 4096) goes on with
SIZE, so the plugins after it (and an upstream a query is forwarded to) see the smaller buffer,
and the reply is cut to it: what the DNS Flag Day 2020 advice asks, to stay clear of IP
fragmentation.
"""

from __future__ import annotations

from ..corefile import CorefileError
from ..dns.edns import Opt, read_opt, split_options, with_opt
from ..dns.header import U16
from ..dns.wire import WireError
from ..plugin import Controller, Handler
from ..request import Request
from ..response import HandlerResult, Response, opt_record, truncate

DEFAULT_SIZE = 1232
_SMALLEST, _LARGEST = 512, 4096


class Bufsize(Handler):
    name = "bufsize"

    def __init__(self, size: int) -> None:
        self.size = size

    def serve(self, request: Request) -> HandlerResult:
        if request.udp_size <= self.size:
            return self.serve_next(request)
        opt = Opt(self.size, 0, request.edns_version, request.edns_flags, split_options(request.edns_options))
        smaller = request.replace(opt=opt)
        return self.serve_next_then(smaller, lambda response: self._fit(smaller, response))

    def _fit(self, smaller: Request, response: Response) -> Response:
        """The reply as CoreDNS sends it for the capped query: its OPT record offers the capped
        size (``SizeAndDo`` reads the changed query), and over UDP it is cut to that size."""
        wire = response.wire
        if wire is None:
            return response
        try:
            opt = read_opt(wire)
        except (WireError, IndexError, ValueError):
            return response
        if opt is None:
            wire = wire[:10] + U16.pack(U16.unpack_from(wire, 10)[0] + 1) + wire[12:] + opt_record(
                smaller, response.rcode)
        elif opt.udp_size != self.size:
            opt.udp_size = self.size
            wire = with_opt(wire, opt)
        if smaller.proto == "udp" and len(wire) > self.size:
            wire = truncate(wire, self.size)
        return Response(wire, response.rcode, response.error, response.plugin, True)


def setup(controller: Controller) -> Bufsize:
    directive = controller.directives[0]
    controller.no_block(directive)
    if not directive.args:
        return Bufsize(DEFAULT_SIZE)
    try:
        if len(directive.args) != 1:
            raise ValueError
        size = int(directive.args[0].text, 10)
        if not _SMALLEST <= size <= _LARGEST:
            raise ValueError
    except ValueError:
        # CoreDNS wraps this error in plugin.Error twice.
        raise CorefileError(f"plugin/bufsize: {controller.arg_error(directive)}") from None
    return Bufsize(size)
