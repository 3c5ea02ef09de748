"""Reading a zone file (RFC 1035 master format) into RRsets, with errors that name file and line.

dnspython's ``Reader`` is the reference: ``$ORIGIN``, ``$TTL``, ``$INCLUDE``, ``$GENERATE``,
multi-line ``( )`` records, every type it knows. Its tokenizer reads one character at a time, and
most of a large zone's load time went there and into ``rdata.from_text``, so the reader here
takes most lines by a faster road: a line of plain characters (no parentheses, escapes or
comments; quotes only for TXT) whose type is one of the common ones (A, AAAA, NS, CNAME, PTR, MX,
SRV, TXT) is split with ``str.split`` and its rdata built with the rdata class's own constructor,
the same object ``from_text`` builds. Every other line (directives, SOA, DNSSEC types, anything
odd, anything the fast road cannot take) goes to dnspython's reader, one record at a time, with
the reader's own state (origin, last owner, TTLs) shared by both roads. Both roads give the same
RRsets (tests/plugins/test_file.py checks it on every zone of the tests and on the root zone).

The records go to a small collector instead of a dnspython zone transaction: the transaction's
generic bookkeeping costs more than the parsing, and the collector can check each record as it
arrives, so a CNAME beside other data is a ``SyntaxError`` that names the file and line.
"""

from __future__ import annotations

import io
import re
from collections.abc import Callable, Iterable
from typing import IO, Any, cast

import dns.exception
import dns.name
import dns.rdata
import dns.rdataclass
import dns.rdatatype
import dns.rdtypes.ANY.CNAME
import dns.rdtypes.ANY.MX
import dns.rdtypes.ANY.NS
import dns.rdtypes.ANY.PTR
import dns.rdtypes.ANY.TXT
import dns.rdtypes.IN.A
import dns.rdtypes.IN.AAAA
import dns.rdtypes.IN.SRV
import dns.rrset
import dns.tokenizer
import dns.transaction
import dns.ttl
import dns.zonefile

from ...clog import PluginLogger
from . import assemble

_log = PluginLogger("file")

__all__ = ["ZoneFileError", "read_zone_file", "read_zone_text"]

_IN = dns.rdataclass.IN
_RRSIG = dns.rdatatype.RRSIG
_CNAME = dns.rdatatype.CNAME
_NONE = dns.rdatatype.NONE
# Types that may sit beside a CNAME (RFC 2181 10.1, RFC 4035 2.5): its signatures and denial.
_CNAME_NEIGHBOURS = frozenset({dns.rdatatype.CNAME, dns.rdatatype.RRSIG, dns.rdatatype.NSEC})

# A line the fast road may take: printable ASCII, blanks and tabs, but none of the characters that
# change how dnspython's tokenizer reads (quotes, parentheses, comments, escapes).
_PLAIN_LINE = re.compile(r"[ \t!#-'*-:<-\[\]-~]*").fullmatch
# The same with quotes allowed (a TXT record); the tokens are then found by _QUOTED_TOKENS.
_QUOTED_LINE = re.compile(r"[ \t!-\[\]-~]*").fullmatch
_QUOTED_TOKENS = re.compile(r'"([^"]*)"|([^ \t"]+)').finditer
_NOT_IN_TOKEN = re.compile(r"[();]").search
_DIGITS = re.compile(r"[0-9]+").fullmatch
_UINT16 = 0xFFFF


class ZoneFileError(ValueError):
    """A zone file that cannot be loaded; the text names the file and, where known, the line."""


class _FastLineError(Exception):
    """The fast road cannot take this line; dnspython's reader will (and say what is wrong)."""


class _Manager:
    """What the reader asks of its transaction's manager: the origin to make names absolute with."""

    def __init__(self, origin: dns.name.Name) -> None:
        self.origin = origin

    def origin_information(self) -> tuple[dns.name.Name, bool, dns.name.Name]:
        return self.origin, False, self.origin


