"""forward's setup: CoreDNS's own setup rows, every option's value and error text, the README's
Corefiles. Nothing here sends a packet: setup only reads the Corefile (and temporary files)."""

from __future__ import annotations

import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from twisted.trial.unittest import SkipTest, SynchronousTestCase

from twisted_coredns.corefile import CorefileError
from twisted_coredns.instance import Instance, build
from twisted_coredns.plugins.forward import addresses
from twisted_coredns.plugins.forward.forward import Forward
from twisted_coredns.plugins.forward.policy import Random, RoundRobin, Sequential
from twisted_coredns.testing.setup import SetupResult, check_setup_rows, load_setup_rows

DATA = Path(__file__).parent.parent / "data" / "forward"


def _no_lookups(hostname: str) -> list[str]:
    # Hostnames in setup rows must not be looked up off this machine: every one is unknown.
    raise addresses.AddressError(f"lookup {hostname}: no such host")


class _SetupCase(SynchronousTestCase):
    def setUp(self) -> None:
        self.patch(addresses, "system_lookup", _no_lookups)
        self.tmp = tempfile.TemporaryDirectory(prefix="forward-setup-")
        self.addCleanup(self.tmp.cleanup)
        self.dir = Path(self.tmp.name)

    def instance(self, body: str, env: dict[str, str] | None = None) -> Instance:
        return build(f". {{\n{body}\n}}\n", "Corefile", dns_port=0, env=env or {})

    def forward(self, body: str) -> Forward:
        inst = self.instance(body)
        handler = inst.blocks[0].handlers[0]
        assert isinstance(handler, Forward)
        return handler

    def error(self, body: str) -> str:
        try:
            self.instance(body)
        except CorefileError as exc:
            return str(exc)
        self.fail(f"no error for {body!r}")

    def file(self, name: str, text: str) -> str:
        path = self.dir / name
        path.write_text(text, encoding="utf-8")
        return str(path)


