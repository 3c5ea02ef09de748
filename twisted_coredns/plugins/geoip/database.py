"""A MaxMind DB file and the schemas it provides, with the errors CoreDNS gives for it."""

from __future__ import annotations

import os
from decimal import Decimal
from typing import Any

import maxminddb

CITY = 1
ASN = 2

_CITY_TYPES = frozenset((
    "DBIP-City-Lite", "DBIP-Country-Lite", "DBIP-Country", "DBIP-Location (compat=City)",
    "GeoLite2-City", "GeoIP2-City", "GeoIP2-City-Africa", "GeoIP2-City-Asia-Pacific",
    "GeoIP2-City-Europe", "GeoIP2-City-North-America", "GeoIP2-City-South-America",
    "GeoIP2-Precision-City", "GeoLite2-Country", "GeoIP2-Country", "GeoIP2-Enterprise",
    "DBIP-Location-ISP (compat=Enterprise)",
))
"""Database types geoip2-golang reads with its City method (Country ones too, for back compat)."""
_ASN_TYPES = frozenset((
    "DBIP-ASN-Lite (compat=GeoLite2-ASN)", "GeoLite2-ASN", "GeoIP2-ISP", "GeoIP2-Precision-ISP",
))
_OTHER_TYPES = frozenset(("GeoIP2-Anonymous-IP", "GeoIP2-Connection-Type", "GeoIP2-Domain"))
"""Known to geoip2-golang, but with no schema geoip uses."""


def open_database(path: str) -> tuple[Any, int]:
    """The reader and what it provides (``CITY | ASN`` bits). Raises ``ValueError`` with
    CoreDNS's text for a file that cannot be opened or read, or has no schema geoip uses."""
    try:
        reader = maxminddb.open_database(path)
    except FileNotFoundError:
        raise ValueError(f"failed to open database file: open {path}: no such file or directory") from None
    except OSError as exc:
        reason = (exc.strerror or str(exc)).lower()
        raise ValueError(f"failed to open database file: open {path}: {reason}") from None
    except (ValueError, maxminddb.InvalidDatabaseError) as exc:
        raise ValueError(f"failed to open database file: {exc}") from None
    db_type = reader.metadata().database_type
    if db_type in _CITY_TYPES:
        provides = CITY
    elif db_type in _ASN_TYPES:
        provides = ASN
    elif db_type in _OTHER_TYPES:
        provides = 0
    else:
        reader.close()
        raise ValueError(f'failed to open database file: geoip2: reader does not support the "{db_type}" '
                         "database type")
    if not provides:
        reader.close()
        raise ValueError("database does not provide any supported schema (city, asn)")
    # geoip2-golang's probe of 127.0.0.1: a file that cannot be read fails here, not per query.
    try:
        reader.get("127.0.0.1")
    except (ValueError, maxminddb.InvalidDatabaseError) as exc:
        schema = "city" if provides == CITY else "asn"
        reader.close()
        raise ValueError(f'unexpected failure looking up database "{os.path.basename(path)}" schema '
                         f'"{schema}": {exc}') from None
    return reader, provides


def go_float(value: Any) -> str:
    """A float as Go's ``strconv.FormatFloat(v, 'f', -1, 64)`` writes it: the shortest digits
    that read back the same, never an exponent; "" when the database has none."""
    if not isinstance(value, int | float):
        return ""
    text = format(Decimal(repr(float(value))), "f")
    return text.rstrip("0").rstrip(".") if "." in text else text


def _english(record: dict[str, Any], key: str) -> str:
    names = (record.get(key) or {}).get("names") or {}
    return str(names.get("en", ""))


def city_metadata(record: dict[str, Any]) -> dict[str, str]:
    """The ``geoip/...`` labels of a City record (missing fields are "", or false)."""
    country = record.get("country") or {}
    continent = record.get("continent") or {}
    location = record.get("location") or {}
    subdivisions = record.get("subdivisions") or ()
    return {
        "geoip/city/name": _english(record, "city"),
        "geoip/country/name": _english(record, "country"),
        "geoip/continent/name": _english(record, "continent"),
        "geoip/country/code": str(country.get("iso_code", "")),
        "geoip/subdivisions/code": ",".join(str(s.get("iso_code", "")) for s in subdivisions),
        "geoip/country/is_in_european_union": "true" if country.get("is_in_european_union") else "false",
        "geoip/continent/code": str(continent.get("code", "")),
        "geoip/latitude": go_float(location.get("latitude")),
        "geoip/longitude": go_float(location.get("longitude")),
        "geoip/timezone": str(location.get("time_zone", "")),
        "geoip/postalcode": str((record.get("postal") or {}).get("code", "")),
    }


def asn_metadata(record: dict[str, Any]) -> dict[str, str]:
    return {
        "geoip/asn/number": str(int(record.get("autonomous_system_number") or 0)),
        "geoip/asn/org": str(record.get("autonomous_system_organization", "")),
    }
