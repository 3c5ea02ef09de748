# ruff: noqa: E501  (the tables are CoreDNS's test cases, one record a line)
"""etcd: its Corefile syntax and CoreDNS's errors, SkyDNS's format, and the answers of a real
in-process server reading a real etcd (Debian's etcd on a loopback port), asked with dnspython.

The lookup tables are CoreDNS's own (plugin/etcd/lookup_test.go, cname_test.go, other_test.go,
group_test.go): the same keys written to etcd, the same questions, the same answers. One etcd
serves every test of this module; each test starts its own server (a fraction of a second).
"""

from __future__ import annotations

import atexit
import socket
import time
from pathlib import Path
from typing import Any

import dns.flags
import dns.rcode
from twisted.internet import reactor
from twisted.internet.defer import inlineCallbacks
from twisted.internet.protocol import Factory, Protocol
from twisted.trial.unittest import SkipTest, SynchronousTestCase, TestCase

from twisted_coredns.instance import build
from twisted_coredns.plugins.etcd.handler import Etcd
from twisted_coredns.plugins.etcd.service import (
    BadValue,
    Service,
    domain,
    group,
    path,
    path_with_wildcard,
    target_strip,
)
from twisted_coredns.plugins.etcd.setup import parse_ttl
from twisted_coredns.testing import free_port, run_setup, serve, setup_error
from twisted_coredns.testing.certs import certificates
from twisted_coredns.testing.etcd import EtcdCluster, etcd_missing

from .logerr_support import LogCapture

DATA = Path(__file__).resolve().parent.parent / "data" / "etcd"
ZONES = (
    "skydns.test skydns_extra.test skydns_zonea.test skydns_zoneb.test skydns_zonec.test "
    "skydns_zoned.test in-addr.arpa"
)

_etcd: EtcdCluster | None = None


def shared_etcd() -> EtcdCluster:
    """The one etcd of this module, with CoreDNS's test services in it (started on first use)."""
    global _etcd
    reason = etcd_missing()
    if reason is not None:
        raise SkipTest(reason)
    if _etcd is None:
        _etcd = EtcdCluster(1).start()
        atexit.register(_etcd.stop)
        for key, value in SERVICES:
            _etcd.put(path(key, "skydns"), value)
    return _etcd


def _svc(key: str, **fields: Any) -> tuple[str, dict[str, Any]]:
    return key, fields