class CoreDNSRowsTests(_SetupCase):
    """The forward rows of CoreDNS's setup_test.go (tests/data/forward/setup_cases.json)."""

    def test_rows(self) -> None:
        files = {
            "resolv": self.file("resolv.conf", "nameserver 10.10.255.252\nnameserver 10.10.255.253"),
            "resolv_ipv6": self.file(
                "resolv-ipv6.conf", "nameserver 0388:d254:7aec:6892:9f7f:e93b:5806:1b0f%en0"
            ),
            "empty_resolv": self.file("empty.conf", "# nameserver 1.1.1.1\n# nameserver 1.0.0.1"),
            "null_resolv": self.file("null.conf", ""),
        }
        # The behaviour rows are served by test_forward.NextAndFailoverTests.
        rows = [
            row
            for row in load_setup_rows(DATA / "setup_cases.json", source_contains="coredns/coredns @4b26cce")
            if row.get("kind") != "behaviour"
        ]

        def filled(row: Mapping[str, Any]) -> str:
            text = str(row["input"])
            for key, path in files.items():
                text = text.replace("{" + key + "}", path)
            return text

        def proxies(row: Mapping[str, Any], result: SetupResult) -> None:
            where = f"row {row['row']} ({row['test_func']})"
            f = result.config.handlers[0]
            assert isinstance(f, Forward)
            if row.get("upstreams"):
                self.assertEqual(
                    [p.addr for p in f.proxies][: len(row["upstreams"])], row["upstreams"], where
                )
            if row.get("server_name"):
                self.assertEqual(f.proxies[0].tls._hostname, row["server_name"], where)

        checked = check_setup_rows(
            self, rows, text=filled, check=proxies, env={}, error_prefix="plugin/forward: "
        )
        self.assertEqual(checked, 29)

    def test_defaults(self) -> None:
        f = self.forward("forward . 127.0.0.1")
        self.assertEqual(f.from_zone, ".")
        self.assertEqual(f.max_fails, 2)
        self.assertEqual(f.hc_interval, 0.5)
        self.assertIsInstance(f.policy, Random)
        self.assertFalse(f.force_tcp or f.prefer_udp or f.failfast or f.next_on_nodata)
        self.assertEqual(f.max_connect_attempts_set, False)
        p = f.proxies[0]
        self.assertEqual((p.addr, p.protocol), ("127.0.0.1:53", "dns"))
        self.assertEqual((p.expire, p.read_timeout, p.max_age, p.max_idle_conns), (10.0, 2.0, 0.0, 0))
        self.assertEqual((p.health.domain, p.health.recursion_desired, p.health.timeout), (".", True, 1.0))

    def test_from_zone_cidr(self) -> None:
        self.assertEqual(self.forward("forward 10.9.3.0/18 127.0.0.1").from_zone, "0.9.10.in-addr.arpa.")
        self.assertEqual(self.forward("forward Example.ORG 127.0.0.1").from_zone, "example.org.")

    def test_options(self) -> None:
        f = self.forward(
            "forward example.org 127.0.0.1:5300 [::1]:5301 {\n"
            " except a.example.org B.example.org\n force_tcp\n prefer_udp\n expire 3s\n max_age 4s\n"
            " max_fails 5\n max_connect_attempts 7\n health_check 250ms no_rec domain Probe.Example\n"
            " policy round_robin\n max_concurrent 9\n next NXDOMAIN servfail\n next_on_nodata\n"
            " failfast_all_unhealthy_upstreams\n failover refused ServFail\n read_timeout 1500ms\n"
            " max_idle_conns 3\n source_address ::ffff:127.0.0.2\n}"
        )
        self.assertEqual(f.from_zone, "example.org.")
        self.assertEqual(list(f.ignored), ["a.example.org.", "b.example.org."])
        self.assertTrue(f.force_tcp and f.prefer_udp and f.next_on_nodata and f.failfast)
        self.assertEqual((f.max_fails, f.max_connect_attempts, f.max_connect_attempts_set), (5, 7, True))
        self.assertEqual(f.hc_interval, 0.25)
        self.assertIsInstance(f.policy, RoundRobin)
        self.assertEqual((f.max_concurrent, f.limit_error), (9, "concurrent queries exceeded maximum 9"))
        self.assertEqual(f.next_rcodes, {3, 2})
        self.assertEqual(f.failover_rcodes, {5, 2})
        self.assertEqual([p.addr for p in f.proxies], ["127.0.0.1:5300", "[::1]:5301"])
        for p in f.proxies:
            self.assertEqual((p.expire, p.max_age, p.read_timeout, p.max_idle_conns), (3.0, 4.0, 1.5, 3))
            self.assertEqual(p.source_address, "127.0.0.2")
            self.assertEqual(
                (p.health.domain, p.health.recursion_desired, p.health.tcp), ("probe.example.", False, True)
            )
        self.assertIsInstance(self.forward("forward . 127.0.0.1 {\npolicy sequential\n}").policy, Sequential)

    def test_multiple_forwards_chain(self) -> None:
        inst = self.instance(
            "forward 1st.example.org 127.0.0.1\nforward 2nd.example.org 127.0.0.2\n"
            "forward 3rd.example.org 127.0.0.3\nwhoami"
        )
        first = inst.blocks[0].handlers[0]
        assert isinstance(first, Forward)
        second = first.next
        assert isinstance(second, Forward)
        third = second.next
        assert isinstance(third, Forward)
        self.assertEqual(
            [first.from_zone, second.from_zone, third.from_zone],
            ["1st.example.org.", "2nd.example.org.", "3rd.example.org."],
        )
        self.assertEqual(type(third.next).__name__, "WhoAmI")

    def test_enables_chaos(self) -> None:
        self.assertTrue(self.instance("forward . 127.0.0.1").blocks[0].enable_chaos)

    def test_tls_upstreams(self) -> None:
        f = self.forward(
            "forward . tls://127.0.0.1%example.net:854 tls://127.0.0.2%example.net tls://fe80::1%example.com"
        )
        self.assertEqual([p.addr for p in f.proxies], ["127.0.0.1:854", "127.0.0.2:853", "[fe80::1]:853"])
        self.assertEqual([p.tls._hostname for p in f.proxies], ["example.net", "example.net", "example.com"])
        plain = self.forward("forward . tls://127.0.0.1")
        self.assertEqual(plain.proxies[0].tls._hostname, "127.0.0.1")  # checked against the address
        self.assertIsNone(self.forward("forward . 127.0.0.1 {\ntls\n}").proxies[0].tls)

    def test_https_upstream(self) -> None:
        p = self.forward(
            "forward . https://127.0.0.1 {\ndoh_method GET\ntls_servername dns.example\n}"
        ).proxies[0]
        self.assertEqual((p.addr, p.protocol), ("127.0.0.1:443", "https"))
        self.assertEqual(
            (p.doh.method, p.doh.url, p.doh.host), ("GET", "https://127.0.0.1:443/dns-query", b"dns.example")
        )
        self.assertEqual(self.forward("forward . https://127.0.0.1").proxies[0].doh.method, "POST")

    def test_resolv_conf_counts_as_one_to(self) -> None:
        resolv = self.file("many.conf", "".join(f"nameserver 127.0.0.{i}\n" for i in range(1, 21)))
        self.assertEqual(len(self.forward(f"forward . {resolv}").proxies), 20)

    def test_duplicates_dropped(self) -> None:
        f = self.forward("forward . 127.0.0.1 127.0.0.1:53 dns://127.0.0.1 127.0.0.2")
        self.assertEqual([p.addr for p in f.proxies], ["127.0.0.1:53", "127.0.0.2:53"])


