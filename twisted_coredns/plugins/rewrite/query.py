"""The query as the rules rewrite it: its name, type, class and OPT record, changed in place while
the rules run, then written once into a new ``Request`` (the client's is never changed)."""

from __future__ import annotations

from ...dns.edns import Opt, split_options
from ...dns.names import name_wire
from ...request import Request

_NEW_OPT_SIZE = 4096
"""The UDP size of an OPT record a rule adds to a query that had none (miekg's ``SetEdns0(4096)``)."""


class Query:
    __slots__ = ("changed", "name", "opt", "qclass", "qname", "qtype", "renamed", "request")

    def __init__(self, request: Request) -> None:
        self.request = request
        self.qname = request.qname
        self.name = request.name
        """The query name as it is now, in lower case (CoreDNS's ``state.Name()``)."""
        self.qtype = request.qtype
        self.qclass = request.qclass
        self.opt: Opt | None = None
        self.changed = False
        self.renamed = False

    def set_name(self, qname: str) -> None:
        self.qname = qname
        self.name = qname.lower()
        self.changed = self.renamed = True

    def options(self) -> list[tuple[int, bytes]]:
        """The OPT record's options, to change in place; a query without an OPT record gets one."""
        if self.opt is None:
            request = self.request
            if request.edns:
                self.opt = Opt(request.udp_size, 0, request.edns_version, request.edns_flags,
                               split_options(request.edns_options))
            else:
                self.opt = Opt(_NEW_OPT_SIZE, 0, 0, 0, [])
            self.changed = True
        assert self.opt.options is not None
        return self.opt.options

    def name_is_valid(self) -> bool:
        """miekg's ``IsDomainName``: labels of 1 to 63 octets, 255 octets in all."""
        if self.qname in (".", ""):
            return self.qname == "."
        try:
            name_wire(self.qname)
        except ValueError:
            return False
        return True

    def rewritten(self) -> Request:
        """The query to pass on; ``ValueError`` when its name is no name (``name_is_valid``)."""
        request = self.request
        if not self.changed:
            return request
        if not self.qname:
            raise ValueError("an empty name")
        if self.opt is not None:
            return request.replace(qname=self.qname, qtype=self.qtype, qclass=self.qclass, opt=self.opt)
        return request.with_question(self.qname, self.qtype, self.qclass)