# plugin/etcd/lookup_test.go, cname_test.go, other_test.go, group_test.go: "Key" is a DNS name.
SERVICES = [
    _svc("a.server1.dev.region1.skydns.test.", host="dev.server1", port=8080),
    _svc("a.server1.prod.region1.skydns.test.", host="10.0.0.1", port=8080),
    _svc("b.server1.prod.region1.skydns.test.", host="10.0.0.2", port=8080),
    _svc("b.server6.prod.region1.skydns.test.", host="::1", port=8080),
    _svc("a.txt.server1.prod.region1.skydns.test.", text="sometext"),
    _svc("b.txt.server1.prod.region1.skydns.test.", text="moretext"),
    _svc("cname.prod.region1.skydns.test.", host="unresolvable.skydns.test"),
    _svc("priority.skydns.test.", host="priority.server1", priority=333, port=8080),
    _svc("a.sub.region1.skydns.test.", host="sub.server1", port=0),
    _svc("b.sub.region1.skydns.test.", host="sub.server2", port=80),
    _svc("c.sub.region1.skydns.test.", host="10.0.0.1", port=8080),
    _svc("a.targetstrip.skydns.test.", host="10.0.0.1", port=8080, targetstrip=1),
    _svc("b.cname.skydns.test.", host="a.cname.skydns.test"),
    _svc("a.cname.skydns.test.", host="b.cname.skydns.test"),
    _svc("a.ns.dns.skydns.test.", host="10.0.0.2"),
    _svc("b.ns.dns.skydns.test.", host="10.0.0.3"),
    _svc("ns1.c.ns.dns.skydns.test.", host="10.0.0.4", targetstrip=1),
    _svc("ns2.c.ns.dns.skydns.test.", host="10.0.0.5", targetstrip=1),
    _svc("x.skydns_zonea.test.", host="10.0.0.2"),
    _svc("y.skydns_zonea.test.", host="10.0.0.3"),
    _svc("x.skydns_zoneb.test.", host="10.0.0.2"),
    _svc("y.skydns_zoneb.test.", host="10.0.0.3"),
    _svc("apex.dns.skydns_zoneb.test.", host="10.0.0.4"),
    _svc("x.skydns_zonec.test.", host="10.0.0.2"),
    _svc("y.skydns_zonec.test.", host="10.0.0.3"),
    _svc("a1.apex.dns.skydns_zonec.test.", host="10.0.0.4"),
    _svc("a2.apex.dns.skydns_zonec.test.", host="10.0.0.5"),
    _svc("x.skydns_zoned.test.", host="10.0.0.2"),
    _svc("y.skydns_zoned.test.", host="10.0.0.3"),
    _svc("a1.apex.dns.skydns_zoned.test.", host="10.0.0.4"),
    _svc("a2.apex.dns.skydns_zoned.test.", host="10.0.0.5"),
    _svc("a3.apex.dns.skydns_zoned.test.", host="2003::8:1"),
    _svc("a4.apex.dns.skydns_zoned.test.", host="2003::8:2"),
    _svc("1.0.0.10.in-addr.arpa.", host="reverse.example.com"),
    # cname_test.go
    _svc("a.server1.dev.region2.skydns.test.", host="cname1.region2.skydns.test"),
    *[_svc(f"cname{i}.region2.skydns.test.", host=f"cname{i + 1}.region2.skydns.test") for i in range(1, 6)],
    _svc("cname6.region2.skydns.test.", host="endpoint.region2.skydns.test"),
    _svc("endpoint.region2.skydns.test.", host="10.240.0.1"),
    _svc("region2.skydns.test.", host="mainendpoint.region2.skydns.test"),
    _svc("cname3.region3.skydns.test.", host="cname2.region3.skydns.test"),
    _svc("cname2.region3.skydns.test.", host="cname1.region3.skydns.test"),
    _svc("cname1.region3.skydns.test.", host="endpoint.region3.skydns.test"),
    _svc("endpoint.region3.skydns.test.", text="SOME-RECORD-TEXT"),
    # other_test.go
    _svc("a.mail.skydns.test.", host="mx.skydns.test", priority=50, mail=True),
    _svc("b.mail.skydns.test.", host="mx.miek.nl", priority=50, mail=True),
    _svc("a.mx.skydns.test.", host="a.ipaddr.skydns.test", priority=30, mail=True),
    _svc("a.mx2.skydns.test.", host="a.ipaddr.skydns.test", mail=True),
    _svc("b.mx2.skydns.test.", host="b.ipaddr.skydns.test", mail=True),
    _svc("a.mx3.skydns.test.", host="a.ipaddr.skydns.test", priority=20, mail=True),
    _svc("b.mx3.skydns.test.", host="a.ipaddr.skydns.test", priority=30, mail=True),
    _svc("a.ipaddr.skydns.test.", host="172.16.1.1"),
    _svc("b.ipaddr.skydns.test.", host="172.16.1.2"),
    _svc("a1.txt.skydns.test.", text="abc"),
    _svc("a2.txt.skydns.test.", text="abc abc"),
    _svc("large400.skydns.test.", text="0" * 400),
    _svc("large600.skydns.test.", text="0" * 600),
    _svc("http.multiport.http.skydns.test.", host="10.11.11.10", port=80),
    _svc("https.multiport.http.skydns.test.", host="10.11.11.10", port=443),
    # group_test.go
    _svc("a.dom.skydns.test.", host="127.0.0.1", group="g1"),
    _svc("b.sub.dom.skydns.test.", host="127.0.0.2", group="g1"),
    _svc("a.dom2.skydns.test.", host="127.0.0.1", group="g1"),
    _svc("b.sub.dom2.skydns.test.", host="127.0.0.2", group=""),
    _svc("a.dom1.skydns.test.", host="127.0.0.1", group="g1"),
    _svc("b.sub.dom1.skydns.test.", host="127.0.0.2", group="g2"),
    _svc("a.dom3.skydns.test.", text="foo", group="g1"),
    _svc("b.sub.dom3.skydns.test.", text="bar", group="g1"),
    # an out-of-zone CNAME, answered by the next plugin
    _svc("ext.skydns.test.", host="www.ext.test"),
    _svc("srvext.skydns.test.", host="www.ext.test", port=443),
]

SOA = "SOA"  # an authority SOA, compared by owner only (its serial is the time)
NX, OK = dns.rcode.NXDOMAIN, dns.rcode.NOERROR