class ErrorTextTests(_SetupCase):
    """Each error worded as CoreDNS words it (``plugin/forward: `` plus its message)."""

    def test_errors(self) -> None:
        at = "Corefile:3 - Error during parsing: "
        rows: list[tuple[str, str]] = [
            (
                "forward",
                "plugin/forward: Corefile:2 - Error during parsing: Wrong argument count or unexpected "
                "line ending after 'forward'",
            ),
            (
                "forward .",
                "plugin/forward: Corefile:2 - Error during parsing: Wrong argument count or unexpected "
                "line ending after '.'",
            ),
            ("forward . 127.0.0.1 {\nblaatl\n}", f"plugin/forward: {at}unknown property 'blaatl'"),
            ("forward . 127.0.0.1 {\npolicy random2\n}", f"plugin/forward: {at}unknown policy 'random2'"),
            (
                "forward . 127.0.0.1 {\nhealth_check 0.5s rec\n}",
                "plugin/forward: health_check: unknown option rec",
            ),
            (
                "forward . 127.0.0.1 {\nhealth_check no_rec\n}",
                'plugin/forward: time: invalid duration "no_rec"',
            ),
            (
                "forward . 127.0.0.1 {\nhealth_check 0.5s domain\n}",
                f"plugin/forward: {at}Wrong argument count or unexpected line ending after 'domain'",
            ),
            (
                "forward . 127.0.0.1 {\nhealth_check 0.5s domain example..org\n}",
                "plugin/forward: health_check: invalid domain name example..org",
            ),
            (
                "forward . 127.0.0.1 {\nhealth_check -1s\n}",
                "plugin/forward: health_check can't be negative: -1000000000",
            ),
            ("forward . 127.0.0.1 {\nexpire -1s\n}", "plugin/forward: expire can't be negative: -1s"),
            ("forward . 127.0.0.1 {\nmax_age -1s\n}", "plugin/forward: max_age can't be negative: -1s"),
            (
                "forward . 127.0.0.1 {\nexpire 30s\nmax_age 10s\n}",
                "plugin/forward: max_age (10s) must not be less than expire (30s)",
            ),
            (
                "forward . 127.0.0.1 {\nread_timeout 0s\n}",
                "plugin/forward: read_timeout must be positive: 0s",
            ),
            (
                "forward . 127.0.0.1 {\nread_timeout\n}",
                f"plugin/forward: {at}Wrong argument count or unexpected line ending after 'read_timeout'",
            ),
            (
                "forward . 127.0.0.1 {\nmax_concurrent many\n}",
                'plugin/forward: strconv.Atoi: parsing "many": invalid syntax',
            ),
            (
                "forward . 127.0.0.1 {\nmax_concurrent -4\n}",
                "plugin/forward: max_concurrent can't be negative: -4",
            ),
            (
                "forward . 127.0.0.1 {\nmax_idle_conns -1\n}",
                "plugin/forward: max_idle_conns can't be negative: -1",
            ),
            (
                "forward . 127.0.0.1 {\nmax_fails x\n}",
                'plugin/forward: strconv.ParseUint: parsing "x": invalid syntax',
            ),
            (
                "forward . 127.0.0.1 {\nmax_connect_attempts -4\n}",
                'plugin/forward: strconv.ParseUint: parsing "-4": invalid syntax',
            ),
            ("forward . 127.0.0.1 {\nmax_fails 3 4\n}", f"plugin/forward: {at}unknown property '4'"),
            (
                "forward . 127.0.0.1 {\ndoh_method PUT\n}",
                "plugin/forward: doh_method must be either POST or GET",
            ),
            (
                "forward . 127.0.0.1 {\nnext\n}",
                f"plugin/forward: {at}Wrong argument count or unexpected line ending after 'next'",
            ),
            (
                "forward . 127.0.0.1 {\nnext NXDOMAIN INVALID\n}",
                "plugin/forward: INVALID is not a valid rcode",
            ),
            (
                "forward . 127.0.0.1 {\nfailover NOERROR\n}",
                "plugin/forward: NoError cannot be used in failover",
            ),
            (
                "forward . 127.0.0.1 {\nfailover NOT_A_VALID_RCODE\n}",
                "plugin/forward: NOT_A_VALID_RCODE is not a valid rcode",
            ),
            (
                "forward . 127.0.0.1 {\nforce_tcp x\n}",
                f"plugin/forward: {at}Wrong argument count or unexpected line ending after 'x'",
            ),
            (
                "forward . 127.0.0.1 {\nfailfast_all_unhealthy_upstreams false\n}",
                f"plugin/forward: {at}Wrong argument count or unexpected line ending after 'false'",
            ),
            (
                "forward . 127.0.0.1 {\nsource_address not-an-ip\n}",
                f"plugin/forward: {at}invalid IP address: not-an-ip",
            ),
            (
                "forward . 127.0.0.1 {\nsource_address\n}",
                f"plugin/forward: {at}Wrong argument count or unexpected line ending after 'source_address'",
            ),
            (
                "forward . 127.0.0.1 {\nresolver dns.example\n}",
                'plugin/forward: resolver must be an IP address or IP:port: "dns.example"',
            ),
            (
                "forward . 127.0.0.1 {\ntls a b c d\n}",
                f"plugin/forward: {at}Wrong argument count or unexpected line ending after 'd'",
            ),
            (
                "forward . 127.0.0.1 {\nnext_on_nodata x\n}",
                f"plugin/forward: {at}Wrong argument count or unexpected line ending after 'x'",
            ),
            (
                "forward . https://1.1.1.1/ ",
                "plugin/forward: paths are not allowed in HTTPS upstream addresses "
                "(the /dns-query path is used by default): https://1.1.1.1/",
            ),
            (
                "forward . quic://127.0.0.1",
                "plugin/forward: 'quic' is not supported as a destination protocol in forward: quic://127.0.0.1:853",
            ),
            ("forward " + "x" * 64 + " 127.0.0.1", f"plugin/forward: unable to normalize '{'x' * 64}'"),
            (
                "forward . a27.0.0.1",
                'plugin/forward: failed to resolve "a27.0.0.1": lookup a27.0.0.1: no such host',
            ),
            (
                "forward . tls://127.0.0.1%example.net:854 {\ntls_servername foo\n}",
                "plugin/forward: both forward ('foo') and proxy level ('example.net') TLS servernames "
                "are set for upstream proxy 'tls://127.0.0.1:854'",
            ),
            (
                "forward . 127.0.0.1 {\ntls /nonexistent/ca.pem\n}",
                "plugin/forward: error reading /nonexistent/ca.pem: "
                "open /nonexistent/ca.pem: no such file or directory",
            ),
        ]
        for body, expected in rows:
            self.assertEqual(self.error(body), expected, body)

    def test_more_than_15(self) -> None:
        to = " ".join(f"127.0.0.{i}" for i in range(1, 17))
        self.assertEqual(self.error(f"forward . {to}"), "plugin/forward: more than 15 TOs configured: 16")
        self.assertEqual(
            len(self.forward("forward . " + " ".join(f"127.0.0.{i}" for i in range(1, 16))).proxies), 15
        )

    def test_tls_on_plain_upstream_is_ignored_but_files_are_read(self) -> None:
        # CoreDNS loads the tls files even when no upstream uses TLS.
        self.assertIn("error reading", self.error("forward . 127.0.0.1 {\ntls /nonexistent/ca.pem\n}"))


