"""A test-only plugin behind ``cache``: counts the queries that reach it and answers as told.

``Backend.answer`` decides the reply from the query's first label (see ``_shape``); a test may
replace it, or set ``delay`` to answer through a Deferred it fires itself.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from typing import Any

import dns.flags
import dns.message
import dns.rcode
import dns.rrset
from twisted.internet.defer import Deferred
from twisted.internet.task import Clock

from twisted_coredns.plugin import Controller, Handler, Plugin
from twisted_coredns.plugins.cache.handler import Cache
from twisted_coredns.registry import Registry, default_registry
from twisted_coredns.request import Request
from twisted_coredns.response import Response, from_message
from twisted_coredns.testing import InProcessServer

SOA = "ns.example.org. hostmaster.example.org. 1 7200 3600 1209600 {minimum}"


def _label_value(labels: list[str], prefix: str, default: int) -> int:
    for label in labels:
        if label.startswith(prefix) and label[len(prefix) :].isdigit():
            return int(label[len(prefix) :])
    return default


class Backend(Handler):
    """Answers by the labels of the name: ``ttlN`` (TTL, default 300), and one of ``nx``
    (NXDOMAIN + SOA), ``nxnosoa``, ``nodata`` (NOERROR + SOA), ``servfail``, ``refused``,
    ``tc`` (truncated), ``other`` (a reply for another name), ``deleg`` (NS referral),
    ``ad`` (AD set), ``dangling`` (CNAME to nowhere); anything else is ``A 192.0.2.N``
    with N the number of queries seen so far."""

    name = "cachetestbackend"

    def __init__(self) -> None:
        self.calls: Counter[tuple[str, int]] = Counter()
        self.requests: list[Request] = []
        self.pending: list[tuple[Deferred[Response], Response]] = []
        self.delay = False
        self.answer: Callable[[Request], Response] = self._shape

    def serve(self, request: Request) -> Any:
        self.calls[(request.name, request.qtype)] += 1
        self.requests.append(request)
        response = self.answer(request)
        if not self.delay:
            return response
        d: Deferred[Response] = Deferred()
        self.pending.append((d, response))
        return d

    def release(self) -> None:
        """Fire every delayed answer."""
        pending, self.pending = self.pending, []
        for d, response in pending:
            d.callback(response)

    def nxdomain(self, request: Request) -> Response:
        """NXDOMAIN with an SOA, for any name."""
        msg = dns.message.make_response(request.message)
        msg.set_rcode(dns.rcode.NXDOMAIN)
        msg.authority.append(dns.rrset.from_text("example.org.", 60, "IN", "SOA", SOA.format(minimum=60)))
        return from_message(request, msg, plugin=self.name)

    def servfail(self, request: Request) -> Response:
        """A written SERVFAIL, as an upstream sends it."""
        msg = dns.message.make_response(request.message)
        msg.set_rcode(dns.rcode.SERVFAIL)
        return from_message(request, msg, plugin=self.name)

    def total(self) -> int:
        return sum(self.calls.values())

    def _shape(self, request: Request) -> Response:
        labels = request.name.rstrip(".").split(".")
        ttl = _label_value(labels, "ttl", 300)
        query = request.message
        msg = dns.message.make_response(query)
        msg.flags |= dns.flags.RA
        owner = request.qname
        if "nx" in labels or "nxnosoa" in labels:
            msg.set_rcode(dns.rcode.NXDOMAIN)
            if "nx" in labels:
                minimum = _label_value(labels, "min", 3600)
                msg.authority.append(
                    dns.rrset.from_text("example.org.", ttl, "IN", "SOA", SOA.format(minimum=minimum))
                )
        elif "nodata" in labels:
            msg.authority.append(
                dns.rrset.from_text("example.org.", ttl, "IN", "SOA", SOA.format(minimum=ttl))
            )
        elif "servfail" in labels:
            msg.set_rcode(dns.rcode.SERVFAIL)
        elif "refused" in labels:
            msg.set_rcode(dns.rcode.REFUSED)
        elif "deleg" in labels:
            msg.authority.append(
                dns.rrset.from_text("sub.example.org.", ttl, "IN", "NS", "ns.sub.example.org.")
            )
        elif "dangling" in labels:
            msg.answer.append(dns.rrset.from_text(owner, ttl, "IN", "CNAME", "elsewhere.example.net."))
        elif "other" in labels:
            msg = dns.message.make_response(dns.message.make_query("someone.else.", "A"))
            msg.answer.append(dns.rrset.from_text("someone.else.", ttl, "IN", "A", "192.0.2.1"))
        else:
            seen = self.total()
            msg.answer.append(dns.rrset.from_text(owner, ttl, "IN", "A", f"192.0.2.{seen % 250}"))
            msg.additional.append(
                dns.rrset.from_text("extra.example.org.", ttl + 100, "IN", "A", "192.0.2.254")
            )
            if "tc" in labels:
                msg.flags |= dns.flags.TC
            if "ad" in labels:
                msg.flags |= dns.flags.AD
        return from_message(request, msg, plugin=self.name)


def _setup(controller: Controller) -> Any:
    for d in controller.directives:
        controller.no_args(d)
    return Backend()


def backend_registry() -> Registry:
    """The installed plugins, the real ``cache`` among them, plus the backend right after it."""
    reg = Registry(list(default_registry()))
    reg.add(Plugin("cachetestbackend", _setup, after="cache"), "tests")
    return reg


def parts(server: InProcessServer) -> tuple[Cache, Backend]:
    handlers = server.instance.blocks[0].handlers
    cache = next(h for h in handlers if isinstance(h, Cache))
    backend = next(h for h in handlers if isinstance(h, Backend))
    return cache, backend


def with_clock(server: InProcessServer) -> tuple[Cache, Backend, Clock]:
    """The cache of ``server`` reading time from a ``Clock`` (the sockets stay on the reactor)."""
    cache, backend = parts(server)
    clock = Clock()
    clock.advance(1000)
    cache.clock = clock
    return cache, backend, clock