# (name, type, rcode, answer lines, additional lines, authority): CoreDNS's test cases.
CASES: list[tuple[str, str, int, list[str], list[str], str]] = [
    (
        "a.server1.dev.region1.skydns.test.",
        "SRV",
        OK,
        ["a.server1.dev.region1.skydns.test. 300 IN SRV 10 100 8080 dev.server1."],
        [],
        "",
    ),
    (
        "a.SERVer1.dEv.region1.skydns.tEst.",
        "SRV",
        OK,
        ["a.SERVer1.dEv.region1.skydns.tEst. 300 IN SRV 10 100 8080 dev.server1."],
        [],
        "",
    ),
    ("doesnotexist.skydns.test.", "A", NX, [], [], "skydns.test."),
    (
        "a.server1.prod.region1.skydns.test.",
        "A",
        OK,
        ["a.server1.prod.region1.skydns.test. 300 IN A 10.0.0.1"],
        [],
        "",
    ),
    (
        "a.server1.prod.region1.skydns.test.",
        "SRV",
        OK,
        ["a.server1.prod.region1.skydns.test. 300 IN SRV 10 100 8080 a.server1.prod.region1.skydns.test."],
        ["a.server1.prod.region1.skydns.test. 300 IN A 10.0.0.1"],
        "",
    ),
    (
        "b.server6.prod.region1.skydns.test.",
        "AAAA",
        OK,
        ["b.server6.prod.region1.skydns.test. 300 IN AAAA ::1"],
        [],
        "",
    ),
    (
        "server1.prod.region1.skydns.test.",
        "A",
        OK,
        [
            "server1.prod.region1.skydns.test. 300 IN A 10.0.0.1",
            "server1.prod.region1.skydns.test. 300 IN A 10.0.0.2",
        ],
        [],
        "",
    ),
    (
        "priority.skydns.test.",
        "SRV",
        OK,
        ["priority.skydns.test. 300 IN SRV 333 100 8080 priority.server1."],
        [],
        "",
    ),
    (
        "sub.region1.skydns.test.",
        "SRV",
        OK,
        [
            "sub.region1.skydns.test. 300 IN SRV 10 33 0 sub.server1.",
            "sub.region1.skydns.test. 300 IN SRV 10 33 80 sub.server2.",
            "sub.region1.skydns.test. 300 IN SRV 10 33 8080 c.sub.region1.skydns.test.",
        ],
        ["c.sub.region1.skydns.test. 300 IN A 10.0.0.1"],
        "",
    ),
    (
        "targetstrip.skydns.test.",
        "SRV",
        OK,
        ["targetstrip.skydns.test. 300 IN SRV 10 100 8080 targetstrip.skydns.test."],
        ["targetstrip.skydns.test. 300 IN A 10.0.0.1"],
        "",
    ),
    ("cname.prod.region1.skydns.test.", "A", OK, [], [], "skydns.test."),
    (
        "txt.server1.prod.region1.skydns.test.",
        "TXT",
        OK,
        [
            'txt.server1.prod.region1.skydns.test. 300 IN TXT "moretext"',
            'txt.server1.prod.region1.skydns.test. 300 IN TXT "sometext"',
        ],
        [],
        "",
    ),
    (
        "prod.*.skydns.test.",
        "SRV",
        OK,
        [
            "prod.*.skydns.test. 300 IN SRV 10 25 0 unresolvable.skydns.test.",
            "prod.*.skydns.test. 300 IN SRV 10 25 8080 a.server1.prod.region1.skydns.test.",
            "prod.*.skydns.test. 300 IN SRV 10 25 8080 b.server1.prod.region1.skydns.test.",
            "prod.*.skydns.test. 300 IN SRV 10 25 8080 b.server6.prod.region1.skydns.test.",
        ],
        [
            "a.server1.prod.region1.skydns.test. 300 IN A 10.0.0.1",
            "b.server1.prod.region1.skydns.test. 300 IN A 10.0.0.2",
            "b.server6.prod.region1.skydns.test. 300 IN AAAA ::1",
        ],
        "",
    ),
    (
        "prod.any.skydns.test.",
        "SRV",
        OK,
        [
            "prod.any.skydns.test. 300 IN SRV 10 25 0 unresolvable.skydns.test.",
            "prod.any.skydns.test. 300 IN SRV 10 25 8080 a.server1.prod.region1.skydns.test.",
            "prod.any.skydns.test. 300 IN SRV 10 25 8080 b.server1.prod.region1.skydns.test.",
            "prod.any.skydns.test. 300 IN SRV 10 25 8080 b.server6.prod.region1.skydns.test.",
        ],
        [
            "a.server1.prod.region1.skydns.test. 300 IN A 10.0.0.1",
            "b.server1.prod.region1.skydns.test. 300 IN A 10.0.0.2",
            "b.server6.prod.region1.skydns.test. 300 IN AAAA ::1",
        ],
        "",
    ),
    ("a.cname.skydns.test.", "A", OK, [], [], "skydns.test."),
    ("a.server1.dev.region1.skydns.test.", "TXT", OK, [], [], "skydns.test."),
    ("a.server1.dev.region1.skydns.test.", "HINFO", OK, [], [], "skydns.test."),
    ("a.server1.nonexistent.region1.skydns.test.", "HINFO", NX, [], [], "skydns.test."),
    (
        "skydns.test.",
        "NS",
        OK,
        [
            "skydns.test. 300 IN NS a.ns.dns.skydns.test.",
            "skydns.test. 300 IN NS b.ns.dns.skydns.test.",
            "skydns.test. 300 IN NS c.ns.dns.skydns.test.",
        ],
        [
            "a.ns.dns.skydns.test. 300 IN A 10.0.0.2",
            "b.ns.dns.skydns.test. 300 IN A 10.0.0.3",
            "c.ns.dns.skydns.test. 300 IN A 10.0.0.4",
            "c.ns.dns.skydns.test. 300 IN A 10.0.0.5",
        ],
        "",
    ),
    ("a.skydns.test.", "NS", NX, [], [], "skydns.test."),
    (
        "ns.dns.skydns.test.",
        "A",
        OK,
        [
            "ns.dns.skydns.test. 300 IN A 10.0.0.2",
            "ns.dns.skydns.test. 300 IN A 10.0.0.3",
            "ns.dns.skydns.test. 300 IN A 10.0.0.4",
            "ns.dns.skydns.test. 300 IN A 10.0.0.5",
        ],
        [],
        "",
    ),
    (
        "skydns_zonea.test.",
        "A",
        OK,
        ["skydns_zonea.test. 300 IN A 10.0.0.2", "skydns_zonea.test. 300 IN A 10.0.0.3"],
        [],
        "",
    ),
    ("skydns_zoneb.test.", "A", OK, ["skydns_zoneb.test. 300 IN A 10.0.0.4"], [], ""),
    (
        "skydns_zonec.test.",
        "A",
        OK,
        ["skydns_zonec.test. 300 IN A 10.0.0.4", "skydns_zonec.test. 300 IN A 10.0.0.5"],
        [],
        "",
    ),
    (
        "skydns_zoned.test.",
        "A",
        OK,
        ["skydns_zoned.test. 300 IN A 10.0.0.4", "skydns_zoned.test. 300 IN A 10.0.0.5"],
        [],
        "",
    ),
    (
        "skydns_zoned.test.",
        "AAAA",
        OK,
        ["skydns_zoned.test. 300 IN AAAA 2003::8:1", "skydns_zoned.test. 300 IN AAAA 2003::8:2"],
        [],
        "",
    ),
    ("1.0.0.10.in-addr.arpa.", "PTR", OK, ["1.0.0.10.in-addr.arpa. 300 IN PTR reverse.example.com."], [], ""),
    # cname_test.go
    (
        "region2.skydns.test.",
        "CNAME",
        OK,
        ["region2.skydns.test. 300 IN CNAME mainendpoint.region2.skydns.test."],
        [],
        "",
    ),
    ("endpoint.region3.skydns.test.", "CNAME", OK, [], [], "skydns.test."),
    (
        "cname3.region3.skydns.test.",
        "TXT",
        OK,
        [
            "cname3.region3.skydns.test. 300 IN CNAME cname2.region3.skydns.test.",
            "cname2.region3.skydns.test. 300 IN CNAME cname1.region3.skydns.test.",
            "cname1.region3.skydns.test. 300 IN CNAME endpoint.region3.skydns.test.",
            'endpoint.region3.skydns.test. 300 IN TXT "SOME-RECORD-TEXT"',
        ],
        [],
        "",
    ),
    (
        "a.server1.dev.region2.skydns.test.",
        "A",
        OK,
        [
            "a.server1.dev.region2.skydns.test. 300 IN CNAME cname1.region2.skydns.test.",
            *[
                f"cname{i}.region2.skydns.test. 300 IN CNAME cname{i + 1}.region2.skydns.test."
                for i in range(1, 6)
            ],
            "cname6.region2.skydns.test. 300 IN CNAME endpoint.region2.skydns.test.",
            "endpoint.region2.skydns.test. 300 IN A 10.240.0.1",
        ],
        [],
        "",
    ),
    # other_test.go
    ("a.server1.dev.region1.skydns.test.", "MX", OK, [], [], "skydns.test."),
    (
        "mx2.skydns.test.",
        "MX",
        OK,
        [
            "mx2.skydns.test. 300 IN MX 10 a.ipaddr.skydns.test.",
            "mx2.skydns.test. 300 IN MX 10 b.ipaddr.skydns.test.",
        ],
        ["a.ipaddr.skydns.test. 300 IN A 172.16.1.1", "b.ipaddr.skydns.test. 300 IN A 172.16.1.2"],
        "",
    ),
    (
        "mx3.skydns.test.",
        "MX",
        OK,
        [
            "mx3.skydns.test. 300 IN MX 20 a.ipaddr.skydns.test.",
            "mx3.skydns.test. 300 IN MX 30 a.ipaddr.skydns.test.",
        ],
        ["a.ipaddr.skydns.test. 300 IN A 172.16.1.1"],
        "",
    ),
    ("a1.txt.skydns.test.", "TXT", OK, ['a1.txt.skydns.test. 300 IN TXT "abc"'], [], ""),
    ("a2.txt.skydns.test.", "TXT", OK, ['a2.txt.skydns.test. 300 IN TXT "abc abc"'], [], ""),
    (
        "large400.skydns.test.",
        "TXT",
        OK,
        [f'large400.skydns.test. 300 IN TXT "{"0" * 255}" "{"0" * 145}"'],
        [],
        "",
    ),
    ("multiport.http.skydns.test.", "A", OK, ["multiport.http.skydns.test. 300 IN A 10.11.11.10"], [], ""),
    # group_test.go
    (
        "dom.skydns.test.",
        "A",
        OK,
        ["dom.skydns.test. 300 IN A 127.0.0.1", "dom.skydns.test. 300 IN A 127.0.0.2"],
        [],
        "",
    ),
    (
        "dom2.skydns.test.",
        "A",
        OK,
        ["dom2.skydns.test. 300 IN A 127.0.0.1", "dom2.skydns.test. 300 IN A 127.0.0.2"],
        [],
        "",
    ),
    ("dom1.skydns.test.", "A", OK, ["dom1.skydns.test. 300 IN A 127.0.0.1"], [], ""),
    (
        "dom3.skydns.test.",
        "TXT",
        OK,
        ['dom3.skydns.test. 300 IN TXT "bar"', 'dom3.skydns.test. 300 IN TXT "foo"'],
        [],
        "",
    ),
]