class _Collector:
    """Stands in for a dnspython transaction: keeps every record, as RRsets by name and type, in
    the order each RRset first appeared."""

    def __init__(self, origin: dns.name.Name) -> None:
        self.manager = _Manager(origin)
        self.origin = origin
        self.names: dict[dns.name.Name, dict[Any, dns.rrset.RRset]] = {}
        """By name, the RRsets by type (an RRSIG's by (RRSIG, covered type))."""
        self.order: list[dns.rrset.RRset] = []
        self.reader: _Reader | None = None
        self.out_of_zone: list[tuple[str, int, dns.name.Name]] = []

    def check_put_rdataset(self, check: Any) -> None:
        """dnspython's own CNAME check raises an error with no line; ours is in ``add``."""

    def _set_origin(self, origin: dns.name.Name) -> None:
        pass

    def add_unicode(self, value: str) -> None:
        pass

    def add(self, name: dns.name.Name, ttl: int, rdata: dns.rdata.Rdata, in_zone: bool = False) -> None:
        """Add one record; ``in_zone``: the caller knows ``name`` is in the zone."""
        if not in_zone and not name.is_subdomain(self.origin) and self.reader is not None:
            # CoreDNS keeps such records (one file may serve several origins); they are never
            # answered, only transferred. Say so once per file.
            self.out_of_zone.append((*self.reader.rr_start, name))
        rdtype = rdata.rdtype
        key: Any = rdtype
        covers = _NONE
        if rdtype == _RRSIG:
            covers = rdata.covers()
            key = (rdtype, covers)
        node = self.names.setdefault(name, {})
        rrset = node.get(key) if node else None
        if rrset is None:
            if node and (rdtype == _CNAME or _CNAME in node) and rdtype not in _CNAME_NEIGHBOURS:
                raise dns.exception.SyntaxError(f"CNAME and other data at {name}")
            if rdtype == _CNAME and any(
                (t if type(t) is not tuple else t[0]) not in _CNAME_NEIGHBOURS for t in node
            ):
                raise dns.exception.SyntaxError(f"CNAME and other data at {name}")
            rrset = node[key] = dns.rrset.RRset(name, rdata.rdclass, rdtype, covers)
            self.order.append(rrset)
            if rdtype != _RRSIG:
                # A new set takes the record as it is: Rdataset.add would check what only
                # matters for a second record, and hash the rdata twice (for a name in it, as
                # costly as building it).
                rrset.update_ttl(ttl)
                rrset.items[rdata] = None
                return
        rrset.add(rdata, ttl)

    def rrsets(self) -> list[dns.rrset.RRset]:
        return self.order


# -- the fast road: rdata from split tokens ----------------------------------------------------

_Builder = Callable[["_Reader", list[str], dns.name.Name], dns.rdata.Rdata]


def _one(tokens: list[str]) -> str:
    if len(tokens) != 1:
        raise _FastLineError
    return tokens[0]


def _uint16(text: str) -> int:
    if _DIGITS(text) is None:
        raise _FastLineError
    value = int(text)
    if value > _UINT16:
        raise _FastLineError
    return value


def _address(cls: type[dns.rdata.Rdata], make: Callable[[str], dns.rdata.Rdata]) -> _Builder:
    rdtype = dns.rdatatype.RdataType.make(cls.__name__)

    def build(reader: _Reader, tokens: list[str], origin: dns.name.Name) -> dns.rdata.Rdata:
        if assemble.FAITHFUL:
            return make(_one(tokens))
        return cls(_IN, rdtype, _one(tokens))  # type: ignore[call-arg]

    return build


def _target(cls: type[dns.rdata.Rdata]) -> _Builder:
    rdtype = dns.rdatatype.RdataType.make(cls.__name__)

    def build(reader: _Reader, tokens: list[str], origin: dns.name.Name) -> dns.rdata.Rdata:
        name = reader.target_name(_one(tokens), origin)
        if assemble.FAITHFUL:
            return assemble.target(cls, rdtype, name)
        return cls(_IN, rdtype, name)  # type: ignore[call-arg]

    return build


