"""Server-block keys as zone addresses: coredns's plugin/normalize_test.go and register_test.go."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.trial.unittest import SynchronousTestCase

from twisted_coredns.address import (
    DEFAULT_PORTS,
    TRANSPORTS,
    AddressError,
    ZoneAddress,
    host_zones,
    parse_zone_address,
    reverse_zones,
    split_transport,
)

IP6_DB8 = "8.b.d.0.1.0.0.2.ip6.arpa."

# TestHostNormalizeExact: a key and its zones (None: refused).
NORMALIZE_EXACT = [
    (".:53", ["."]),
    ("example.org:53", ["example.org."]),
    ("example.org.:53", ["example.org."]),
    ("10.0.0.0/8:53", ["10.in-addr.arpa."]),
    ("10.0.0.0/15", ["0.10.in-addr.arpa.", "1.10.in-addr.arpa."]),
    # The Go test lists the first three zones only (it compares a prefix); a /18 has 64 /24s.
    ("10.9.3.0/18", [f"{i}.9.10.in-addr.arpa." for i in range(64)]),
    ("2001:db8::/29", [f"{c}.b.d.0.1.0.0.2.ip6.arpa." for c in "89abcdef"]),
    ("2001:db8::/30", [f"{c}.b.d.0.1.0.0.2.ip6.arpa." for c in "89ab"]),
    (
        "2001:db8::/115",
        [f"{c}.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.ip6.arpa." for c in "01"],
    ),
    (
        "2001:db8::/114",
        [f"{c}.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.ip6.arpa." for c in "0123"],
    ),
    (
        "2001:db8::/113",
        [f"{c}.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.ip6.arpa." for c in "01234567"],
    ),
    ("2001:db8::/112", ["0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.ip6.arpa."]),
    ("2001:db8::/108", ["0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.ip6.arpa."]),
    ("::fFFF:B:F/115", None),
    ("dns://example.org", ["example.org."]),
]


# TestInspectServerBlocks: a key and its zone addresses as CoreDNS prints them.
INSPECT = [
    ("example.org", ["dns://example.org.:53"]),
    ("EXAMPLE.ORG", ["dns://example.org.:53"]),
    ("example.org:1053", ["dns://example.org.:1053"]),
    ("tls://example.org", ["tls://example.org.:853"]),
    ("quic://example.org", ["quic://example.org.:853"]),
    ("grpc://example.org", ["grpc://example.org.:443"]),
    ("https://example.org.", ["https://example.org.:443"]),
    ("https3://example.org", ["https3://example.org.:443"]),
    # "multiple hosts same key": no space, so one zone with a comma in it.
    ("example.org,example.com:1053", ["dns://example.org,example.com.:1053"]),
    ("example.org.", ["dns://example.org.:53"]),
    ("sub.example.org:1054", ["dns://sub.example.org.:1054"]),
    (".", ["dns://.:53"]),
    ("dns://.:5300", ["dns://.:5300"]),
    ("10.0.0.0/15:5053", ["dns://0.10.in-addr.arpa.:5053", "dns://1.10.in-addr.arpa.:5053"]),
    ("tls://10.0.0.0/8", ["tls://10.in-addr.arpa.:853"]),
    ("0.0.0.0/0", ["dns://in-addr.arpa.:53"]),
    # What Go's strconv.Atoi accepts is a port; CoreDNS prints it back normalised.
    ("example.org:0053", ["dns://example.org.:53"]),
    ("example.org:+53", ["dns://example.org.:53"]),
    ("example.org:-1", ["dns://example.org.:-1"]),
    ("example.org:0", ["dns://example.org.:0"]),
    # What it does not is part of the zone.
    ("example.org:53a", ["dns://example.org:53a.:53"]),
    ("example.org:99999999999999999999", ["dns://example.org:99999999999999999999.:53"]),
    ("10.0.0.0/33", ["dns://10.0.0.0/33.:53"]),
    # An IPv6 address without a prefix loses its last group to the port.
    ("2001:db8::1", ["dns://2001:db8:.:1"]),
    # Lower case is Go's per-character mapping.
    ("\u0391\u03a3.", ["dns://\u03b1\u03c3.:53"]),  # no final sigma
    ("\u0130.org", ["dns://i.org.:53"]),
    ("a\\.", ["dns://a\\..:53"]),
]


# Keys CoreDNS refuses, and its error for each.
ERRORS = [
    ("example.org:", 'expecting data after last colon: "example.org:"'),
    ("dns://example.org:", 'expecting data after last colon: "example.org:"'),
    ("", 'expecting data after last colon: ""'),
    ("dns://", 'expecting data after last colon: ""'),
    (
        'a\n\t"\\\x01\x7f\u200b\U000e0001:',
        'expecting data after last colon: "a\\n\\t\\"\\\\\\x01\\x7f\\u200b\\U000e0001:"',
    ),
    (":53", "zone is not a valid domain name: "),
    ("a..b", "zone is not a valid domain name: a..b"),
    (".a", "zone is not a valid domain name: .a"),
    ("a" * 64, "zone is not a valid domain name: " + "a" * 64),
    ("a\\", "zone is not a valid domain name: a\\"),
    # The escaped dot is counted in bytes, as miekg/dns does: after "é" it no longer escapes.
    ("é\\.", "zone is not a valid domain name: é\\."),
    ("a" * 256, "specified zone is too long: 256 > 255"),
    ("é" * 128, "specified zone is too long: 256 > 255"),
    ("::fFFF:B:F/115", "invalid CIDR ::fFFF:B:F/115"),
    ("::/0", "invalid CIDR ::/0"),
    ("0:0:0:0:0:ffff:a00:0/104", "invalid CIDR 0:0:0:0:0:ffff:a00:0/104"),
]


# A key, and its transport and the rest.
SPLIT_TRANSPORT = [
    ("example.org", ("dns", "example.org")),
    ("https3://x", ("https3", "x")),
    ("https://x", ("https", "x")),
    ("unix://x", ("unix", "x")),
    ("udp://x", ("dns", "udp://x")),
    ("DNS://x", ("dns", "DNS://x")),
]

# A CIDR, and its reverse zones.
REVERSE_ZONES = [
    ("10.0.0.0/8", ["10.in-addr.arpa."]),
    ("10.0.0.0/15", ["0.10.in-addr.arpa.", "1.10.in-addr.arpa."]),
    ("192.168.1.0/24", ["1.168.192.in-addr.arpa."]),
    ("192.168.1.7/24", ["1.168.192.in-addr.arpa."]),
    ("192.168.1.1/32", ["1.1.168.192.in-addr.arpa."]),
    ("10.0.0.0/1", [f"{i}.in-addr.arpa." for i in range(128)]),
    ("2001:db8::/32", [IP6_DB8]),
    ("2001:DB8::/29", [f"{c}.b.d.0.1.0.0.2.ip6.arpa." for c in "89abcdef"]),
]

# What reverse_zones refuses.
INVALID_CIDRS = [
    "10.0.0.0",
    "10.0.0.0/33",
    "::1/128",
    "0::/8",
    "example.org",
    "10.0.0.0/8:53",
    "fe80::1%eth0/64",
]


class AddressCase(SynchronousTestCase):
    def address_error(self, row: object, call: Callable[..., object], *args: object) -> AddressError:
        """The AddressError that ``call(*args)`` raises; a failure naming ``row`` if it raises none."""
        try:
            result = call(*args)
        except AddressError as e:
            return e
        self.fail(f"AddressError not raised ({result!r} returned): {row!r}")


class TestParseZoneAddress(AddressCase):
    def test_normalize_exact(self) -> None:
        for row in NORMALIZE_EXACT:
            key, zones = row
            if zones is None:
                self.address_error(row, parse_zone_address, key)
                self.assertEqual(host_zones(key), [], msg=repr(row))
            else:
                self.assertEqual([z.zone for z in parse_zone_address(key)], zones, msg=repr(row))
                self.assertEqual(host_zones(key), zones, msg=repr(row))

    def test_inspect_server_blocks(self) -> None:
        for row in INSPECT:
            key, addresses = row
            self.assertEqual([str(z) for z in parse_zone_address(key)], addresses, msg=repr(row))

    def test_errors(self) -> None:
        for row in ERRORS:
            key, message = row
            error = self.address_error(row, parse_zone_address, key)
            self.assertEqual(str(error), message, msg=repr(row))

    def test_fully_qualified_form_is_checked_too(self) -> None:
        # 255 octets pass bare; with the dot CoreDNS adds they are too long.
        key = "a" * 63 + "." + "a" * 63 + "." + "a" * 63 + "." + "a" * 63
        with self.assertRaises(AddressError) as cm:
            parse_zone_address(key)
        self.assertEqual(str(cm.exception), "specified zone is too long: 256 > 255")

    def test_dns_port_replaces_the_dns_default_only(self) -> None:
        self.assertEqual(
            [str(z) for z in parse_zone_address("example.org", dns_port=1053)], ["dns://example.org.:1053"]
        )
        self.assertEqual(
            [str(z) for z in parse_zone_address("example.org:53", dns_port=1053)], ["dns://example.org.:53"]
        )
        self.assertEqual(
            [str(z) for z in parse_zone_address("tls://example.org", dns_port=1053)],
            ["tls://example.org.:853"],
        )

    def test_unix_has_no_default_port(self) -> None:
        self.assertEqual(parse_zone_address("unix://example.org"), [ZoneAddress("unix", "example.org.", 0)])

    def test_zone_address(self) -> None:
        (z,) = parse_zone_address("tls://Example.ORG:8853")
        self.assertEqual(z, ZoneAddress(transport="tls", zone="example.org.", port=8853))
        self.assertEqual(str(z), "tls://example.org.:8853")
        with self.assertRaises(dataclasses.FrozenInstanceError):
            z.port = 1  # type: ignore[misc]
        self.assertEqual(hash(z), hash(ZoneAddress("tls", "example.org.", 8853)))

    def test_constants(self) -> None:
        self.assertEqual(TRANSPORTS, ("dns", "tls", "quic", "grpc", "https", "https3", "unix"))
        self.assertEqual(
            DEFAULT_PORTS, {"dns": 53, "tls": 853, "quic": 853, "grpc": 443, "https": 443, "https3": 443}
        )

    def test_split_transport(self) -> None:
        for row in SPLIT_TRANSPORT:
            key, expected = row
            self.assertEqual(split_transport(key), expected, msg=repr(row))

    def test_host_zones_drops_scheme_and_port(self) -> None:
        self.assertEqual(host_zones("tls://Example.org:853"), ["example.org."])
        self.assertEqual(host_zones("example.org:"), [])

    @settings(max_examples=300, deadline=None)
    @given(key=st.text())
    def test_any_key_is_zones_or_an_address_error(self, key: str) -> None:
        try:
            addresses = parse_zone_address(key)
        except AddressError:
            return
        self.assertTrue(addresses, msg=repr(key))
        for z in addresses:
            self.assertTrue(z.zone.endswith(".") or z.zone.endswith("\\."), msg=repr((key, z)))


class TestReverseZones(AddressCase):
    def test_zones(self) -> None:
        for row in REVERSE_ZONES:
            cidr, zones = row
            self.assertEqual(reverse_zones(cidr), zones, msg=repr(row))

    def test_invalid(self) -> None:
        for cidr in INVALID_CIDRS:
            error = self.address_error(cidr, reverse_zones, cidr)
            self.assertEqual(str(error), f"invalid CIDR {cidr}", msg=repr(cidr))
