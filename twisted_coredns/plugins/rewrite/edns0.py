"""``rewrite edns0 local|nsid|subnet set|append|replace|unset ...``: EDNS0 options of the query
added, changed or taken out, and with ``revert`` put back as they were in the reply."""

from __future__ import annotations

import ipaddress
import struct

from ...response import support_option
from ...strconv import parse_uint
from .answers import NOTHING, OptionRemoved, OptionRestored, Reversal
from .query import Query
from .rules import Rule

SET, APPEND, REPLACE, UNSET = "set", "append", "replace", "unset"
NSID, SUBNET = 3, 8
_MIEKG_TYPED = frozenset({1, 2, 3, 5, 6, 7, 8, 9, 10, 11, 12, 15})
"""Option codes miekg/dns reads into a type of their own: a ``local`` rule never matches those."""
VARIABLES = ("{qname}", "{qtype}", "{client_ip}", "{client_port}", "{protocol}", "{server_ip}",
             "{server_port}")
_U16 = struct.Struct("!H")


class Edns0Rule(Rule):
    by_question = False  # the query's options, its client, its metadata
    appends_beside = True
    """Whether ``append`` adds the option when the query has one already (CoreDNS's local and
    nsid rules do; its variable and subnet rules leave the query alone)."""
    data_first = False
    """Whether the option's data is worked out before the OPT record is made: a variable rule
    with no value for its variable adds no OPT record (CoreDNS's order)."""

    def __init__(self, mode: str, action: str, code: int, revert: bool) -> None:
        self.mode = mode
        self.action = action
        self.code = code
        self.revert = revert
        self._removed = Reversal(fields=(OptionRemoved(code),))

    def matches(self, code: int) -> bool:
        return code == self.code

    def data(self, query: Query) -> bytes | None:
        return b""

    def apply(self, query: Query) -> Reversal | None:
        data = self.data(query) if self.data_first else b""
        if data is None:
            return None
        options = query.options()
        if self.action == UNSET:
            options[:] = [(code, data) for code, data in options if code != self.code]
            return NOTHING
        if not self.data_first:
            data = self.data(query)
            if data is None:
                return None
        for i, (code, old) in enumerate(options):
            if self.matches(code):
                if self.action in (REPLACE, SET):
                    options[i] = (code, data)
                    return Reversal(fields=(OptionRestored(code, old),)) if self.revert else NOTHING
                if not self.appends_beside:
                    return None
                break
        if self.action in (APPEND, SET):
            options.append((self.code, data))
            return self._removed if self.revert else NOTHING
        return None


class LocalRule(Edns0Rule):
    def __init__(self, mode: str, action: str, code: int, data: bytes, revert: bool) -> None:
        super().__init__(mode, action, code, revert)
        self._data = data

    def matches(self, code: int) -> bool:
        return code == self.code and code not in _MIEKG_TYPED

    def data(self, query: Query) -> bytes | None:
        return self._data


class VariableRule(LocalRule):
    """``local`` with data from the query: ``{qname}``, ``{client_ip}``... or a metadata label."""

    appends_beside = False
    data_first = True

    def __init__(self, mode: str, action: str, code: int, variable: str, revert: bool) -> None:
        super().__init__(mode, action, code, b"", revert)
        self.variable = variable

    def data(self, query: Query) -> bytes | None:
        request = query.request
        variable = self.variable
        if variable == "{qname}":
            return query.qname.encode()
        if variable == "{qtype}":
            return _U16.pack(query.qtype)
        if variable == "{client_ip}":
            return _address(request.family, request.remote[0])
        if variable == "{server_ip}":
            return _address(request.family, request.local[0] if request.local else "")
        if variable == "{client_port}":
            return _U16.pack(request.remote[1])
        if variable == "{server_port}":
            return _U16.pack(request.local[1]) if request.local else None
        if variable == "{protocol}":
            return request.proto.encode()
        value = request.get_metadata(variable[1:-1])
        if value is None or value == "":
            return None  # CoreDNS: no data for the variable, the rule is ignored
        return value if isinstance(value, bytes) else str(value).encode()


def _address(family: int, text: str) -> bytes | None:
    try:
        address = ipaddress.ip_address(text.split("%", 1)[0])
    except ValueError:
        return None
    if family == 1:
        return address.packed if address.version == 4 else None
    if address.version == 4:
        return ipaddress.IPv6Address("::ffff:" + str(address)).packed
    return address.packed


class NsidRule(Edns0Rule):
    def __init__(self, mode: str, action: str, revert: bool) -> None:
        super().__init__(mode, action, NSID, revert)


