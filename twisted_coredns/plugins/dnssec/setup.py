"""Setup for ``dnssec``: the Corefile syntax and CoreDNS's errors.

::

    dnssec [ZONES...] {
        key file|aws_secretsmanager KEY...
        cache_capacity CAPACITY
    }

``key file`` reads BIND key pairs (the basename, or either file). ``key aws_secretsmanager`` is a
Corefile error here: fetching secrets from AWS is not built in (see docs/plugins/dnssec.md).
Each key's owner must be one of the zones or above them, as CoreDNS checks. The signature cache
is cleaned every 8 hours, in every process that serves (each has its own cache).
"""

from __future__ import annotations

from typing import Any

from twisted.internet.task import LoopingCall

from ...corefile import Directive
from ...dns import is_subdomain, normalize
from ...dns.dnssec import KeyFileError, NotADNSKEY, SigningKey, key_file_paths, read_key_pair
from ...plugin import Controller
from ...strconv import atoi
from .cache import CLEAN_INTERVAL, SignatureCache
from .handler import Dnssec

__all__ = ["DEFAULT_CAPACITY", "setup"]

DEFAULT_CAPACITY = 10000


def _read_key(name: str, root: str) -> SigningKey:
    public, private = key_file_paths(name, root)
    try:
        return read_key_pair(public, private)
    except NotADNSKEY:
        raise KeyFileError("no public key found") from None


def _parse_key(controller: Controller, prop: Directive) -> list[SigningKey]:
    if not prop.args:
        raise controller.arg_error(prop)
    kind = prop.args[0].text
    names = prop.values[1:]
    if kind == "file":
        if not names:
            raise controller.arg_error(prop)
        return [_read_key(name, controller.config.root or "") for name in names]
    if kind == "aws_secretsmanager":
        if not names:
            raise controller.arg_error(prop)
        raise controller.err(
            prop.args[0],
            "key aws_secretsmanager is not supported by twisted-coredns: "
            "write the key pair to files and use 'key file'",
        )
    return []  # CoreDNS ignores a kind it does not know


def setup(controller: Controller) -> Dnssec:
    directive = controller.once()
    zones = controller.origins(list(directive.args))
    keys: list[SigningKey] = []
    capacity = DEFAULT_CAPACITY
    for prop in directive.block or ():
        if prop.name == "key":
            keys.extend(_parse_key(controller, prop))
        elif prop.name == "cache_capacity":
            if not prop.args:
                raise controller.arg_error(prop)
            capacity = atoi(prop.args[0].text)
        else:
            raise controller.unknown_property(prop)
    for key in keys:
        owner = normalize(key.owner.to_text())
        if not any(is_subdomain(zone, owner) for zone in zones):
            raise ValueError(f"key {owner} (keyid: {key.tag}) can not sign any of the zones")

    cache = SignatureCache(capacity)
    handler = Dnssec(zones, keys, cache)
    cleaner = LoopingCall(lambda: cache.clean(handler.clock()))
    cleaner.clock = controller.reactor

    def start() -> None:
        if not cleaner.running:
            cleaner.start(CLEAN_INTERVAL, now=False)

    def stop() -> Any:
        if cleaner.running:
            cleaner.stop()

    controller.on_startup(start)
    controller.on_shutdown(stop)
    return handler