def _lines(section: list[Any]) -> list[str]:
    return sorted(line for rrset in section for line in rrset.to_text().splitlines())


class ServiceFormatTests(SynchronousTestCase):
    """msg: paths, names from keys, groups, and the JSON values."""

    def test_paths(self) -> None:
        self.assertEqual(path("a.skydns.test.", "skydns"), "/skydns/test/skydns/a")
        self.assertEqual(path("a.skydns.test.", "/skydns"), "/skydns/test/skydns/a")
        self.assertEqual(path(".", "skydns"), "/skydns")
        self.assertEqual(path_with_wildcard("prod.*.skydns.test.", "skydns"), ("/skydns/test/skydns", True))
        self.assertEqual(path_with_wildcard("a.any.test.", "skydns"), ("/skydns/test", True))
        self.assertEqual(path_with_wildcard("a.b.test.", "skydns"), ("/skydns/test/b/a", False))
        self.assertEqual(domain("/skydns/test/skydns/a"), "a.skydns.test.")
        self.assertEqual(domain("/skydns/test/skydns/a/"), "a.skydns.test.")
        self.assertEqual(target_strip("ns1.c.ns.dns.skydns.test.", 1), "c.ns.dns.skydns.test.")
        self.assertEqual(target_strip("a.b.", 2), "a.b.")

    def test_json_as_go_reads_it(self) -> None:
        s = Service.from_json("/k", {"Host": "10.0.0.1", "PORT": 80, "extra": [1], "text": None, "ttl": 60})
        self.assertEqual((s.host, s.port, s.text, s.ttl, s.key), ("10.0.0.1", 80, "", 60, "/k"))
        self.assertEqual(Service.from_json("/k", None), Service(key="/k"))
        for bad, reason in [
            ([1, 2], "cannot unmarshal array into Go value of type msg.Service"),
            ({"port": "80"}, "cannot unmarshal string into Go struct field Service.port of type int"),
            ({"mail": 1}, "cannot unmarshal number into Go struct field Service.mail of type bool"),
            ({"ttl": -1}, "cannot unmarshal number -1 into Go struct field Service.ttl of type uint32"),
            ({"port": 1.5}, "cannot unmarshal number 1.5"),
            ({"port": 70000}, "port 70000 does not fit in 16 bits"),
            ({"host": "a..b"}, "neither an IP address nor a domain name"),
            ({"host": "has space.test"}, "neither an IP address nor a domain name"),
            ({"host": "x" * 64 + ".test"}, "neither an IP address nor a domain name"),
        ]:
            with self.assertRaises(BadValue) as caught:
                Service.from_json("/k", bad)
            self.assertIn(reason, str(caught.exception))

    def test_group(self) -> None:
        a = Service(host="1", key="/s/t/a", group="g1")
        b = Service(host="2", key="/s/t/a/b", group="g2")
        c = Service(host="3", key="/s/t/a/c", group="")
        self.assertEqual(group([a, b, c]), [a, c])
        self.assertEqual(group([c, a]), [c, a])
        self.assertEqual(group([]), [])

    def test_parse_ttl(self) -> None:
        self.assertEqual(
            [parse_ttl(t) for t in ("30", "30s", "5m", "1h", "2h30m", "")], [30, 30, 300, 3600, 9000, 0]
        )
        for bad in ("abc", "-5s", "5000000000"):
            self.assertRaises(ValueError, parse_ttl, bad)


