"""Setup for ``etcd``: the Corefile syntax and CoreDNS's error texts.

::

    etcd [ZONES...] {
        fallthrough [ZONES...]
        path PATH
        endpoint ENDPOINT...
        credentials USERNAME PASSWORD
        tls [CERT KEY [CACERT]] | [CACERT]
        min-lease-ttl DURATION
        max-lease-ttl DURATION
    }

``stubzones``, ``debug`` and ``upstream`` are accepted and ignored, as CoreDNS still accepts them.
"""

from __future__ import annotations

from ...address import host_zones
from ...duration import parse_duration
from ...plugin import Controller
from ..forward.setup import tls_material  # one reading of ``tls`` arguments for every plugin
from .client import EtcdClient
from .handler import DEFAULT_ENDPOINT, DEFAULT_MAX_LEASE_TTL, DEFAULT_MIN_LEASE_TTL, DEFAULT_PATH, Etcd

_TTL_FORMAT = "invalid TTL format, use format like '30', '30s', '5m', '1h', or '2h30m'"


def parse_ttl(text: str) -> int:
    """CoreDNS's ``parseTTL``: a number of seconds or a Go duration, within 0..2^32-1 seconds."""
    text = text.strip()
    if not text:
        return 0
    if text.isdigit():
        text += "s"
    try:
        seconds = parse_duration(text)
    except ValueError:
        raise ValueError(_TTL_FORMAT) from None
    if seconds < 0:
        raise ValueError("TTL must be non-negative")
    if seconds > 4294967295:
        raise ValueError("TTL too large, maximum is 4294967295 seconds")
    return int(seconds)


def setup(controller: Controller) -> Etcd:
    directive = controller.once()
    zones = controller.origins(list(directive.args))
    path_prefix = DEFAULT_PATH
    endpoints = [DEFAULT_ENDPOINT]
    username = password = ""
    tls = None
    fall: list[str] = []
    min_lease, max_lease = DEFAULT_MIN_LEASE_TTL, DEFAULT_MAX_LEASE_TTL
    for prop in directive.block or ():
        name, values = prop.name, prop.values
        last = prop.last_token()
        if name in ("stubzones", "debug", "upstream"):
            continue  # no-ops CoreDNS still accepts
        if name == "fallthrough":
            fall = [zone for value in values or ["."] for zone in host_zones(value)]
        elif name == "path":
            if not values:
                raise controller.arg_error(last)
            path_prefix = values[0]
        elif name == "endpoint":
            if not values:
                raise controller.arg_error(last)
            endpoints = list(values)
        elif name == "tls":
            tls = tls_material(list(values), controller.config.root)
        elif name == "credentials":
            if not values:
                raise controller.arg_error(last)
            if len(values) != 2:
                raise controller.err(last, "credentials requires 2 arguments, username and password")
            username, password = values
        elif name in ("min-lease-ttl", "max-lease-ttl"):
            if not values:
                raise controller.arg_error(last)
            try:
                seconds = parse_ttl(values[0])
            except ValueError as exc:
                raise controller.err(last, f"invalid {name} value: {exc}") from None
            if name == "min-lease-ttl":
                min_lease = seconds
            else:
                max_lease = seconds
        else:
            raise controller.unknown_property(prop)
    client = EtcdClient(endpoints, controller.reactor, username=username, password=password, tls=tls)
    etcd = Etcd(zones, client, path_prefix=path_prefix, fall=fall, min_lease_ttl=min_lease,
                max_lease_ttl=max_lease)
    controller.on_startup(etcd.start)
    controller.on_shutdown(etcd.stop)
    return etcd