class ReadmeCorefilesTests(_SetupCase):
    """The README's examples (upstreams rewritten to loopback) all build."""

    def test_each_builds(self) -> None:
        resolv = self.file("resolv.conf", "nameserver 127.0.0.1\n")
        files = sorted((DATA / "readme").glob("forward_*.corefile"))
        self.assertEqual(len(files), 13)
        for path in files:
            text = path.read_text(encoding="utf-8")
            try:
                inst = build(text, path.name, dns_port=0, env={"FORWARD_TEST_RESOLV": resolv})
            except CorefileError as exc:
                if "cache" in str(exc) and "cache" in text:
                    raise SkipTest(f"the cache plugin is not ready yet: {exc}") from None
                self.fail(f"{path.name}: {exc}")
            forwards = [h for b in inst.blocks for h in b.handlers if isinstance(h, Forward)]
            self.assertTrue(forwards, path.name)
            for f in forwards:
                for p in f.proxies:
                    self.assertTrue(p.host.startswith("127.") or p.host == "::1", f"{path.name}: {p.addr}")

    def test_example_chain_order(self) -> None:
        resolv = self.file("resolv.conf", "nameserver 127.0.0.1\n")
        text = (DATA / "readme" / "forward_2.corefile").read_text(encoding="utf-8").replace("    cache\n", "")
        inst: Any = build(text, "Corefile", dns_port=0, env={"FORWARD_TEST_RESOLV": resolv})
        first = inst.blocks[0].handlers[0]
        self.assertEqual(
            [first.from_zone, first.next.from_zone, first.next.next.from_zone],
            ["lab.example.local.", "example.local.", "."],
        )
        self.assertEqual(first.next.next.proxies[0].addr, "127.0.0.1:53")


