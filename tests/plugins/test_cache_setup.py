"""Reading the ``cache`` directive: CoreDNS's setup tables and its exact error messages.

Rows of ``tests/data/cache_setup_cases.json`` and the tables below are ported from
coredns/coredns @4b26cce, Apache-2.0 (plugin/cache/setup_test.go).
"""

from __future__ import annotations

from pathlib import Path

from twisted.trial.unittest import SynchronousTestCase

from twisted_coredns.corefile import CorefileError
from twisted_coredns.instance import build
from twisted_coredns.plugins.cache.handler import Cache, Settings
from twisted_coredns.plugins.cache.storage import table_size
from twisted_coredns.testing.setup import check_setup_rows, load_setup_rows

DATA = Path(__file__).parent.parent / "data"
ARG_ERROR = (
    "plugin/cache: Corefile:3 - Error during parsing: Wrong argument count or unexpected line ending after "
)


def _settings(directive: str, key: str = ".") -> Settings:
    instance = build(f"{key} {{\n{directive}\n}}\n", "Corefile", dns_port=0)
    handler = instance.blocks[0].handlers[0]
    assert isinstance(handler, Cache)
    return handler.settings


def _error(directive: str, key: str = ".") -> str:
    try:
        build(f"{key} {{\n{directive}\n}}\n", "Corefile", dns_port=0)
    except CorefileError as exc:
        return str(exc)
    raise AssertionError(f"no error for {directive!r}")


def _block(lines: str) -> str:
    return f"cache {{\n{lines}\n}}"


class CoreDNSSetupTableTests(SynchronousTestCase):
    def test_rows(self) -> None:
        source = "coredns/coredns @4b26cce, Apache-2.0"
        rows = load_setup_rows(DATA / "cache_setup_cases.json", source_contains=source)
        self.assertEqual(len(rows), 19)
        check_setup_rows(self, rows, error_prefix="plugin/cache: ")

    def test_values(self) -> None:
        # (input, ncap, pcap, nttl, minnttl, pttl, minpttl, prefetch) as in TestSetup
        rows = [
            ("cache", 10000, 10000, 1800, 5, 3600, 5, 0),
            ("cache {}", 10000, 10000, 1800, 5, 3600, 5, 0),
            ("cache example.nl {\nsuccess 10\n}", 10000, 10, 1800, 5, 3600, 5, 0),
            ("cache example.nl {\nsuccess 10 1800 30\n}", 10000, 10, 1800, 5, 1800, 30, 0),
            ("cache example.nl {\nsuccess 10\ndenial 10 15\n}", 10, 10, 15, 5, 3600, 5, 0),
            ("cache example.nl {\nsuccess 10\ndenial 10 15 2\n}", 10, 10, 15, 2, 3600, 5, 0),
            ("cache 25 example.nl {\nsuccess 10\ndenial 10 15\n}", 10, 10, 15, 5, 25, 5, 0),
            ("cache 25 example.nl {\nsuccess 10\ndenial 10 15 5\n}", 10, 10, 15, 5, 25, 5, 0),
            ("cache aaa example.nl", 10000, 10000, 1800, 5, 3600, 5, 0),
            ("cache\t{\nprefetch 10\n}", 10000, 10000, 1800, 5, 3600, 5, 10),
        ]
        for text, ncap, pcap, nttl, minnttl, pttl, minpttl, prefetch in rows:
            s = _settings(text)
            got = (s.ncap, s.pcap, s.nttl, s.minnttl, s.pttl, s.minpttl, s.prefetch)
            self.assertEqual(got, (ncap, pcap, nttl, minnttl, pttl, minpttl, prefetch), text)

    def test_zones(self) -> None:
        self.assertEqual(_settings("cache aaa example.nl").zones, ["aaa.", "example.nl."])
        self.assertEqual(_settings("cache 10 Example.NL").zones, ["example.nl."])
        self.assertEqual(_settings("cache", key="example.org").zones, ["example.org."])
        self.assertEqual(_settings("cache").zones, ["."])

    def test_capacity_rounding(self) -> None:
        # CoreDNS: 256 shards of CAPACITY/256 entries, at least 4 each.
        self.assertEqual(table_size(10000), 9984)
        self.assertEqual(table_size(5000), 4864)
        self.assertEqual(table_size(10), 1024)
        self.assertEqual(table_size(-5), 1024)