def _mx(reader: _Reader, tokens: list[str], origin: dns.name.Name) -> dns.rdata.Rdata:
    if len(tokens) != 2:
        raise _FastLineError
    preference, exchange = _uint16(tokens[0]), reader.target_name(tokens[1], origin)
    if assemble.FAITHFUL:
        return assemble.mx(preference, exchange)
    return dns.rdtypes.ANY.MX.MX(_IN, dns.rdatatype.MX, preference, exchange)


def _srv(reader: _Reader, tokens: list[str], origin: dns.name.Name) -> dns.rdata.Rdata:
    if len(tokens) != 4:
        raise _FastLineError
    priority, weight, port = (_uint16(t) for t in tokens[:3])
    name = reader.target_name(tokens[3], origin)
    if assemble.FAITHFUL:
        return assemble.srv(priority, weight, port, name)
    return dns.rdtypes.IN.SRV.SRV(_IN, dns.rdatatype.SRV, priority, weight, port, name)


def _txt(reader: _Reader, tokens: list[str], origin: dns.name.Name) -> dns.rdata.Rdata:
    if not tokens:
        raise _FastLineError
    strings = tuple(t.encode() for t in tokens)
    if any(len(s) > 255 for s in strings):
        raise _FastLineError
    if assemble.FAITHFUL:
        return assemble.txt(strings)
    return dns.rdtypes.ANY.TXT.TXT(_IN, dns.rdatatype.TXT, strings)


_FAST_TYPES: dict[str, _Builder] = {
    "A": _address(dns.rdtypes.IN.A.A, assemble.a),
    "AAAA": _address(dns.rdtypes.IN.AAAA.AAAA, assemble.aaaa),
    "NS": _target(dns.rdtypes.ANY.NS.NS),
    "CNAME": _target(dns.rdtypes.ANY.CNAME.CNAME),
    "PTR": _target(dns.rdtypes.ANY.PTR.PTR),
    "MX": _mx,
    "SRV": _srv,
    "TXT": _txt,
}
_TXT = _FAST_TYPES["TXT"]
_TARGET_CACHE = 4096
"""Rdata target names kept per origin (NS and MX targets repeat: the root zone's NS hosts)."""


def _name(text: str, origin: dns.name.Name) -> dns.name.Name:
    """``dns.name.from_text(text, origin)`` for a token of a plain line (no escapes)."""
    name = assemble.plain_name(text, origin) if assemble.FAITHFUL else None
    return name if name is not None else dns.name.from_text(text, origin)


