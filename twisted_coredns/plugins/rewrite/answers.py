"""What the matched rules undo in the reply (CoreDNS's response rules): owner names, record values,
TTLs, the rcode, EDNS options put back as they were, and a CNAME target asked again.

A rule that matches gives a ``Reversal``; the reversals of the rules matched for one query join
into one, the rule matched last first, as CoreDNS's ``ResponseReverter`` runs its rules in reverse.
A rule's reversal is made once, at setup, unless it depends on the query (``answer auto`` on a
name rule that is not a suffix rule, ``edns0 ... revert``, ``cname``). ``reverter`` applies one to
the reply's bytes; ``undo_in_message`` applies it to a dnspython message, the slow path.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ...dns.constants import CNAME, DNAME, MX, NAPTR, NS, OPT, PTR, SOA, SRV

if TYPE_CHECKING:
    import dns.message

    from .cname import CnameAnswer
    from .matching import StringRewriter

_VALUE_FIELDS = {SRV: "target", MX: "exchange", CNAME: "target", NS: "target", DNAME: "target",
                 NAPTR: "replacement", SOA: "mname", PTR: "target"}
"""The name in each record type's data that ``answer value`` rewrites (CoreDNS's list)."""
VALUE_TYPES = frozenset(_VALUE_FIELDS)
"""The types whose value ``answer value`` rewrites: in each, the first name of the data."""


class RcodeAnswer:
    """``rcode``: the reply's rcode ``old`` becomes ``new``."""

    __slots__ = ("new", "old")

    def __init__(self, old: int, new: int) -> None:
        self.old, self.new = old, new


class OptionRemoved:
    """An option a rule added with ``revert``: the first with its code leaves the reply."""

    __slots__ = ("code",)

    def __init__(self, code: int) -> None:
        self.code = code

    def options(self, options: list[tuple[int, bytes]]) -> None:
        for i, (code, _data) in enumerate(options):
            if code == self.code:
                del options[i]
                return


class OptionRestored(OptionRemoved):
    """An option a rule changed with ``revert``: the first with its code gets its old data back."""

    __slots__ = ("data",)

    def __init__(self, code: int, data: bytes) -> None:
        super().__init__(code)
        self.data = data

    def options(self, options: list[tuple[int, bytes]]) -> None:
        for i, (code, _data) in enumerate(options):
            if code == self.code:
                options[i] = (code, self.data)
                return


FieldRule = RcodeAnswer | OptionRemoved
"""A rule on the reply's header and OPT record, which CoreDNS applies once for each record."""


class Reversal:
    """What a reply needs undone, each list in the order to apply it: ``owner`` rewriters for the
    records' owner names, ``value`` rewriters for their values (``VALUE_TYPES``), ``ttls`` as
    ``(low, high)`` clamps, ``fields`` rules, and ``cnames`` (in the order matched).

    ``inverse`` says that the owner and value rewriters undo exactly the renaming of the query:
    they turn the name asked, and any labels in front of it, back into the name the client asked
    in lower case (``answer auto`` alone; or no renaming and no rewriters at all). The reply's
    edit then need not check it name by name."""

    __slots__ = ("cnames", "empty", "fields", "inverse", "owner", "owner_keeps_root", "ttls", "value",
                 "value_keeps_root")

    def __init__(
        self,
        owner: tuple[StringRewriter, ...] = (),
        value: tuple[StringRewriter, ...] = (),
        ttls: tuple[tuple[int, int], ...] = (),
        fields: tuple[FieldRule, ...] = (),
        cnames: tuple[CnameAnswer, ...] = (),
        *,
        inverse: bool = True,
    ) -> None:
        self.owner = owner
        self.value = value
        self.ttls = ttls
        self.fields = fields
        self.cnames = cnames
        self.inverse = inverse
        self.empty = not (owner or value or ttls or fields or cnames)
        """True when there is nothing to undo (CoreDNS's empty ``ResponseRules``)."""
        self.owner_keeps_root = _keeps_root(owner)
        self.value_keeps_root = _keeps_root(value)
        """Whether the root name comes out of the owner (value) rewriters as it went in."""

    def after(self, earlier: Reversal) -> Reversal:
        """This reversal, of a rule matched after the one ``earlier`` comes from, joined to it."""
        if self.empty and (self.inverse or not earlier.inverse):
            return earlier
        if earlier.empty and (earlier.inverse or not self.inverse):
            return self
        return Reversal(self.owner + earlier.owner, self.value + earlier.value, self.ttls + earlier.ttls,
                        self.fields + earlier.fields, earlier.cnames + self.cnames,
                        inverse=self.inverse and earlier.inverse)

    def not_inverse(self) -> Reversal:
        """The same, for a rule that renames the query without turning its names back."""
        return Reversal(self.owner, self.value, self.ttls, self.fields, self.cnames, inverse=False)


def _keeps_root(rewriters: tuple[StringRewriter, ...]) -> bool:
    text = "."
    for rewrite in rewriters:
        text = rewrite.root if text == "." else rewrite(text)
    return text == "."


NOTHING = Reversal()


def _rewritten(text: str, rewriters: tuple[StringRewriter, ...]) -> str:
    for rewrite in rewriters:
        text = rewrite(text)
    return text


def undo_in_message(message: dns.message.Message, reversal: Reversal) -> None:
    """``reversal``'s owner names, values and TTLs on every RRset of a dnspython message but the
    OPT record (``DNSException`` for a rewrite that gives no name). The fields are the caller's."""
    import dns.name

    owner, value, ttls = reversal.owner, reversal.value, reversal.ttls
    for section in (message.authority, message.answer, message.additional):
        for rrset in section:
            if rrset.rdtype == OPT:
                continue
            if owner:
                old = rrset.name.to_text()
                new = _rewritten(old, owner)
                if new != old:
                    rrset.name = dns.name.from_text(new)
            field = _VALUE_FIELDS.get(rrset.rdtype) if value else None
            if field is not None:
                rdatas = []
                for rdata in rrset:
                    old = getattr(rdata, field).to_text()
                    new = _rewritten(old, value)
                    rdatas.append(rdata if new == old else rdata.replace(**{field: dns.name.from_text(new)}))
                kept_ttl = rrset.ttl
                rrset.clear()
                for rdata in rdatas:
                    rrset.add(rdata, kept_ttl)
            for low, high in ttls:
                if rrset.ttl < low:
                    rrset.ttl = low
                elif rrset.ttl > high:
                    rrset.ttl = high