class ErrorMessageTests(SynchronousTestCase):
    def test_messages(self) -> None:
        rows = [
            ("cache 0 example.nl", "plugin/cache: cache TTL can not be zero or negative: 0"),
            ("cache -1 example.nl", "plugin/cache: cache TTL can not be zero or negative: -1"),
            (
                "cache example.nl {\nsuccess\ndenial 10 15\n}",
                ARG_ERROR + "'success'",
            ),
            (
                "cache example.nl {\nsuccess 15\ndenial aaa\n}",
                'plugin/cache: strconv.Atoi: parsing "aaa": invalid syntax',
            ),
            (
                "cache example.nl {\npositive 15\nnegative aaa\n}",
                ARG_ERROR + "'positive'",
            ),
            ("cache 1 example.nl {\nprefetch 0 blurp\n}", 'plugin/cache: time: invalid duration "blurp"'),
            ("cache {\nprefetch -1\n}", "plugin/cache: prefetch amount should be positive: -1"),
            (
                "cache {\nprefetch 1 2 3 4\n}",
                ARG_ERROR + "'4'",
            ),
            (
                "cache {\nprefetch 1 1m 30\n}",
                "plugin/cache: last character of percentage should be `%`, but is: '0'",
            ),
            ("cache {\nprefetch 1 1m 5%\n}", "plugin/cache: percentage should fall in range [10, 90]: 5"),
            ("cache {\nprefetch 1 1m x%\n}", 'plugin/cache: strconv.Atoi: parsing "x": invalid syntax'),
            ("cache {\nsuccess 10 0\n}", "plugin/cache: cache TTL can not be zero or negative: 0"),
            ("cache {\nsuccess 10 10 -1\n}", "plugin/cache: cache min TTL can not be negative: -1"),
            ("cache {\ndenial 10 -3\n}", "plugin/cache: cache TTL can not be zero or negative: -3"),
            (
                "cache {\nsuccess 99999999999999999999\n}",
                'plugin/cache: strconv.Atoi: parsing "99999999999999999999": value out of range',
            ),
            ("cache\ncache", "plugin/cache: this plugin can only be used once per Server Block"),
            (
                "cache {\nservfail 6m\n}",
                "plugin/cache: caching SERVFAIL responses over 5 minutes is not permitted",
            ),
            ("cache {\nservfail -1s\n}", "plugin/cache: invalid negative ttl for servfail"),
            ("cache {\nservfail 20\n}", 'plugin/cache: time: missing unit in duration "20"'),
            (
                "cache {\nservfail\n}",
                ARG_ERROR + "'servfail'",
            ),
            ("cache {\nserve_stale -20m\n}", "plugin/cache: invalid negative duration for serve_stale"),
            (
                "cache {\nserve_stale 1m nono\n}",
                "plugin/cache: invalid value for serve_stale refresh mode: nono",
            ),
            (
                "cache {\nserve_stale 1h immediate 100ms\n}",
                "plugin/cache: serve_stale response TTL must be a whole number of seconds",
            ),
            (
                "cache {\nserve_stale 1h immediate 4294967296s\n}",
                "plugin/cache: serve_stale response TTL exceeds the DNS TTL range",
            ),
            (
                "cache {\nserve_stale 1h immediate -1s\n}",
                "plugin/cache: invalid negative response TTL for serve_stale",
            ),
            (
                "cache {\nserve_stale 1h immediate garbage\n}",
                'plugin/cache: invalid serve_stale response TTL: time: invalid duration "garbage"',
            ),
            (
                "cache {\nserve_stale 1h verify garbage\n}",
                'plugin/cache: invalid serve_stale verify timeout: time: invalid duration "garbage"',
            ),
            (
                "cache {\nserve_stale 1h verify -1ms\n}",
                "plugin/cache: invalid negative timeout for serve_stale verify",
            ),
            (
                "cache {\nserve_stale 1h immediate 30s 5m1s\n}",
                "plugin/cache: serve_stale failure recheck cannot exceed 5 minutes",
            ),
            (
                "cache {\nserve_stale 1h immediate 30s -1s\n}",
                "plugin/cache: invalid negative failure recheck for serve_stale",
            ),
            (
                "cache {\nserve_stale 1h immediate 30s invalid\n}",
                'plugin/cache: invalid serve_stale failure recheck: time: invalid duration "invalid"',
            ),
            (
                "cache {\nserve_stale 1h immediate 30s 30s extra\n}",
                ARG_ERROR + "'extra'",
            ),
            (
                "cache {\nserve_stale_policy prefer_positive\n}",
                "plugin/cache: serve_stale_policy requires serve_stale",
            ),
            (
                "cache {\nserve_stale\nserve_stale_policy invalid\n}",
                "plugin/cache: invalid serve_stale_policy: invalid",
            ),
            (
                "cache {\nserve_stale\nserve_stale_policy prefer_positive\n"
                "serve_stale_policy prefer_positive\n}",
                "plugin/cache: serve_stale_policy can only be specified once",
            ),
            (
                "cache {\ndisable invalid example.com\n}",
                'plugin/cache: cache type for disable must be "success" or "denial"',
            ),
            (
                "cache {\ndisable\n}",
                ARG_ERROR + "'disable'",
            ),
            (
                "cache {\nkeepttl arg1\n}",
                ARG_ERROR + "'arg1'",
            ),
            (
                "cache {\nsuccess 10 {\n}\n}",
                "plugin/cache: Corefile:3 - Error during parsing: Unexpected token '{', expecting argument",
            ),
        ]
        for text, message in rows:
            self.assertEqual(_error(text), message, text)