class _Reader(dns.zonefile.Reader):
    """dnspython's reader with a fast road for plain lines; it notes where each record starts,
    since dnspython's own errors name the line it stopped on, which for a record's data is the
    next one."""

    rr_start: tuple[str, int] = ("", 0)
    in_record = False

    def __init__(self, filename: str, *args: Any, **kw: Any) -> None:
        super().__init__(*args, **kw)
        self.filename = filename
        self._targets: dict[str, dns.name.Name] = {}
        self._targets_origin: dns.name.Name | None = None
        self._checked_origin: dns.name.Name | None = None
        self._origin_in_zone = False

    def _rr_line(self) -> None:
        self.rr_start = (self.tok.filename, self.tok.line_number)
        self.in_record = True
        super()._rr_line()
        self.in_record = False

    def target_name(self, text: str, origin: dns.name.Name) -> dns.name.Name:
        """``text`` as the absolute name dnspython's ``tok.get_name`` would make of it."""
        if origin is not self._targets_origin:
            self._targets = {}
            self._targets_origin = origin
        name = self._targets.get(text)
        if name is None:
            if len(self._targets) >= _TARGET_CACHE:
                self._targets.clear()
            name = self._targets[text] = _name(text, origin)
        return name

    # -- reading -------------------------------------------------------------------------------

    def read_lines(self, text: str) -> None:
        """Read ``text``: plain lines by the fast road, everything else by dnspython's."""
        lines = text.split("\n")
        count = len(lines)
        i = 0
        fast = self._fast_line
        while i < count:
            line = lines[i]
            if not line or line[0] == "$" or not fast(line, i + 1):
                if line.strip(" \t") == "" or line.lstrip(" \t").startswith(";"):
                    i += 1  # blank or a comment: nothing for either road to do
                    continue
                i = self._slow(lines, i)
                continue
            i += 1

    def _slow(self, lines: list[str], start: int) -> int:
        """Hand the record (or directive) that begins at ``start`` to dnspython's reader, with
        every line its parentheses span; the index of the line after it."""
        end = _record_end(lines, start)
        chunk = "\n".join(lines[start:end])
        if end < len(lines):
            chunk += "\n"
        tok = dns.tokenizer.Tokenizer(io.StringIO(chunk), self.filename, self.tok.idna_codec)
        tok.line_number = start + 1
        self.tok = tok
        super().read()
        return end

    def _fast_line(self, line: str, number: int) -> bool:
        """Take ``line`` by the fast road if it can; False (and nothing changed) if it cannot."""
        if _PLAIN_LINE(line) is not None:
            tokens = line.split()
            quoted = 0
        elif '"' in line and "\\" not in line and _QUOTED_LINE(line) is not None:
            tokens, quoted = _quoted_tokens(line)
            if quoted < 0:
                return False
        else:
            return False
        try:
            return self._fast_record(line, tokens, quoted, number)
        except (_FastLineError, dns.exception.DNSException, ValueError, TypeError, IndexError):
            return False

    def _fast_record(self, line: str, tokens: list[str], quoted: int, number: int) -> bool:
        """One record from its tokens, as ``_rr_line`` reads it; ``quoted``: the index of the
        first quoted token (0: none)."""
        if not tokens:
            return False
        origin = self.current_origin
        if origin is None:
            return False
        owner_given = line[0] != " " and line[0] != "\t"
        if not owner_given:
            name = self.last_name
            i = 0
        else:
            first = tokens[0]
            name = _name(first, origin)
            i = 1
        if name is None or (quoted and quoted <= i):
            return False
        ttl: int | None = None
        last_ttl = None
        word = tokens[i]
        if word[0] in "0123456789":
            ttl = last_ttl = dns.ttl.from_text(word)
            i += 1
            word = tokens[i]
        upper = word.upper()
        if upper == "IN":
            i += 1
            word = tokens[i]
            upper = word.upper()
        elif upper not in _FAST_TYPES:
            return False  # another class, or something dnspython must judge
        if ttl is None:
            if word[0] in "0123456789":
                ttl = last_ttl = dns.ttl.from_text(word)
                i += 1
                word = tokens[i]
                upper = word.upper()
            else:
                ttl = self._implicit_ttl()
        build = _FAST_TYPES.get(upper)
        if build is None or ttl is None or (quoted and (quoted <= i or build is not _TXT)):
            return False
        rdata = build(self, tokens[i + 1 :], origin)
        # Everything parsed: only now change the reader's state, as dnspython would have.
        if owner_given:
            self.last_name = name
        if last_ttl is not None:
            self.last_ttl = last_ttl
            self.last_ttl_known = True
        zone_origin = self.zone_origin
        assert zone_origin is not None
        if not name.is_subdomain(zone_origin):
            return True  # dnspython skips such a line
        self.rr_start = (self.filename, number)
        self.in_record = True
        collector = cast(_Collector, self.txn)
        if origin is not self._checked_origin:
            self._checked_origin = origin
            self._origin_in_zone = origin.is_subdomain(collector.origin)
        # A relative owner under an origin inside the zone needs no check for being in the zone.
        in_zone = owner_given and self._origin_in_zone and not tokens[0].endswith(".")
        collector.add(name, ttl, rdata, in_zone)
        self.in_record = False
        return True