class SetupTests(SynchronousTestCase):
    """CoreDNS's setup_test.go rows, and the options' values."""

    def test_defaults(self) -> None:
        etcd = run_setup("etcd").handler
        assert isinstance(etcd, Etcd)
        self.assertEqual(etcd.path_prefix, "skydns")
        self.assertEqual(etcd.client.endpoints, ["http://localhost:2379"])
        self.assertEqual(list(etcd.zones), ["."])
        self.assertEqual((etcd.min_lease_ttl, etcd.max_lease_ttl), (30, 86400))

    def test_options(self) -> None:
        etcd = run_setup(
            "etcd skydns.local 10.0.0.0/24 {\n fallthrough in-addr.arpa\n path /other\n"
            " endpoint http://localhost:2379 http://localhost:3379 localhost:300\n credentials user pass\n"
            " min-lease-ttl 60\n max-lease-ttl 1h\n stubzones\n debug\n upstream 1.2.3.4\n}"
        ).handler
        assert isinstance(etcd, Etcd)
        self.assertEqual(list(etcd.zones), ["skydns.local.", "0.0.10.in-addr.arpa."])
        self.assertEqual(list(etcd.fall), ["in-addr.arpa."])
        self.assertEqual(etcd.path_prefix, "/other")
        self.assertEqual(
            etcd.client.endpoints, ["http://localhost:2379", "http://localhost:3379", "http://localhost:300"]
        )
        self.assertEqual((etcd.client.username, etcd.client.password), ("user", "pass"))
        self.assertEqual((etcd.min_lease_ttl, etcd.max_lease_ttl), (60, 3600))

    def test_errors(self) -> None:
        for text, error in [
            (
                "etcd {\n endpoints localhost:300\n}",
                "Corefile:3 - Error during parsing: unknown property 'endpoints'",
            ),
            (
                "etcd {\n endpoint http://localhost:2379\n credentials username\n}",
                "Corefile:4 - Error during parsing: credentials requires 2 arguments, username and password",
            ),
            (
                "etcd {\n credentials\n}",
                "Corefile:3 - Error during parsing: Wrong argument count or unexpected line ending after 'credentials'",
            ),
            (
                "etcd {\n path\n}",
                "Corefile:3 - Error during parsing: Wrong argument count or unexpected line "
                "ending after 'path'",
            ),
            (
                "etcd {\n endpoint\n}",
                "Corefile:3 - Error during parsing: Wrong argument count or unexpected line "
                "ending after 'endpoint'",
            ),
            (
                "etcd {\n min-lease-ttl 5x\n}",
                "Corefile:3 - Error during parsing: invalid min-lease-ttl value: "
                "invalid TTL format, use format like '30', '30s', '5m', '1h', or '2h30m'",
            ),
            (
                "etcd {\n max-lease-ttl -5s\n}",
                "Corefile:3 - Error during parsing: invalid max-lease-ttl value: TTL must be non-negative",
            ),
            ("etcd\netcd", "this plugin can only be used once per Server Block"),
            (
                "etcd {\n tls /nonexistent/ca.pem\n}",
                "error reading /nonexistent/ca.pem: open /nonexistent/ca.pem: no such file or directory",
            ),
        ]:
            self.assertEqual(setup_error(text), "plugin/etcd: " + error, text)

    def test_tls_arguments(self) -> None:
        certs = certificates()
        for args in (
            "",
            certs.ca_file,
            f"{certs.client_cert_file} {certs.client_key_file}",
            f"{certs.client_cert_file} {certs.client_key_file} {certs.ca_file}",
        ):
            self.assertIsNone(setup_error(f"etcd {{\n tls {args}\n}}"), args)

    def test_readme_corefiles_set_up(self) -> None:
        for corefile in sorted(DATA.glob("etcd_*.corefile")):
            instance = build(corefile.read_text(encoding="utf-8"), corefile.name, dns_port=0)
            etcds = [h for b in instance.blocks for h in b.handlers if isinstance(h, Etcd)]
            self.assertEqual(len(etcds), 1, corefile.name)
            self.assertEqual(etcds[0].path_prefix, "/skydns")
            self.assertEqual(etcds[0].client.endpoints, ["http://localhost:2379"])
        etcd_1 = (DATA / "etcd_1.corefile").read_text(encoding="utf-8")
        etcd = next(
            h for b in build(etcd_1, "etcd_1", dns_port=0).blocks for h in b.handlers if isinstance(h, Etcd)
        )
        self.assertEqual((etcd.min_lease_ttl, etcd.max_lease_ttl), (60, 3600))


