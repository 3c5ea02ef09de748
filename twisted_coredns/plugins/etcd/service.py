"""SkyDNS's record format (CoreDNS's ``plugin/etcd/msg``): one JSON value per etcd key, the key
being the record's name reversed under the path prefix (``a.skydns.test.`` is ``/skydns/test/skydns/a``).

``Service.from_json`` reads a value as Go's ``encoding/json`` reads it into ``msg.Service`` (field
names in any case, unknown fields ignored, ``null`` as absent), and also refuses what CoreDNS would
only trip over while packing the reply: a ``host`` that is neither an address nor a name, a number
that does not fit its record field. ``group`` and the path helpers follow ``msg`` line for line.
"""

from __future__ import annotations

import ipaddress
import posixpath
from dataclasses import dataclass, replace
from functools import lru_cache

import dns.exception
import dns.name

from ...dns.names import label_text

__all__ = ["BadValue", "Service", "domain", "group", "path", "path_with_wildcard", "target_strip"]

_INT64 = (-(1 << 63), (1 << 63) - 1)
_UINT32 = (0, (1 << 32) - 1)
# The fields of msg.Service, and the JSON type each must have (Go matches names in any case).
_STRINGS = ("host", "text", "group")
_INTS = ("port", "priority", "weight", "targetstrip")


class BadValue(ValueError):
    """A value CoreDNS cannot read (not JSON, wrong types) or cannot answer with (a bad host)."""


@dataclass(frozen=True, slots=True)
class Service:
    host: str = ""
    port: int = 0
    priority: int = 0
    weight: int = 0
    text: str = ""
    mail: bool = False
    ttl: int = 0
    targetstrip: int = 0
    group: str = ""
    key: str = ""

    @classmethod
    def from_json(cls, key: str, value: object) -> Service:
        """The service in ``value`` (already decoded JSON); ``BadValue`` says why it is unusable."""
        if value is None:
            return cls(key=key)  # Go: null into a struct leaves it zero
        if not isinstance(value, dict):
            raise BadValue(f"cannot unmarshal {_json_kind(value)} into Go value of type msg.Service")
        fields: dict[str, object] = {}
        for name, item in value.items():
            field = name.lower()
            if item is None or field not in _FIELD_TYPES:
                continue
            expected = _FIELD_TYPES[field]
            if expected == "string" and not isinstance(item, str):
                raise _type_error(field, item, "string")
            if expected == "bool" and not isinstance(item, bool):
                raise _type_error(field, item, "bool")
            if expected in ("int", "uint32"):
                low, high = _UINT32 if expected == "uint32" else _INT64
                if isinstance(item, bool) or not isinstance(item, int | float):
                    raise _type_error(field, item, expected)
                if (isinstance(item, float) and not item.is_integer()) or not low <= item <= high:
                    raise BadValue(f"cannot unmarshal number {item} into Go struct field Service.{field} "
                                   f"of type {expected}")
                item = int(item)
            fields[field] = item
        service = cls(key=key, **fields)  # type: ignore[arg-type]
        service._check()
        return service

    def _check(self) -> None:
        # What CoreDNS would fail on only when packing the reply (uint16 fields, a bad target).
        for field in ("priority", "weight"):
            if not 0 <= getattr(self, field) <= 0xFFFF:
                raise BadValue(f"{field} {getattr(self, field)} does not fit in 16 bits")
        if not -1 <= self.port <= 0xFFFF:  # -1: "no port", such a service gives no SRV record
            raise BadValue(f"port {self.port} does not fit in 16 bits")
        if self.host and host_address(self.host) is None and not _is_name(self.host):
            raise BadValue(f"host {self.host!r} is neither an IP address nor a domain name")

    def with_defaults(self, ttl: int, priority: int) -> Service:
        return replace(self, ttl=ttl, priority=self.priority or priority)