def _quoted_tokens(line: str) -> tuple[list[str], int]:
    """The tokens of a line with quoted strings, and the index of the first quoted one; -1 when
    the line is not one the fast road reads (an open quote, a comment or a parenthesis)."""
    if line.count('"') % 2:
        return [], -1
    tokens: list[str] = []
    first_quoted = 0
    for match in _QUOTED_TOKENS(line):
        text, bare = match.group(1), match.group(2)
        if bare is not None:
            if _NOT_IN_TOKEN(bare) is not None:
                return [], -1
            tokens.append(bare)
        else:
            if not first_quoted:
                first_quoted = len(tokens) or -1
                if first_quoted < 0:
                    return [], -1
            tokens.append(text)
    return tokens, first_quoted


def _record_end(lines: list[str], start: int) -> int:
    """The index after the last line of the record that begins at ``start``: the line where its
    parentheses close, read as dnspython's tokenizer reads them (quotes, escapes, comments)."""
    depth = 0
    quoting = False
    i = start
    count = len(lines)
    while i < count:
        line = lines[i]
        j = 0
        n = len(line)
        while j < n:
            c = line[j]
            if c == "\\":
                j += 2
                continue
            if quoting:
                if c == '"':
                    quoting = False
            elif c == '"':
                quoting = True
            elif c == ";":
                break
            elif c == "(":
                depth += 1
            elif c == ")":
                depth -= 1
            j += 1
        i += 1
        if j > n:  # an escaped end of line continues the token on the next line
            continue
        if depth <= 0 or quoting:
            return i
    return count


def _read(source: IO[str] | str, filename: str, origin: str, *, fast: bool = True) -> list[dns.rrset.RRset]:
    zone_origin = dns.name.from_text(origin)
    collector = _Collector(zone_origin)
    text = source if isinstance(source, str) else source.read()
    tok = dns.tokenizer.Tokenizer(text, filename)
    reader = _Reader(
        filename, tok, dns.rdataclass.IN, cast(dns.transaction.Transaction, collector), allow_include=True
    )
    collector.reader = reader
    # dnspython skips records outside the zone without a word; the collector wants to see them.
    reader.zone_origin = dns.name.root
    try:
        # A carriage return ends a line for dnspython's tokenizer but not for str.split: such a
        # file (read as text, not through open()) goes all the slow way.
        if fast and "\r" not in text:
            reader.read_lines(text)
        else:
            reader.read()
    except dns.exception.SyntaxError as exc:
        message = str(exc)
        if reader.in_record:
            where, line = reader.rr_start
            message = f"{where}:{line}: " + message.split(": ", 1)[-1]
        raise ZoneFileError(message) from None
    except (dns.exception.DNSException, UnicodeDecodeError) as exc:
        filename_now, line = reader.tok.where()
        raise ZoneFileError(f"{filename_now}:{line}: {exc}") from None
    except OSError as exc:  # an $INCLUDE that cannot be opened
        filename_now, line = reader.tok.where()
        raise ZoneFileError(f"{filename_now}:{line}: {exc.strerror or exc}: {exc.filename}") from None
    if collector.out_of_zone:
        where, line, name = collector.out_of_zone[0]
        more = len(collector.out_of_zone) - 1
        _log.warning(
            f"{where}:{line}: out-of-zone record {name} for origin {zone_origin}"
            + (f" (and {more} more)" if more else "")
            + ": never answered, only transferred"
        )
    return collector.rrsets()


def read_zone_file(path: str, origin: str, *, fast: bool = True) -> list[dns.rrset.RRset]:
    """The RRsets of the zone file at ``path``, its relative names made absolute with ``origin``.
    Raises ``OSError`` when the file cannot be read and ``ZoneFileError`` for its contents.
    ``fast=False`` reads every line with dnspython's reader (the tests compare the two)."""
    with open(path, encoding="utf-8", errors="surrogateescape") as f:
        return _read(f, path, origin, fast=fast)


def read_zone_text(
    text: str, origin: str, filename: str = "<string>", *, fast: bool = True
) -> list[dns.rrset.RRset]:
    """The RRsets of zone file text (tests, and zones that arrive by other ways than a file)."""
    return _read(text, filename, origin, fast=fast)


def iter_records(rrsets: Iterable[dns.rrset.RRset]) -> int:
    """The number of records in ``rrsets``."""
    return sum(len(r) for r in rrsets)