class ServeStaleTableTests(SynchronousTestCase):
    """TestServeStale, TestServeStaleRecheck and TestServeStalePolicy of setup_test.go."""

    def test_serve_stale(self) -> None:
        ok = [
            ("serve_stale", 3600, False, 0, 0),
            ("serve_stale 20m", 1200, False, 0, 0),
            ("serve_stale 1h20m", 4800, False, 0, 0),
            ("serve_stale 0m", 0, False, 0, 0),
            ("serve_stale 0", 0, False, 0, 0),
            ("serve_stale 0 verify", 0, True, 0, 0),
            ("serve_stale 0 immediate", 0, False, 0, 0),
            ("serve_stale 0 VERIFY", 0, True, 0, 0),
            ("serve_stale 1h immediate 30s", 3600, False, 0, 30),
            ("serve_stale 1h immediate 30s 30s", 3600, False, 0, 30),
            ("serve_stale 1h immediate 4294967295s", 3600, False, 0, 4294967295),
            ("serve_stale 1h immediate 0", 3600, False, 0, 0),
            ("serve_stale 1h verify 100ms", 3600, True, 0.1, 0),
            ("serve_stale 1h verify 100ms 30s", 3600, True, 0.1, 30),
            ("serve_stale 1h verify 100ms 30s 30s", 3600, True, 0.1, 30),
            ("serve_stale 1h verify 0", 3600, True, 0, 0),
            ("serve_stale 1h verify 0 1m", 3600, True, 0, 60),
            ("serve_stale 1h VERIFY 250ms", 3600, True, 0.25, 0),
        ]
        for text, up_to, verify, timeout, ttl in ok:
            s = _settings(_block(text))
            self.assertEqual(
                (s.stale_up_to, s.verify_stale, s.verify_timeout, s.stale_ttl),
                (up_to, verify, timeout, ttl),
                text,
            )
        bad = [
            "serve_stale 20",
            "serve_stale -20m",
            "serve_stale aa",
            "serve_stale 1m nono",
            "serve_stale 0 after nono",
            "serve_stale 1h immediate 100ms",
            "serve_stale 1h immediate 4294967296s",
            "serve_stale 1h immediate -1s",
            "serve_stale 1h immediate garbage",
            "serve_stale 1h immediate 30s extra",
            "serve_stale 1h verify -1ms",
            "serve_stale 1h verify garbage",
            "serve_stale 1h verify 100ms 500ms",
            "serve_stale 1h verify 100ms -1s",
            "serve_stale 1h verify 100ms garbage",
            "serve_stale 1h verify 100ms 30s extra",
        ]
        for text in bad:
            self.assertTrue(_error(_block(text)).startswith("plugin/cache: "), text)

    def test_recheck(self) -> None:
        for text, recheck in [
            ("serve_stale 1h immediate 30s 30s", 30),
            ("serve_stale 1h immediate 0 0", 0),
            ("serve_stale 1h verify 100ms 30s 250ms", 0.25),
            ("serve_stale 1h verify 0 0 5m", 300),
        ]:
            self.assertEqual(_settings(_block(text)).stale_recheck, recheck, text)
        for text in [
            "serve_stale 1h immediate 30s -1s",
            "serve_stale 1h immediate 30s 5m1s",
            "serve_stale 1h immediate 30s invalid",
            "serve_stale 1h immediate 30s 30s extra",
            "serve_stale 1h verify 100ms 30s -1s",
            "serve_stale 1h verify 100ms 30s 30s extra",
        ]:
            self.assertTrue(_error(_block(text)).startswith("plugin/cache: "), text)

    def test_policy(self) -> None:
        for text, positive in [
            ("serve_stale\nserve_stale_policy prefer_positive", True),
            ("serve_stale_policy PREFER_POSITIVE\nserve_stale", True),
            ("serve_stale", False),
        ]:
            self.assertEqual(_settings(_block(text)).prefer_positive, positive, text)
        for text in [
            "serve_stale_policy prefer_positive",
            "serve_stale\nserve_stale_policy",
            "serve_stale\nserve_stale_policy prefer_positive extra",
            "serve_stale\nserve_stale_policy invalid",
            "serve_stale\nserve_stale_policy prefer_positive\nserve_stale_policy prefer_positive",
        ]:
            self.assertTrue(_error(_block(text)).startswith("plugin/cache: "), text)