class _Serving(TestCase):
    timeout = 30

    def setUp(self) -> None:
        self.etcd = shared_etcd()

    def endpoint(self) -> str:
        return self.etcd.endpoints[0]


class LookupTests(_Serving):
    """CoreDNS's lookup tables, asked of a real server."""

    @inlineCallbacks
    def test_coredns_cases(self) -> Any:
        srv = yield serve(
            self,
            f"{ZONES.replace(' ', ' ')} {{\n etcd {{\n endpoint {self.endpoint()}\n }}\n}}\n"
        )
        for name, rdtype, rcode, answer, extra, authority in CASES:
            where = f"{name} {rdtype}"
            r = yield srv.query(name, rdtype)
            self.assertEqual(r.rcode(), rcode, where)
            self.assertTrue(r.flags & dns.flags.AA, where)
            self.assertEqual(_lines(r.answer), sorted(answer), where)
            self.assertEqual(_lines(r.additional), sorted(extra), where)
            if authority:
                self.assertEqual(
                    [(str(s.name), dns.rdatatype.to_text(s.rdtype)) for s in r.authority],
                    [(authority, SOA)],
                    where,
                )

    @inlineCallbacks
    def test_soa_and_large_txt_over_tcp(self) -> Any:
        srv = yield serve(self, f"skydns.test {{\n etcd {{\n endpoint {self.endpoint()}\n }}\n}}\n")
        r = yield srv.query("skydns.test.", "SOA")
        soa = r.answer[0]
        self.assertEqual(
            (soa.ttl, soa[0].mname.to_text(), soa[0].rname.to_text()),
            (30, "ns.dns.skydns.test.", "hostmaster.skydns.test."),
        )
        self.assertEqual(
            (soa[0].refresh, soa[0].retry, soa[0].expire, soa[0].minimum), (7200, 1800, 86400, 30)
        )
        self.assertLessEqual(abs(soa[0].serial - time.time()), 5)
        r = yield srv.query("large600.skydns.test.", "TXT", tcp=True)
        self.assertEqual([len(s) for s in r.answer[0][0].strings], [255, 255, 90])

    @inlineCallbacks
    def test_cname_out_of_zone_goes_to_the_next_plugin(self) -> Any:
        # CoreDNS asks the rest of the server; here the plugins after etcd: forward to a block
        # of this same server that knows www.ext.test.
        port = free_port()
        srv = yield serve(
            self,
            f"skydns.test {{\n etcd {{\n endpoint {self.endpoint()}\n }}\n forward . 127.0.0.1:{port}\n}}\n"
            f"ext.test:{port} {{\n hosts {{\n  10.9.9.9 www.ext.test\n  fd00::9 www.ext.test\n }}\n}}\n"
        )
        r = yield srv.query("ext.skydns.test.", "A")
        self.assertEqual(
            _lines(r.answer),
            ["ext.skydns.test. 300 IN CNAME www.ext.test.", "www.ext.test. 3600 IN A 10.9.9.9"],
        )
        r = yield srv.query("srvext.skydns.test.", "SRV")
        self.assertEqual(_lines(r.answer), ["srvext.skydns.test. 300 IN SRV 10 100 443 www.ext.test."])
        self.assertEqual(
            _lines(r.additional), ["www.ext.test. 3600 IN A 10.9.9.9", "www.ext.test. 3600 IN AAAA fd00::9"]
        )
        # mx.miek.nl is outside the zone and the next plugin has nothing: the MX stays, no address
        r = yield srv.query("b.mail.skydns.test.", "MX")
        self.assertEqual(_lines(r.answer), ["b.mail.skydns.test. 300 IN MX 50 mx.miek.nl."])


