"""TSIG secrets from a ``named.conf`` style key file, read line by line as CoreDNS reads it.

::

    key "example." {
        secret "X28hl0BOfAL5G0jsmJWSacrwn7YRm2f6U5brnzwWEus=";
    };

An ``algorithm`` line is accepted and ignored: CoreDNS keeps only the secret, and checks a query
with whatever HMAC algorithm the query names.
"""

from __future__ import annotations

from ...dns.names import normalize
from ...strconv import go_quote


class KeyFileError(ValueError):
    """A key file CoreDNS would reject; ``str()`` is its message."""


def parse_key_file(text: str) -> dict[str, str]:
    """The secrets of a key file, by normalized key name."""
    secrets: dict[str, str] = {}
    lines = iter(text.splitlines())
    for line in lines:
        fields = line.split()
        if not fields:
            continue
        if fields[0] != "key":
            raise KeyFileError(f"unexpected token {go_quote(fields[0])}")
        if len(fields) < 2:
            raise KeyFileError(f"expected key name {go_quote(line)}")
        key = fields[1].strip('"{')
        if not key:
            raise KeyFileError(f"expected key name {go_quote(line)}")
        key = normalize(key)
        if key in secrets:
            raise KeyFileError(f"key {go_quote(key)} redefined")
        for inner in lines:
            fields = inner.split()
            if not fields:
                continue
            if fields[0] == "algorithm":
                continue
            if fields[0] == "secret":
                if len(fields) < 2:
                    raise KeyFileError(f"expected secret key {go_quote(inner)}")
                secret = fields[1].strip('";')
                if not secret:
                    raise KeyFileError(f"expected secret key {go_quote(inner)}")
                secrets[key] = secret
            elif fields[0] in ("}", "};"):
                break
            else:
                raise KeyFileError(f"unexpected token {go_quote(fields[0])}")
        if key not in secrets:
            raise KeyFileError(f"expected secret for key {go_quote(key)}")
    return secrets
