"""local: answers the names that never leave the host, RFC 6761's ``localhost`` and RFC 6303's
reverse zones for 0/8, 127/8 and 255/8, without asking further (CoreDNS's plugin/local).

``localhost.`` has A 127.0.0.1 and AAAA ::1, as has every name below it (counted in
``coredns_local_localhost_requests_total``) and, unless ``localhost_prefix off``, every name that
starts with the label ``localhost``; ``1.0.0.127.in-addr.arpa.`` is a PTR to ``localhost.``. The
rest of those zones is NXDOMAIN. Records have a TTL of a week, as CoreDNS's.
"""

from __future__ import annotations

from ..corefile.model import Directive
from ..dns import AAAA, NS, PTR, QNAME, SOA, A, records
from ..dns.names import Zones
from ..metrics import counter
from ..plugin import Controller, Handler
from ..request import Request
from ..response import HandlerResult, reply_records

TTL = 604800
ZONES = ("localhost.", "0.in-addr.arpa.", "127.in-addr.arpa.", "255.in-addr.arpa.")
_LOOPBACK_PTR = "1.0.0.127.in-addr.arpa."
_LOCALHOST = "localhost."
_NXDOMAIN = 3

localhost_requests = counter("local", "localhost_requests_total",
                             "Counter of special localhost subdomain requests.")


def _soa(owner: bytes | str) -> bytes:
    return records.soa(owner, TTL, "localhost.", "root.localhost.", 1, 0, 0, 0, TTL)


_A = records.a(QNAME, TTL, "127.0.0.1")
_AAAA = records.aaaa(QNAME, TTL, "::1")
_QNAME_SOA = _soa(QNAME)
_QNAME_NS = records.ns(QNAME, TTL, "localhost.")
_PTR = records.ptr(QNAME, TTL, "localhost.")


class Local(Handler):
    name = "local"

    def __init__(self, localhost_prefix: bool = True) -> None:
        self.localhost_prefix = localhost_prefix
        self.zones = Zones(ZONES)

    def serve(self, request: Request) -> HandlerResult:
        name = request.name
        if len(name) > len(_LOCALHOST) and (
            name.endswith(".localhost.") or (self.localhost_prefix and name.startswith(_LOCALHOST))
        ):
            localhost_requests.inc()
            return self._localhost(request)
        zone = self.zones.matches(name)
        if zone is None:
            return self.serve_next(request)
        qtype = request.qtype
        if name in ZONES:
            if qtype == A and name == _LOCALHOST:
                return reply_records(request, _A, answer=1, plugin=self.name)
            if qtype == AAAA and name == _LOCALHOST:
                return reply_records(request, _AAAA, answer=1, plugin=self.name)
            if qtype == SOA:
                return reply_records(request, _QNAME_SOA, answer=1, plugin=self.name)
            if qtype == NS:
                return reply_records(request, _QNAME_NS, answer=1, plugin=self.name)
            return reply_records(request, _QNAME_SOA, authority=1, plugin=self.name)
        # The zone's SOA, owned by the zone as the client spelled it.
        zone_soa = _soa(request.qname[len(request.qname) - len(zone):])
        if name == _LOOPBACK_PTR:
            if qtype == PTR:
                return reply_records(request, _PTR, answer=1, plugin=self.name)
            return reply_records(request, zone_soa, authority=1, plugin=self.name)
        return reply_records(request, zone_soa, authority=1, rcode=_NXDOMAIN, plugin=self.name)

    def _localhost(self, request: Request) -> HandlerResult:
        if request.qtype == A:
            return reply_records(request, _A, answer=1, plugin=self.name)
        if request.qtype == AAAA:
            return reply_records(request, _AAAA, answer=1, plugin=self.name)
        return reply_records(request, _QNAME_SOA, authority=1, plugin=self.name)


def _localhost_prefix(controller: Controller, prop: Directive) -> bool:
    if len(prop.args) != 1:
        raise controller.arg_error(prop)
    value = prop.args[0]
    if value.text == "on":
        return True
    if value.text == "off":
        return False
    raise controller.err(value, f'localhost_prefix expects \'on\' or \'off\', got "{value.text}"')


def setup(controller: Controller) -> Local:
    prefix = True
    for directive in controller.directives:
        if directive.args:
            raise controller.arg_error(directive)
        for prop in directive.block or ():
            if prop.name != "localhost_prefix":
                raise controller.unknown_property(prop)
            prefix = _localhost_prefix(controller, prop)
    return Local(prefix)