class OptionTests(_Serving):
    def _next_block(self) -> tuple[int, str]:
        # hosts runs before etcd; the plugin after it here is forward, to a block that knows the name.
        port = free_port()
        return port, f"skydns.test:{port} {{\n hosts {{\n  10.7.7.7 nothere.skydns.test\n }}\n}}\n"

    @inlineCallbacks
    def test_fallthrough(self) -> Any:
        port, block = self._next_block()
        srv = yield serve(
            self,
            f"skydns.test {{\n etcd {{\n endpoint {self.endpoint()}\n fallthrough\n }}\n"
            f" forward . 127.0.0.1:{port}\n}}\n{block}"
        )
        r = yield srv.query("nothere.skydns.test.", "A")
        self.assertEqual(_lines(r.answer), ["nothere.skydns.test. 3600 IN A 10.7.7.7"])
        r = yield srv.query("a.server1.prod.region1.skydns.test.", "A")
        self.assertEqual(_lines(r.answer), ["a.server1.prod.region1.skydns.test. 300 IN A 10.0.0.1"])
        # fallthrough limited to other zones: NXDOMAIN here
        port, block = self._next_block()
        srv2 = yield serve(
            self,
            f"skydns.test {{\n etcd {{\n endpoint {self.endpoint()}\n fallthrough other.test\n }}\n"
            f" forward . 127.0.0.1:{port}\n}}\n{block}"
        )
        r = yield srv2.query("nothere.skydns.test.", "A")
        self.assertEqual(r.rcode(), NX)

    @inlineCallbacks
    def test_path_and_zones(self) -> Any:
        self.etcd.put("/other/test/pathed/www", {"host": "10.1.2.3", "ttl": 42})
        self.addCleanup(self.etcd.delete, "/other/test/pathed/www")
        srv = yield serve(
            self,
            f". {{\n etcd pathed.test {{\n path /other\n endpoint {self.endpoint()}\n }}\n whoami\n}}\n"
        )
        r = yield srv.query("www.pathed.test.", "A")
        self.assertEqual(_lines(r.answer), ["www.pathed.test. 42 IN A 10.1.2.3"])
        r = yield srv.query("elsewhere.test.", "A")  # outside the plugin's zones: whoami answers
        self.assertEqual(r.answer, [])
        self.assertEqual(len(r.additional), 2)

    @inlineCallbacks
    def test_lease_ttls(self) -> Any:
        lease = self.etcd.grant(100)
        self.etcd.put("/skydns/test/leased/short", {"host": "10.3.3.1"}, lease=lease)
        self.etcd.put("/skydns/test/leased/own", {"host": "10.3.3.2", "ttl": 20}, lease=lease)
        self.addCleanup(self.etcd.delete, "/skydns/test/leased", prefix=True)
        for options, ttls in [
            ("", {"short": (95, 100), "own": (20, 20)}),
            ("min-lease-ttl 200", {"short": (200, 200), "own": (20, 20)}),
            ("max-lease-ttl 10s", {"short": (10, 10), "own": (10, 10)}),
        ]:
            srv = yield serve(
                self,
                f"leased.test {{\n etcd {{\n endpoint {self.endpoint()}\n {options}\n }}\n}}\n"
            )
            for label, (low, high) in ttls.items():
                r = yield srv.query(f"{label}.leased.test.", "A")
                self.assertTrue(low <= r.answer[0].ttl <= high, (options, label, r.answer[0].ttl))

    @inlineCallbacks
    def test_credentials(self) -> Any:
        etcd = EtcdCluster(1).start()
        self.addCleanup(etcd.stop)
        etcd.etcdctl("user", "add", "root:secret")
        etcd.etcdctl("auth", "enable")
        etcd.etcdctl("--user", "root:secret", "put", "/skydns/test/auth/www", '{"host":"10.4.4.4"}')
        good = yield serve(
            self,
            f"auth.test {{\n etcd {{\n endpoint {etcd.endpoints[0]}\n credentials root secret\n }}\n}}\n"
        )
        r = yield good.query("www.auth.test.", "A")
        self.assertEqual(_lines(r.answer), ["www.auth.test. 300 IN A 10.4.4.4"])
        bad = yield serve(
            self,
            f"auth.test {{\n etcd {{\n endpoint {etcd.endpoints[0]}\n credentials root wrong\n }}\n}}\n"
        )
        r = yield bad.query("www.auth.test.", "A", timeout=8)
        self.assertEqual(r.rcode(), dns.rcode.SERVFAIL)

    @inlineCallbacks
    def test_tls(self) -> Any:
        certs = certificates()
        etcd = EtcdCluster(1, tls=certs).start()
        self.addCleanup(etcd.stop)
        etcd.put("/skydns/test/secure/www", {"host": "10.5.5.5"})
        srv = yield serve(
            self,
            f"secure.test {{\n etcd {{\n endpoint {etcd.endpoints[0]}\n"
            f" tls {certs.client_cert_file} {certs.client_key_file} {certs.ca_file}\n }}\n}}\n"
        )
        r = yield srv.query("www.secure.test.", "A")
        self.assertEqual(_lines(r.answer), ["www.secure.test. 300 IN A 10.5.5.5"])


