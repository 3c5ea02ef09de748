"""The ``key`` property of ``sign``: ``key file KEY...`` reads BIND key pairs; each must be a KSK
or CSK (zone key with the SEP bit), as CoreDNS's sign demands. ``key directory`` is the property
CoreDNS documents and does not implement; its error is CoreDNS's."""

from __future__ import annotations

import os

from ...corefile import Directive
from ...dns.dnssec import KeyFileError, SigningKey, key_file_paths, open_error, read_key_pair
from ...plugin import Controller
from ...strconv import go_quote

__all__ = ["parse_key"]


def _read(name: str, root: str) -> SigningKey:
    public, private = key_file_paths(name, root)
    key = read_key_pair(public, private)
    if not key.is_ksk():
        raise KeyFileError(f"DNSKEY in {go_quote(public)} is not a CSK/KSK")
    return key


def parse_key(controller: Controller, prop: Directive, origins: list[str]) -> dict[str, list[SigningKey]]:
    """The keys one ``key`` line names, for each of ``origins``."""
    if not prop.args:
        raise controller.arg_error(prop)
    kind = prop.args[0].text
    names = prop.values[1:]
    root = controller.config.root or ""
    if kind == "directory":
        if not names:
            raise controller.arg_error(prop)
        return {origin: _in_directories(names, origin, root) for origin in origins}
    if kind != "file":
        return {}  # CoreDNS ignores a kind it does not know
    if not names:
        raise controller.arg_error(prop)
    keys = [_read(name, root) for name in names]
    return {origin: list(keys) for origin in origins}


def _in_directories(directories: list[str], origin: str, root: str) -> list[SigningKey]:
    """The CSK/KSK pairs ``K<origin>+*.key`` (and ``.private``) in ``directories``; ZSK files are
    passed over (sign signs with CSKs)."""
    keys = []
    for directory in directories:
        if root and not os.path.isabs(directory):
            directory = os.path.join(root, directory)
        try:
            entries = sorted(os.listdir(directory))
        except OSError as exc:
            raise KeyFileError(open_error(exc, directory)) from None
        prefix = f"{origin.lower()}+"
        for entry in entries:
            if entry.startswith("K") and entry[1:].lower().startswith(prefix) and entry.endswith(".key"):
                try:
                    keys.append(_read(os.path.join(directory, entry), ""))
                except KeyFileError as exc:
                    if "is not a CSK/KSK" not in str(exc):
                        raise
    if not keys:
        raise KeyFileError(f"no CSK/KSK key pair for {go_quote(origin)} in {go_quote(' '.join(directories))}")
    return keys
