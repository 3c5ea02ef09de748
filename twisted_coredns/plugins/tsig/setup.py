"""Setup for ``tsig``::

    tsig [ZONE...] {
        secret NAME KEY
        secrets FILE
        require [QTYPE...]
        require_opcode [OPCODE...]
    }

CoreDNS turns every error of this setup into the same argument error, "Wrong argument count or
unexpected line ending after 'X'", X being the token its reader stood on when the check failed (the
last word of the offending line, or the unknown property): so does this one, word for word. The
secrets are also the block's ``settings["tsig"]`` (CoreDNS's
``config.TsigSecret``), for ``transfer`` and ``secondary``.
"""

from __future__ import annotations

import os

from ...config import BlockConfig
from ...corefile.model import Directive, Token
from ...dns.constants import (
    OPCODE_IQUERY,
    OPCODE_NOTIFY,
    OPCODE_QUERY,
    OPCODE_STATUS,
    OPCODE_UPDATE,
    type_value,
)
from ...dns.names import normalize
from ...plugin import Controller
from .handler import TsigServer
from .keys import KeyFileError, parse_key_file

_OPCODES = {
    "QUERY": OPCODE_QUERY,
    "IQUERY": OPCODE_IQUERY,
    "STATUS": OPCODE_STATUS,
    "NOTIFY": OPCODE_NOTIFY,
    "UPDATE": OPCODE_UPDATE,
}



class _Failed(Exception):
    """Setup failed with the reader at ``token``."""

    def __init__(self, token: Token) -> None:
        super().__init__(token.text)
        self.token = token


def setup(controller: Controller) -> TsigServer:
    try:
        server = _parse(controller)
    except _Failed as failed:
        raise controller.arg_error(failed.token) from None
    secrets_of(controller.config).update(server.secrets)
    return server


def secrets_of(config: BlockConfig) -> dict[str, str]:
    """The block's TSIG secrets (shared by ``tsig``, ``transfer`` and ``secondary``)."""
    secrets: dict[str, str] = config.settings.setdefault("tsig", {})
    return secrets


def _parse(controller: Controller) -> TsigServer:
    if len(controller.directives) > 1:
        raise _Failed(controller.directives[1].token)
    directive = controller.directives[0]
    zones = controller.origins(directive.args)
    secrets: dict[str, str] = {}
    qtypes: frozenset[int] | None = frozenset()
    opcodes: frozenset[int] | None = frozenset()
    for prop in directive.block or ():
        last = prop.last_token()
        if prop.name == "secret":
            if len(prop.args) != 2:
                raise _Failed(last)
            name = normalize(prop.args[0].text)
            if name in secrets:
                raise _Failed(last)
            secrets[name] = prop.args[1].text
        elif prop.name == "secrets":
            if len(prop.args) != 1:
                raise _Failed(last)
            _read_secrets(controller, prop, secrets)
        elif prop.name == "require":
            qtypes = _choice(prop, _qtype)
        elif prop.name == "require_opcode":
            opcodes = _choice(prop, _OPCODES.get)
        else:
            raise _Failed(prop.token)
    return TsigServer(zones, secrets, qtypes, opcodes, controller.reactor)


def _qtype(text: str) -> int | None:
    # miekg's StringToType: upper-case names only, no TYPEnnn form.
    if text != text.upper() or text.startswith("TYPE"):
        return None
    try:
        return type_value(text)
    except ValueError:
        return None


def _choice(prop: Directive, lookup: object) -> frozenset[int] | None:
    """``require``/``require_opcode``: ``all`` (None), ``none`` (empty), or the names given."""
    if not prop.args:
        raise _Failed(prop.token)
    first = prop.args[0].text
    if first == "all":
        return None
    if first == "none":
        return frozenset()
    values = set()
    for arg in prop.args:
        value = lookup(arg.text)  # type: ignore[operator]
        if value is None:
            raise _Failed(prop.last_token())
        values.add(value)
    return frozenset(values)


def _read_secrets(controller: Controller, prop: Directive, secrets: dict[str, str]) -> None:
    path = prop.args[0].text
    root = controller.config.root
    if not os.path.isabs(path) and root:
        path = os.path.join(root, path)
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            found = parse_key_file(f.read())
    except (OSError, KeyFileError):
        raise _Failed(prop.last_token()) from None
    for name, secret in found.items():
        if name in secrets:
            raise _Failed(prop.last_token())
        secrets[name] = secret