class BadInputTests(_Serving):
    @inlineCallbacks
    def test_bad_values_are_skipped_and_warned_once(self) -> Any:
        logged = LogCapture(self, "etcd")
        put = self.etcd.put
        put("/skydns/test/bad/good", {"host": "10.6.6.6"})
        put("/skydns/test/bad/notjson", "{not json")
        put("/skydns/test/bad/types", {"host": "10.6.6.7", "port": "eighty"})
        put("/skydns/test/bad/host", {"host": "not a host name!"})
        put("/skydns/test/bad/" + "/".join(["x" * 60] * 5), {"host": "10.6.6.8"})  # a name over 255 octets
        self.addCleanup(self.etcd.delete, "/skydns/test/bad", prefix=True)
        srv = yield serve(self, f"bad.test {{\n etcd {{\n endpoint {self.endpoint()}\n }}\n}}\n")
        for _ in range(3):
            r = yield srv.query("bad.test.", "A")
            self.assertEqual(_lines(r.answer), ["bad.test. 300 IN A 10.6.6.6"])
            r = yield srv.query("bad.test.", "SRV")
            self.assertEqual(r.rcode(), OK)
        warnings = [text for level, text in logged.lines() if level == "WARNING" and "skipping key" in text]
        self.assertEqual(len(warnings), 4, warnings)
        r = yield srv.query("notjson.bad.test.", "A")  # only a bad value there: NODATA, not a crash
        self.assertEqual((r.rcode(), r.answer), (OK, []))

    @inlineCallbacks
    def test_silent_etcd_times_out_and_other_zones_stay_fast(self) -> Any:
        # An "etcd" that accepts connections and never answers.
        silent = reactor.listenTCP(0, Factory.forProtocol(Protocol), interface="127.0.0.1")  # type: ignore[attr-defined]
        self.addCleanup(silent.stopListening)
        port = silent.getHost().port
        srv = yield serve(
            self,
            f"slow.test {{\n etcd {{\n endpoint http://127.0.0.1:{port}\n }}\n}}\n. {{\n whoami\n}}\n"
        )
        started = time.monotonic()
        slow = srv.query("www.slow.test.", "A", timeout=10)
        fast = []
        for _ in range(20):
            t = time.monotonic()
            yield srv.query("other.test.", "A")
            fast.append(time.monotonic() - t)
        r = yield slow
        waited = time.monotonic() - started
        self.assertEqual(r.rcode(), dns.rcode.SERVFAIL)
        self.assertTrue(4.5 <= waited <= 7, waited)  # CoreDNS's 5 s etcdTimeout
        self.assertLess(max(fast), 0.5, fast)

    @inlineCallbacks
    def test_unreachable_at_start(self) -> Any:
        port = free_port()
        with socket.socket() as probe:  # nothing listens there
            self.assertNotEqual(probe.connect_ex(("127.0.0.1", port)), 0)
        srv = yield serve(self, f"gone.test {{\n etcd {{\n endpoint 127.0.0.1:{port}\n }}\n}}\n")
        etcd = next(h for b in srv.instance.blocks for h in b.handlers if isinstance(h, Etcd))
        self.assertFalse(etcd.ready())
        r = yield srv.query("www.gone.test.", "A", timeout=10)
        self.assertEqual(r.rcode(), dns.rcode.SERVFAIL)
        self.assertFalse(etcd.ready())