class AddressesTests(SynchronousTestCase):
    def test_split_zone(self) -> None:
        # CoreDNS's TestSplitZone rows.
        rows = [
            ("tls://127.0.0.1%example.net:854", "tls://127.0.0.1:854", "example.net"),
            ("tls://127.0.0.1%example.net", "tls://127.0.0.1", "example.net"),
            ("https://127.0.0.1%example.net:443", "https://127.0.0.1:443", "example.net"),
            ("https://127.0.0.1%example.net", "https://127.0.0.1", "example.net"),
            ("tls://127.0.0.1:854", "tls://127.0.0.1:854", ""),
            ("https://127.0.0.1:443", "https://127.0.0.1:443", ""),
            ("dns://127.0.0.1", "dns://127.0.0.1", ""),
            ("foo%bar:baz", "foo:baz", "bar"),
            ("tls://[::1%example.net]:853", "tls://[::1]:853", "example.net"),
            ("https://[::1%example.net]:443", "https://[::1]:443", "example.net"),
        ]
        for given, host, zone in rows:
            self.assertEqual(addresses.split_zone(given), (host, zone), given)

    def test_is_domain_name(self) -> None:
        for name, ok in [
            (".", True),
            ("example.org", True),
            ("example..org", False),
            ("", False),
            ("a" * 63 + ".org", True),
            ("a" * 64 + ".org", False),
            (".org", False),
        ]:
            self.assertEqual(addresses.is_domain_name(name), ok, name)

    def test_resolver_option_is_used_for_hostnames(self) -> None:
        calls: list[tuple[str, list[str]]] = []

        def fake(hostname: str, resolvers: list[str]) -> list[str]:
            calls.append((hostname, resolvers))
            return ["127.0.0.5"]

        self.patch(addresses, "_dns_lookup", fake)
        self.patch(addresses, "system_lookup", _no_lookups)
        inst = build(
            ". {\nforward . tls://dns.example.test%sni.example {\nresolver 127.0.0.1:5353\n}\n}\n",
            "Corefile",
            dns_port=0,
            env={},
        )
        f: Any = inst.blocks[0].handlers[0]
        self.assertEqual(calls, [("dns.example.test", ["127.0.0.1:5353"])])
        self.assertEqual((f.proxies[0].addr, f.proxies[0].tls._hostname), ("127.0.0.5:853", "sni.example"))
