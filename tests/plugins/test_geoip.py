# ruff: noqa: E501 - the rows hold CoreDNS's error texts whole, one per line
"""geoip against a real server: the client's address (or its EDNS client subnet) looked up in a
City or ASN database that the test builds with mmdb-writer, the metadata shown by the log
plugin; setup errors as CoreDNS words them."""

from __future__ import annotations

import os
from typing import Any

import dns.edns
import dns.message
import dns.query
from mmdb_writer import MMDBWriter
from netaddr import IPSet
from twisted.internet.defer import inlineCallbacks
from twisted.internet.threads import deferToThread
from twisted.trial import unittest

from twisted_coredns.plugins.geoip.database import go_float
from twisted_coredns.plugins.geoip.handler import GeoIP
from twisted_coredns.testing import InProcessServer, make_request, run_setup
from twisted_coredns.testing.setup import setup_error

CITY = {
    "city": {"names": {"en": "Cambridge"}},
    "country": {"iso_code": "GB", "names": {"en": "United Kingdom"}, "is_in_european_union": False},
    "continent": {"code": "EU", "names": {"en": "Europe"}},
    "location": {"latitude": 52.2242, "longitude": 0.1315, "time_zone": "Europe/London"},
    "postal": {"code": "CB4"},
    "subdivisions": [{"iso_code": "ENG"}, {"iso_code": "TWH"}],
}
ELSEWHERE = {"city": {"names": {"en": "Exampleshire"}}, "country": {"iso_code": "DE", "is_in_european_union": True}}


def build_database(path: str, database_type: str, networks: dict[str, dict[str, Any]]) -> str:
    writer = MMDBWriter(ip_version=6, database_type=database_type, ipv4_compatible=True)
    for network, record in networks.items():
        writer.insert_network(IPSet([network]), record)
    writer.to_db_file(path)
    return path


class GeoIPTests(unittest.TestCase):
    def setUp(self) -> None:
        self.dir = os.path.abspath(self.mktemp())
        os.makedirs(self.dir)
        self.city = build_database(os.path.join(self.dir, "city.mmdb"), "GeoLite2-City",
                                   {"127.0.0.0/8": CITY, "198.51.100.0/24": ELSEWHERE})
        self.asn = build_database(os.path.join(self.dir, "asn.mmdb"), "GeoLite2-ASN",
                                  {"127.0.0.0/8": {"autonomous_system_number": 396982,
                                                   "autonomous_system_organization": "GOOGLE-CLOUD-PLATFORM"}})

    def test_city_metadata_for_the_client(self) -> None:
        geoip = run_setup(f"geoip {self.city}").handler
        self.assertIsInstance(geoip, GeoIP)
        request = make_request("example.org.", "A", remote=("127.0.0.1", 5353))
        geoip.set_metadata(request)
        got = {k: request.get_metadata(k) for k in request.metadata}
        self.assertEqual(got, {
            "geoip/city/name": "Cambridge", "geoip/country/name": "United Kingdom",
            "geoip/continent/name": "Europe", "geoip/country/code": "GB",
            "geoip/subdivisions/code": "ENG,TWH", "geoip/country/is_in_european_union": "false",
            "geoip/continent/code": "EU", "geoip/latitude": "52.2242", "geoip/longitude": "0.1315",
            "geoip/timezone": "Europe/London", "geoip/postalcode": "CB4",
        })

    def test_asn_metadata(self) -> None:
        geoip = run_setup(f"geoip {self.asn}").handler
        request = make_request("example.org.", "A", remote=("127.0.0.1", 5353))
        geoip.set_metadata(request)
        self.assertEqual(request.get_metadata("geoip/asn/number"), "396982")
        self.assertEqual(request.get_metadata("geoip/asn/org"), "GOOGLE-CLOUD-PLATFORM")
        self.assertIsNone(request.get_metadata("geoip/city/name"))

    @inlineCallbacks
    def test_log_shows_metadata_and_edns_subnet_wins(self) -> Any:
        from .small_plugin_support import captured_log

        corefile = (f". {{\n metadata\n geoip {self.city} {{\n  edns-subnet\n }}\n"
                    " log . \"{/geoip/city/name} {/geoip/country/code} {/geoip/country/is_in_european_union}\"\n"
                    " whoami\n}")
        with captured_log() as log:
            server = InProcessServer(corefile)
            yield server.start()
            self.addCleanup(server.stop)
            yield server.query("example.org.", "A")
            query = dns.message.make_query("example.org.", "A", use_edns=0,
                                           options=[dns.edns.ECSOption("198.51.100.9", 24)])
            yield deferToThread(dns.query.udp, query, "127.0.0.1", port=server.port, timeout=3)
        lines = [line for line in log.getvalue().splitlines() if "[INFO]" in line]
        self.assertIn("Cambridge GB false", lines[0])
        self.assertIn("Exampleshire DE true", lines[1])

    def test_setup_errors(self) -> None:
        unknown = build_database(os.path.join(self.dir, "unknown.mmdb"), "UnknownDbType", {"127.0.0.0/8": {}})
        anon = build_database(os.path.join(self.dir, "anon.mmdb"), "GeoIP2-Anonymous-IP", {"127.0.0.0/8": {}})
        rows = {
            "geoip": "plugin/geoip: Corefile:2 - Error during parsing: Wrong argument count or unexpected line ending after 'geoip'",
            "geoip 1 2 3": "plugin/geoip: Corefile:2 - Error during parsing: Wrong argument count or unexpected line ending after '3'",
            f"geoip {self.city} {{\n languages en fr\n}}":
                'plugin/geoip: Corefile:3 - Error during parsing: unknown property "languages"',
            f"geoip {self.city}\ngeoip {self.city}":
                "plugin/geoip: Corefile:3 - Error during parsing: configuring multiple databases is not supported",
            "geoip /invalidPath":
                "plugin/geoip: Corefile:2 - Error during parsing: failed to open database file: open /invalidPath: "
                "no such file or directory",
            f"geoip {unknown}":
                "plugin/geoip: Corefile:2 - Error during parsing: failed to open database file: geoip2: reader does not "
                'support the "UnknownDbType" database type',
            f"geoip {anon}":
                "plugin/geoip: Corefile:2 - Error during parsing: database does not provide any supported schema (city, asn)",
        }
        for text, error in rows.items():
            self.assertEqual(setup_error(text), error, text)
        self.assertIsNone(setup_error(f"geoip {self.asn} {{\n edns-subnet\n}}"))

    def test_go_float(self) -> None:
        self.assertEqual([go_float(v) for v in (52.2242, 0.00001, -3.0, None)], ["52.2242", "0.00001", "-3", ""])