class OtherPropertyTests(SynchronousTestCase):
    def test_servfail(self) -> None:
        for text, ttl in [("servfail 1s", 1), ("servfail 5m", 300), ("servfail 0s", 0), ("servfail 0", 0)]:
            self.assertEqual(_settings(_block(text)).failttl, ttl, text)
        self.assertEqual(_settings("cache").failttl, 5)
        for text in [
            "servfail",
            "servfail 6m",
            "servfail 20",
            "servfail -1s",
            "servfail aa",
            "servfail 1m invalid",
        ]:
            self.assertTrue(_error(_block(text)).startswith("plugin/cache: "), text)

    def test_disable(self) -> None:
        rows = [
            ("disable denial example.com example.org", ["example.com.", "example.org."], []),
            ("disable success example.com example.org", [], ["example.com.", "example.org."]),
            ("disable denial", ["."], []),
            ("disable success", [], ["."]),
            (
                "disable denial example.com example.org\ndisable success Example.com example.org",
                ["example.com.", "example.org."],
                ["example.com.", "example.org."],
            ),
        ]
        for text, nexcept, pexcept in rows:
            s = _settings(_block(text))
            self.assertEqual((s.nexcept, s.pexcept), (nexcept, pexcept), text)
        self.assertTrue(
            _error(_block("disable invalid example.com example.org")).startswith("plugin/cache: ")
        )

    def test_keepttl(self) -> None:
        self.assertTrue(_settings(_block("keepttl")).keepttl)
        self.assertFalse(_settings("cache").keepttl)

    def test_prefetch(self) -> None:
        s = _settings(_block("prefetch 3 30s 25%"))
        self.assertEqual((s.prefetch, s.duration, s.percentage), (3, 30, 25))
        s = _settings("cache")
        self.assertEqual((s.prefetch, s.duration, s.percentage), (0, 60, 10))