_FIELD_TYPES = {
    **dict.fromkeys(_STRINGS, "string"),
    **dict.fromkeys(_INTS, "int"),
    "mail": "bool",
    "ttl": "uint32",
}


def _json_kind(value: object) -> str:
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    return "array" if isinstance(value, list) else "object"


def _type_error(field: str, item: object, expected: str) -> BadValue:
    kind = _json_kind(item)
    return BadValue(f"cannot unmarshal {kind} into Go struct field Service.{field} of type {expected}")


@lru_cache(maxsize=4096)
def host_address(host: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    """Go's ``net.ParseIP`` with ``To4``: an IPv4 address (also from ``::ffff:a.b.c.d``), an IPv6
    one, or None for a name. Go knows no zone (``%eth0``), so neither does this."""
    if "%" in host:
        return None
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


@lru_cache(maxsize=4096)
def _is_name(host: str) -> bool:
    if any(c.isspace() or not c.isprintable() for c in host) or host.startswith("."):
        return False
    try:
        dns.name.from_text(host)
    except dns.exception.DNSException:
        return False
    return True


@lru_cache(maxsize=4096)
def _labels(name: str) -> tuple[str, ...]:
    """miekg's ``dns.SplitDomainName``: the labels in presentation form, escapes kept."""
    if name in ("", "."):
        return ()
    return tuple(label_text(raw) for raw in dns.name.from_text(name).labels if raw)


def _join(prefix: str, labels: tuple[str, ...] | list[str]) -> str:
    # Go's path.Join("/" + prefix + "/", labels...): joined, then cleaned ("//" and ".." folded).
    joined = "/".join(["/" + prefix + "/", *labels])
    return "/" + posixpath.normpath(joined).lstrip("/")


@lru_cache(maxsize=4096)
def path(name: str, prefix: str) -> str:
    """The etcd key of ``name``: its labels reversed under ``prefix`` (``msg.Path``)."""
    return _join(prefix, list(reversed(_labels(name))))


@lru_cache(maxsize=4096)
def path_with_wildcard(name: str, prefix: str) -> tuple[str, bool]:
    """``msg.PathWithWildcard``: the key up to the first ``*`` or ``any`` label (from the zone
    side), and whether there was one."""
    labels = list(reversed(_labels(name)))
    for i, label in enumerate(labels):
        if label in ("*", "any"):
            return _join(prefix, labels[:i]), True
    return _join(prefix, labels), False


def domain(key: str) -> str:
    """``msg.Domain``: the name of a key (its first path segment, the prefix, dropped)."""
    parts = key.split("/")
    if parts and parts[-1] == "":
        parts.pop()
    labels = list(reversed(parts[1:]))[:-1]
    if not labels:
        return "."
    if labels[-1] == ".":
        return ".".join(labels[:-1]) + "."
    text = ".".join(labels)
    return text if text.endswith(".") else text + "."


def target_strip(name: str, count: int) -> str:
    """``msg.targetStrip``: ``name`` without its first ``count`` labels (unchanged when it has
    no more labels than that)."""
    labels = _labels(name)
    if count >= len(labels):
        return name
    return ".".join(labels[count:]) + "."


def group(services: list[Service]) -> list[Service]:
    """``msg.Group``: when the least deep services carry a group, keep only that group's services
    (and those without a group); services of another group at that depth cancel the grouping."""
    if not services:
        return services
    chosen = services[0].group
    slashes = services[0].key.count("/")
    # Go leaves the depths after a ``break`` at zero, so those services never match ``slashes``.
    depths = [0] * len(services)
    for i, service in enumerate(services):
        depth = depths[i] = service.key.count("/")
        if depth < slashes:
            if service.group == "":
                break
            slashes = depth
            chosen = service.group
    if chosen == "":
        return services
    kept = []
    for service, depth in zip(services, depths, strict=True):
        if service.group == "":
            kept.append(service)
            continue
        if depth == slashes and service.group != chosen:
            return services
        if service.group == chosen:
            kept.append(service)
    return kept