class SubnetRule(Edns0Rule):
    appends_beside = False
    def __init__(self, mode: str, action: str, v4_bits: int, v6_bits: int, revert: bool) -> None:
        super().__init__(mode, action, SUBNET, revert)
        self.v4_bits, self.v6_bits = v4_bits, v6_bits

    def data(self, query: Query) -> bytes | None:
        """The client's subnet (RFC 7871): family, source prefix, scope 0, the address cut to it."""
        request = query.request
        try:
            address = ipaddress.ip_address(request.remote[0].split("%", 1)[0])
        except ValueError:
            return None
        family = request.family
        if family == 1:
            if address.version != 4:
                return None
            bits, width = self.v4_bits, 32
        else:
            if address.version == 4:
                address = ipaddress.IPv6Address("::ffff:" + str(address))
            bits, width = self.v6_bits, 128
        masked = int(address) >> (width - bits) << (width - bits) if bits else 0
        raw = masked.to_bytes(width // 8, "big")[: (bits + 7) // 8]
        return struct.pack("!HBB", family, bits, 0) + raw


def _uint(text: str, bits: int) -> int:
    """Go's ``strconv.ParseUint(text, 0, bits)``: 0x, 0o, 0b prefixes and a leading 0 for octal."""
    lowered = text.lower()
    base = 10
    digits = text
    if lowered.startswith("0x"):
        base, digits = 16, text[2:]
    elif lowered.startswith("0o"):
        base, digits = 8, text[2:]
    elif lowered.startswith("0b"):
        base, digits = 2, text[2:]
    elif len(text) > 1 and text.startswith("0"):
        base, digits = 8, text[1:]
    if base == 10:
        return parse_uint(text, bits)
    func = "ParseUint"
    try:
        if not digits or not all(c.isalnum() or c == "_" for c in digits):
            raise ValueError
        value = int(digits, base)
    except ValueError:
        raise ValueError(f'strconv.{func}: parsing "{text}": invalid syntax') from None
    if value >= 1 << bits:
        raise ValueError(f'strconv.{func}: parsing "{text}": value out of range')
    return value


def _is_label(variable: str) -> bool:
    """CoreDNS's ``metadata.IsLabel`` on ``{plugin/label}``."""
    label = variable[1:-1]
    slash = label.find("/")
    return 0 < slash < len(label) - 1 and "/" not in label[slash + 1 :]


def new_edns0_rule(mode: str, args: list[str]) -> Edns0Rule:
    """An edns0 rule from its arguments (after ``edns0``); ``ValueError`` with CoreDNS's text."""
    if len(args) < 2:
        raise ValueError("too few arguments for an EDNS0 rule")
    kind, action = args[0].lower(), args[1].lower()
    if action not in (SET, APPEND, REPLACE, UNSET):
        raise ValueError(f'invalid action: "{action}"')
    if action == UNSET:
        return _unset_rule(mode, kind, args)
    revert = args[-1] == "revert"
    if revert:
        args = args[:-1]
    if kind == "local":
        if len(args) != 4:
            raise ValueError("EDNS0 local rules require three or four args")
        code = _uint(args[2], 16)
        data = args[3]
        support_option(code)
        if data.startswith("{") and data.endswith("}"):
            if data not in VARIABLES and not _is_label(data):
                raise ValueError(f'unsupported variable name "{data}"')
            return VariableRule(mode, action, code, data, revert)
        return LocalRule(mode, action, code, _data(data), revert)
    if kind == "nsid":
        if len(args) != 2:
            raise ValueError("EDNS0 NSID rules can accept no more than one arg")
        return NsidRule(mode, action, revert)
    if kind == "subnet":
        if len(args) != 4:
            raise ValueError("EDNS0 subnet rules require three or four args")
        v4 = _uint(args[2], 16)
        if v4 > 32:
            raise ValueError(f"invalid IPv4 bit mask length {v4}")
        v6 = _uint(args[3], 16)
        if v6 > 128:
            raise ValueError(f"invalid IPv6 bit mask length {v6}")
        return SubnetRule(mode, action, v4, v6, revert)
    raise ValueError(f'invalid rule type "{kind}"')


def _data(text: str) -> bytes:
    """Rule data: hex after ``0x``, else the text itself (Go's ``hex.DecodeString`` errors)."""
    if not text.startswith("0x"):
        return text.encode()
    digits = text[2:]
    for c in digits:
        if c not in "0123456789abcdefABCDEF":
            raise ValueError(f"encoding/hex: invalid byte: U+{ord(c):04X} {c!r}")
    if len(digits) % 2:
        raise ValueError("encoding/hex: odd length hex string")
    return bytes.fromhex(digits)


def _unset_rule(mode: str, kind: str, args: list[str]) -> Edns0Rule:
    if kind == "local":
        if len(args) != 3:
            raise ValueError("local unset action requires exactly two arguments")
        code = _uint(args[2], 16)
        support_option(code)
        return LocalRule(mode, UNSET, code, b"", False)
    if kind == "nsid":
        if len(args) != 2:
            raise ValueError("nsid unset action requires exactly one argument")
        return NsidRule(mode, UNSET, False)
    if kind == "subnet":
        if len(args) != 2:
            raise ValueError("subnet unset action requires exactly one argument")
        return SubnetRule(mode, UNSET, 0, 0, False)
    raise ValueError(f'invalid rule type "{kind}"')
