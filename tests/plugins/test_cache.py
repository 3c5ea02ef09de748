"""The cache over real sockets: what is kept, for how long, for whom, and what every option changes.

Each server runs ``cache`` in front of a counting test backend (``cache_backend.Backend``); the
cache's clock is a ``Clock`` so that TTLs pass without waiting.
"""

from __future__ import annotations

import struct
import subprocess
import sys
import time
import tracemalloc
from pathlib import Path
from typing import Any, cast

import dns.exception
import dns.flags
import dns.message
import dns.query
import dns.rcode
import dns.rdatatype
from twisted.internet import reactor
from twisted.internet.defer import Deferred, inlineCallbacks
from twisted.internet.task import Clock, deferLater
from twisted.trial.unittest import SkipTest, SynchronousTestCase, TestCase

from twisted_coredns import metrics
from twisted_coredns.dns import CLASS_IN, QNAME, SOA, A, records
from twisted_coredns.instance import build
from twisted_coredns.interfaces import IHandler
from twisted_coredns.plugin import Handler
from twisted_coredns.plugins.cache.handler import Cache, Settings
from twisted_coredns.request import Request
from twisted_coredns.response import Response, reply
from twisted_coredns.testing import InProcessServer, SubprocessServer, make_request
from twisted_coredns.testing.unbound import UnboundServer, unbound_missing

from .cache_backend import backend_registry, with_clock


def sample(name: str, **labels: str) -> float:
    total = 0.0
    for metric in metrics.REGISTRY.collect():
        for s in metric.samples:
            if s.name == name and all(s.labels.get(k) == v for k, v in labels.items()):
                total += s.value
    return total


def ttls(msg: dns.message.Message) -> list[int]:
    return [rrset.ttl for section in (msg.answer, msg.authority, msg.additional) for rrset in section]


class CacheServerCase(TestCase):
    """A server for ``corefile`` with the backend behind the cache."""

    corefile = ". {\n cache\n cachetestbackend\n}\n"

    @inlineCallbacks
    def start(self, corefile: str | None = None) -> Any:
        self.server = InProcessServer(corefile or self.corefile, registry=backend_registry())
        self.cache, self.backend, self.clock = with_clock(self.server)
        yield self.server.start()
        self.addCleanup(self.server.stop)

    def query(self, name: str, rdtype: str = "A", **kw: Any) -> Deferred[dns.message.Message]:
        return self.server.query(name, rdtype, **kw)

    def calls(self, name: str, rdtype: str = "A") -> int:
        return self.backend.calls[(name.lower(), dns.rdatatype.from_text(rdtype))]


class HitTests(CacheServerCase):
    @inlineCallbacks
    def test_second_query_is_a_hit_with_ttl_counting_down(self) -> Any:
        yield self.start()
        first = yield self.query("www.example.org.")
        self.assertEqual(self.calls("www.example.org."), 1)
        self.assertEqual(set(ttls(first)), {300})  # every TTL set to the cached duration
        self.clock.advance(10)
        second = yield self.query("WWW.Example.org.")
        self.assertEqual(self.calls("www.example.org."), 1)
        self.assertEqual(second.rcode(), dns.rcode.NOERROR)
        self.assertEqual(str(second.question[0].name), "WWW.Example.org.")
        self.assertEqual(second.answer, first.answer)
        self.assertEqual(set(ttls(second)), {290})
        self.assertTrue(second.flags & dns.flags.AA)
        self.assertTrue(second.flags & dns.flags.RA)
        self.assertEqual(len(second.additional), 1)

    @inlineCallbacks
    def test_entry_expires(self) -> Any:
        yield self.start()
        yield self.query("ttl30.example.org.")
        self.clock.advance(29)
        yield self.query("ttl30.example.org.")
        self.assertEqual(self.calls("ttl30.example.org."), 1)
        self.clock.advance(1)
        yield self.query("ttl30.example.org.")
        self.assertEqual(self.calls("ttl30.example.org."), 2)

    @inlineCallbacks
    def test_type_and_class_are_keys(self) -> Any:
        yield self.start()
        yield self.query("k.example.org.", "A")
        yield self.query("k.example.org.", "AAAA")
        self.assertEqual(self.calls("k.example.org.", "A"), 1)
        self.assertEqual(self.calls("k.example.org.", "AAAA"), 1)

    @inlineCallbacks
    def test_do_and_cd_are_kept_apart(self) -> Any:
        yield self.start()
        yield self.query("dnssec.example.org.", edns=0)
        yield self.query("dnssec.example.org.", edns=0, want_dnssec=True)
        self.assertEqual(self.calls("dnssec.example.org."), 2)
        yield self.query("dnssec.example.org.", edns=0, want_dnssec=True)
        self.assertEqual(self.calls("dnssec.example.org."), 2)
        yield self.query("dnssec.example.org.", flags=dns.flags.RD | dns.flags.CD)
        self.assertEqual(self.calls("dnssec.example.org."), 3)
        reply_cd = yield self.query("dnssec.example.org.", flags=dns.flags.RD | dns.flags.CD)
        self.assertEqual(self.calls("dnssec.example.org."), 3)
        self.assertTrue(reply_cd.flags & dns.flags.CD)
        # the EDNS presence alone is not part of the key (CoreDNS keys on DO, not on OPT)
        yield self.query("dnssec.example.org.")
        self.assertEqual(self.calls("dnssec.example.org."), 3)

    @inlineCallbacks
    def test_opt_belongs_to_each_client(self) -> Any:
        yield self.start()
        first = yield self.query("opt.example.org.", edns=0, payload=4000)
        self.assertEqual(first.edns, 0)
        plain = yield self.query("opt.example.org.")
        self.assertEqual(plain.edns, -1)
        self.assertEqual(len(plain.answer), 1)
        sized = yield self.query("opt.example.org.", edns=0, payload=1400)
        self.assertEqual(sized.payload, 1400)
        self.assertEqual(self.calls("opt.example.org."), 1)

    @inlineCallbacks
    def test_tcp_and_udp_share_entries(self) -> Any:
        yield self.start()
        yield self.query("proto.example.org.", tcp=True)
        over_udp = yield self.query("proto.example.org.")
        self.assertEqual(self.calls("proto.example.org."), 1)
        self.assertEqual(len(over_udp.answer), 1)

    @inlineCallbacks
    def test_ad_bit_only_for_clients_that_want_it(self) -> Any:
        yield self.start()
        # the query passed on carries AD, so a validating upstream can say so
        plain = yield self.query("ad.example.org.")
        self.assertTrue(self.backend.requests[-1].flags & 0x0020)
        self.assertFalse(plain.flags & dns.flags.AD)
        hit = yield self.query("ad.example.org.")
        self.assertFalse(hit.flags & dns.flags.AD)
        asked = yield self.query("ad.example.org.", flags=dns.flags.RD | dns.flags.AD)
        self.assertTrue(asked.flags & dns.flags.AD)
        self.assertEqual(self.calls("ad.example.org."), 1)
        dnssec = yield self.query("ad.example.org.", edns=0, want_dnssec=True)
        self.assertTrue(dnssec.flags & dns.flags.AD)


class TTLTests(CacheServerCase):
    @inlineCallbacks
    def test_max_ttl_argument(self) -> Any:
        yield self.start(". {\n cache 30\n cachetestbackend\n}\n")
        first = yield self.query("cap.example.org.")
        self.assertEqual(set(ttls(first)), {30})
        self.clock.advance(31)
        yield self.query("cap.example.org.")
        self.assertEqual(self.calls("cap.example.org."), 2)

    @inlineCallbacks
    def test_default_max_ttl_is_3600(self) -> Any:
        yield self.start()
        first = yield self.query("ttl86400.example.org.")
        self.assertEqual(set(ttls(first)), {3600})

    @inlineCallbacks
    def test_default_min_ttl_is_5(self) -> Any:
        yield self.start()
        first = yield self.query("ttl1.example.org.")
        self.assertEqual(set(ttls(first)), {5})
        self.clock.advance(4)
        yield self.query("ttl1.example.org.")
        self.assertEqual(self.calls("ttl1.example.org."), 1)
        self.clock.advance(1)
        yield self.query("ttl1.example.org.")
        self.assertEqual(self.calls("ttl1.example.org."), 2)

    @inlineCallbacks
    def test_zero_ttl_is_cached_for_the_minimum(self) -> Any:
        yield self.start()
        yield self.query("ttl0.example.org.")
        yield self.query("ttl0.example.org.")
        self.assertEqual(self.calls("ttl0.example.org."), 1)

    @inlineCallbacks
    def test_success_ttl_and_minttl(self) -> Any:
        yield self.start(". {\n cache {\n  success 2048 60 20\n }\n cachetestbackend\n}\n")
        capped = yield self.query("s.example.org.")
        self.assertEqual(set(ttls(capped)), {60})
        floored = yield self.query("ttl2.example.org.")
        self.assertEqual(set(ttls(floored)), {20})
        self.clock.advance(19)
        yield self.query("ttl2.example.org.")
        self.assertEqual(self.calls("ttl2.example.org."), 1)

    @inlineCallbacks
    def test_denial_ttl(self) -> Any:
        yield self.start()
        nx = yield self.query("ttl7200.nx.example.org.")
        self.assertEqual(nx.rcode(), dns.rcode.NXDOMAIN)
        self.assertEqual(set(ttls(nx)), {1800})  # default denial maximum
        yield self.start(". {\n cache {\n  denial 2048 100 50\n }\n cachetestbackend\n}\n")
        capped = yield self.query("ttl7200.nx.example.org.")
        self.assertEqual(set(ttls(capped)), {100})
        floored = yield self.query("ttl10.nx.example.org.")
        self.assertEqual(set(ttls(floored)), {50})
        self.clock.advance(49)
        again = yield self.query("ttl10.nx.example.org.")
        self.assertEqual(again.rcode(), dns.rcode.NXDOMAIN)
        self.assertEqual(set(ttls(again)), {1})
        self.assertEqual(self.calls("ttl10.nx.example.org."), 1)

    @inlineCallbacks
    def test_keepttl(self) -> Any:
        yield self.start(". {\n cache {\n  keepttl\n }\n cachetestbackend\n}\n")
        yield self.query("keep.example.org.")
        self.clock.advance(100)
        hit = yield self.query("keep.example.org.")
        self.assertEqual(set(ttls(hit)), {300})
        self.assertEqual(self.calls("keep.example.org."), 1)
        self.clock.advance(200)
        yield self.query("keep.example.org.")  # still removed when the TTL runs out
        self.assertEqual(self.calls("keep.example.org."), 2)


class ClassificationTests(CacheServerCase):
    @inlineCallbacks
    def test_nxdomain_with_soa_is_cached_as_denial(self) -> Any:
        yield self.start()
        before = sample("coredns_cache_hits_total", type="denial")
        yield self.query("a.nx.example.org.")
        hit = yield self.query("a.nx.example.org.")
        self.assertEqual(hit.rcode(), dns.rcode.NXDOMAIN)
        self.assertEqual(len(hit.authority), 1)
        self.assertEqual(self.calls("a.nx.example.org."), 1)
        self.assertEqual(sample("coredns_cache_hits_total", type="denial") - before, 1)

    @inlineCallbacks
    def test_nxdomain_without_soa_is_not_cached(self) -> Any:
        yield self.start()
        yield self.query("a.nxnosoa.example.org.")
        yield self.query("a.nxnosoa.example.org.")
        self.assertEqual(self.calls("a.nxnosoa.example.org."), 2)

    @inlineCallbacks
    def test_nodata_is_cached_as_denial(self) -> Any:
        yield self.start()
        yield self.query("ttl60.nodata.example.org.")
        hit = yield self.query("ttl60.nodata.example.org.")
        self.assertEqual(self.calls("ttl60.nodata.example.org."), 1)
        self.assertEqual(len(self.cache.ncache), 1)
        self.assertEqual(len(self.cache.pcache), 0)
        self.assertEqual(hit.rcode(), dns.rcode.NOERROR)
        self.assertEqual(len(hit.answer), 0)

    @inlineCallbacks
    def test_delegation_is_cached_for_the_minimum(self) -> Any:
        yield self.start()
        first = yield self.query("x.deleg.example.org.")
        self.assertEqual(set(ttls(first)), {5})
        yield self.query("x.deleg.example.org.")
        self.assertEqual(self.calls("x.deleg.example.org."), 1)

    @inlineCallbacks
    def test_dangling_cname_without_soa_is_not_cached(self) -> Any:
        yield self.start()
        yield self.query("dangling.example.org.")
        yield self.query("dangling.example.org.")
        self.assertEqual(self.calls("dangling.example.org."), 2)

    @inlineCallbacks
    def test_refused_is_never_cached(self) -> Any:
        yield self.start()
        yield self.query("refused.example.org.")
        yield self.query("refused.example.org.")
        self.assertEqual(self.calls("refused.example.org."), 2)

    @inlineCallbacks
    def test_servfail_cached_five_seconds(self) -> Any:
        yield self.start()
        first = yield self.query("servfail.example.org.")
        self.assertEqual(first.rcode(), dns.rcode.SERVFAIL)
        self.clock.advance(4)
        yield self.query("servfail.example.org.")
        self.assertEqual(self.calls("servfail.example.org."), 1)
        self.clock.advance(1)
        yield self.query("servfail.example.org.")
        self.assertEqual(self.calls("servfail.example.org."), 2)

    @inlineCallbacks
    def test_servfail_duration(self) -> Any:
        yield self.start(". {\n cache {\n  servfail 30s\n }\n cachetestbackend\n}\n")
        yield self.query("servfail.example.org.")
        self.clock.advance(29)
        yield self.query("servfail.example.org.")
        self.assertEqual(self.calls("servfail.example.org."), 1)

    @inlineCallbacks
    def test_servfail_zero_disables(self) -> Any:
        yield self.start(". {\n cache {\n  servfail 0\n }\n cachetestbackend\n}\n")
        yield self.query("servfail.example.org.")
        yield self.query("servfail.example.org.")
        self.assertEqual(self.calls("servfail.example.org."), 2)

    @inlineCallbacks
    def test_servfail_does_not_hide_a_good_answer(self) -> Any:
        yield self.start(". {\n cache {\n  prefetch 1\n }\n cachetestbackend\n}\n")
        yield self.query("flaky.ttl100.example.org.")
        self.clock.advance(95)
        self.backend.answer = self.backend.servfail
        yield self.query("flaky.ttl100.example.org.")  # the prefetch brings a SERVFAIL home
        self.assertEqual(self.calls("flaky.ttl100.example.org."), 2)
        self.assertEqual(len(self.cache.ncache), 1)
        hit = yield self.query("flaky.ttl100.example.org.")
        self.assertEqual(hit.rcode(), dns.rcode.NOERROR)
        self.assertEqual(len(hit.answer), 1)

    @inlineCallbacks
    def test_truncated_not_cached(self) -> Any:
        yield self.start()
        first = yield self.query("tc.example.org.")
        self.assertTrue(first.flags & dns.flags.TC)
        yield self.query("tc.example.org.")
        self.assertEqual(self.calls("tc.example.org."), 2)

    @inlineCallbacks
    def test_other_question_is_dropped(self) -> Any:
        yield self.start()
        before = sample("coredns_cache_drops_total")
        with self.assertRaises((dns.exception.Timeout, dns.query.BadResponse)):
            # dnspython refuses the mismatched reply itself; the server still sent it
            yield self.query("other.example.org.", timeout=0.5)
        self.assertEqual(self.calls("other.example.org."), 1)
        self.assertEqual(sample("coredns_cache_drops_total") - before, 1)
        self.assertEqual(len(self.cache.pcache), 0)

    @inlineCallbacks
    def test_not_written_passes_through(self) -> Any:
        yield self.start()
        self.backend.answer = lambda r: Response.not_written(2, "nothing", "cachetestbackend")
        first = yield self.query("silent.example.org.")
        self.assertEqual(first.rcode(), dns.rcode.SERVFAIL)
        yield self.query("silent.example.org.")
        self.assertEqual(self.calls("silent.example.org."), 2)

    @inlineCallbacks
    def test_deferred_answers_are_cached(self) -> Any:
        yield self.start()
        self.backend.delay = True
        d = self.query("later.example.org.")
        yield deferLater(reactor, 0.2, self.backend.release)
        first = yield d
        self.assertEqual(len(first.answer), 1)
        second = yield self.query("later.example.org.")
        self.assertEqual(second.answer, first.answer)
        self.assertEqual(self.calls("later.example.org."), 1)


class ZoneTests(CacheServerCase):
    @inlineCallbacks
    def test_zones_restrict_caching(self) -> Any:
        yield self.start(". {\n cache example.org\n cachetestbackend\n}\n")
        for _ in range(2):
            yield self.query("www.example.org.")
            yield self.query("www.example.net.")
            yield self.query("example.org.")
        self.assertEqual(self.calls("www.example.org."), 1)
        self.assertEqual(self.calls("example.org."), 1)
        self.assertEqual(self.calls("www.example.net."), 2)

    @inlineCallbacks
    def test_block_zones_are_the_default(self) -> Any:
        yield self.start("example.org {\n cache\n cachetestbackend\n}\n")
        self.assertEqual(self.cache.settings.zones, ["example.org."])
        yield self.query("a.example.org.")
        yield self.query("a.example.org.")
        self.assertEqual(self.calls("a.example.org."), 1)

    @inlineCallbacks
    def test_disable_success(self) -> Any:
        yield self.start(". {\n cache {\n  disable success sub.example.org\n }\n cachetestbackend\n}\n")
        for _ in range(2):
            yield self.query("a.sub.example.org.")
            yield self.query("a.example.org.")
            yield self.query("nx.sub.example.org.")
        self.assertEqual(self.calls("a.sub.example.org."), 2)
        self.assertEqual(self.calls("a.example.org."), 1)
        self.assertEqual(self.calls("nx.sub.example.org."), 1)

    @inlineCallbacks
    def test_disable_denial_everywhere(self) -> Any:
        yield self.start(". {\n cache {\n  disable denial\n }\n cachetestbackend\n}\n")
        for _ in range(2):
            yield self.query("nx.example.org.")
            yield self.query("servfail.example.org.")
            yield self.query("a.example.org.")
        self.assertEqual(self.calls("nx.example.org."), 2)
        self.assertEqual(self.calls("servfail.example.org."), 2)
        self.assertEqual(self.calls("a.example.org."), 1)


class CapacityTests(CacheServerCase):
    @inlineCallbacks
    def test_full_table_evicts(self) -> Any:
        yield self.start(". {\n cache {\n  success 1024\n }\n cachetestbackend\n}\n")
        before = sample("coredns_cache_evictions_total", type="success")
        cache = self.cache
        for i in range(1024):
            cache.serve(make_request(f"n{i}.example.org."))
        self.assertEqual(len(cache.pcache), 1024)
        self.assertEqual(sample("coredns_cache_evictions_total", type="success"), before)
        yield self.query("one-more.example.org.")
        self.assertEqual(len(cache.pcache), 1024)
        self.assertEqual(sample("coredns_cache_evictions_total", type="success") - before, 1)
        # the entry stored longest ago made room
        cache.serve(make_request("n0.example.org."))
        self.assertEqual(self.calls("n0.example.org."), 2)
        cache.serve(make_request("n5.example.org."))
        self.assertEqual(self.calls("n5.example.org."), 1)

    @inlineCallbacks
    def test_denial_capacity(self) -> Any:
        yield self.start(". {\n cache {\n  denial 1024\n }\n cachetestbackend\n}\n")
        before = sample("coredns_cache_evictions_total", type="denial")
        for i in range(1025):
            self.cache.serve(make_request(f"n{i}.nx.example.org."))
        self.assertEqual(len(self.cache.ncache), 1024)
        self.assertEqual(sample("coredns_cache_evictions_total", type="denial") - before, 1)
        yield self.query("n0.nx.example.org.")
        self.assertEqual(self.calls("n0.nx.example.org."), 2)

    @inlineCallbacks
    def test_entries_gauge(self) -> Any:
        yield self.start()
        yield self.query("g1.example.org.")
        yield self.query("g2.nx.example.org.")
        server = self.server.instance.groups[0].address
        self.assertEqual(sample("coredns_cache_entries", server=server, type="success", zones="."), 1)
        self.assertEqual(sample("coredns_cache_entries", server=server, type="denial", zones="."), 1)


class MetricsTests(CacheServerCase):
    @inlineCallbacks
    def test_requests_hits_misses(self) -> Any:
        yield self.start()
        names = ("coredns_cache_requests_total", "coredns_cache_misses_total")
        before = [sample(n) for n in names] + [sample("coredns_cache_hits_total", type="success")]
        yield self.query("m.example.org.")
        yield self.query("m.example.org.")
        yield self.query("m.example.org.")
        after = [sample(n) for n in names] + [sample("coredns_cache_hits_total", type="success")]
        self.assertEqual([a - b for a, b in zip(after, before, strict=True)], [3, 1, 2])

    def test_metric_names_and_labels(self) -> None:
        from twisted_coredns.plugins.cache import metrics as cm

        expected = {
            "coredns_cache_entries": ("server", "type", "zones", "view"),
            "coredns_cache_requests": ("server", "zones", "view"),
            "coredns_cache_hits": ("server", "type", "zones", "view"),
            "coredns_cache_misses": ("server", "zones", "view"),
            "coredns_cache_prefetch": ("server", "zones", "view"),
            "coredns_cache_drops": ("server", "zones", "view"),
            "coredns_cache_served_stale": ("server", "zones", "view"),
            "coredns_cache_evictions": ("server", "type", "zones", "view"),
        }
        made = [
            cm.entries,
            cm.requests,
            cm.hits,
            cm.misses,
            cm.prefetches,
            cm.drops,
            cm.served_stale,
            cm.evictions,
        ]
        got = {m._name: tuple(m._labelnames) for m in made}
        self.assertEqual(got, expected)


class PrefetchTests(CacheServerCase):
    @inlineCallbacks
    def test_prefetch_refreshes_popular_entry(self) -> Any:
        yield self.start(". {\n cache {\n  prefetch 1\n }\n cachetestbackend\n}\n")
        before = sample("coredns_cache_prefetch_total")
        first = yield self.query("pf.ttl100.example.org.")
        self.clock.advance(50)
        yield self.query("pf.ttl100.example.org.")  # 50 s left: above 10 %
        self.assertEqual(self.calls("pf.ttl100.example.org."), 1)
        self.clock.advance(41)
        hit = yield self.query("pf.ttl100.example.org.")  # 9 s left: prefetch, answer from the old entry
        self.assertEqual(set(ttls(hit)), {9})
        self.assertEqual(hit.answer, first.answer)
        self.assertEqual(self.calls("pf.ttl100.example.org."), 2)
        self.assertEqual(sample("coredns_cache_prefetch_total") - before, 1)
        fresh = yield self.query("pf.ttl100.example.org.")
        self.assertEqual(set(ttls(fresh)), {100})
        self.assertNotEqual(fresh.answer, first.answer)
        # the prefetch went down over TCP, with metadata of its own
        self.assertEqual(self.backend.requests[-1].proto, "tcp")

    @inlineCallbacks
    def test_prefetch_amount(self) -> Any:
        yield self.start(". {\n cache {\n  prefetch 3\n }\n cachetestbackend\n}\n")
        yield self.query("pf.ttl100.example.org.")
        self.clock.advance(95)
        yield self.query("pf.ttl100.example.org.")
        yield self.query("pf.ttl100.example.org.")
        self.assertEqual(self.calls("pf.ttl100.example.org."), 1)
        yield self.query("pf.ttl100.example.org.")  # third hit within a minute
        self.assertEqual(self.calls("pf.ttl100.example.org."), 2)

    @inlineCallbacks
    def test_prefetch_duration_resets_popularity(self) -> Any:
        yield self.start(". {\n cache {\n  prefetch 2 10s\n }\n cachetestbackend\n}\n")
        yield self.query("pf.ttl100.example.org.")
        self.clock.advance(80)
        yield self.query("pf.ttl100.example.org.")
        self.clock.advance(11)  # a gap longer than 10s: the count starts again
        yield self.query("pf.ttl100.example.org.")
        self.assertEqual(self.calls("pf.ttl100.example.org."), 1)
        yield self.query("pf.ttl100.example.org.")
        self.assertEqual(self.calls("pf.ttl100.example.org."), 2)

    @inlineCallbacks
    def test_prefetch_percentage(self) -> Any:
        yield self.start(". {\n cache {\n  prefetch 1 1m 50%\n }\n cachetestbackend\n}\n")
        yield self.query("pf.ttl100.example.org.")
        self.clock.advance(40)
        yield self.query("pf.ttl100.example.org.")
        self.assertEqual(self.calls("pf.ttl100.example.org."), 1)
        self.clock.advance(11)  # 49 s left of 100: below 50 %
        yield self.query("pf.ttl100.example.org.")
        self.assertEqual(self.calls("pf.ttl100.example.org."), 2)

    @inlineCallbacks
    def test_one_prefetch_in_flight(self) -> Any:
        yield self.start(". {\n cache {\n  prefetch 1\n }\n cachetestbackend\n}\n")
        yield self.query("pf.ttl100.example.org.")
        self.clock.advance(95)
        self.backend.delay = True
        for _ in range(3):
            yield self.query("pf.ttl100.example.org.")
        self.assertEqual(self.calls("pf.ttl100.example.org."), 2)
        self.backend.release()
        fresh = yield self.query("pf.ttl100.example.org.")
        self.assertEqual(set(ttls(fresh)), {100})

    @inlineCallbacks
    def test_no_prefetch_by_default(self) -> Any:
        yield self.start()
        yield self.query("pf.ttl100.example.org.")
        self.clock.advance(99)
        for _ in range(3):
            yield self.query("pf.ttl100.example.org.")
        self.assertEqual(self.calls("pf.ttl100.example.org."), 1)


class ServeStaleTests(CacheServerCase):
    @inlineCallbacks
    def test_expired_entry_served_then_refreshed(self) -> Any:
        yield self.start(". {\n cache {\n  serve_stale\n }\n cachetestbackend\n}\n")
        before = sample("coredns_cache_served_stale_total")
        first = yield self.query("st.ttl10.example.org.")
        self.clock.advance(20)
        self.backend.delay = True
        stale = yield self.query("st.ttl10.example.org.")
        self.assertEqual(stale.answer, first.answer)
        self.assertEqual(set(ttls(stale)), {0})
        self.assertEqual(sample("coredns_cache_served_stale_total") - before, 1)
        self.assertEqual(self.calls("st.ttl10.example.org."), 2)  # the refresh went out
        self.backend.release()
        fresh = yield self.query("st.ttl10.example.org.")
        self.assertEqual(set(ttls(fresh)), {10})
        self.assertNotEqual(fresh.answer, first.answer)

    @inlineCallbacks
    def test_failed_refresh_keeps_stale_entry(self) -> Any:
        yield self.start(". {\n cache {\n  serve_stale\n }\n cachetestbackend\n}\n")
        first = yield self.query("st.ttl10.example.org.")
        self.clock.advance(20)
        self.backend.answer = self.backend.servfail
        for _ in range(2):
            stale = yield self.query("st.ttl10.example.org.")
            self.assertEqual(stale.answer, first.answer)

    @inlineCallbacks
    def test_without_serve_stale_expired_is_a_miss(self) -> Any:
        yield self.start()
        yield self.query("st.ttl10.example.org.")
        self.clock.advance(20)
        self.backend.answer = self.backend.servfail
        fresh = yield self.query("st.ttl10.example.org.")
        self.assertEqual(fresh.rcode(), dns.rcode.SERVFAIL)

    @inlineCallbacks
    def test_stale_window(self) -> Any:
        yield self.start(". {\n cache {\n  serve_stale 30s\n }\n cachetestbackend\n}\n")
        first = yield self.query("st.ttl10.example.org.")
        self.backend.answer = self.backend.servfail
        self.clock.advance(10 + 29)
        stale = yield self.query("st.ttl10.example.org.")
        self.assertEqual(stale.answer, first.answer)
        self.clock.advance(2)
        gone = yield self.query("st.ttl10.example.org.")
        self.assertEqual(gone.rcode(), dns.rcode.SERVFAIL)

    @inlineCallbacks
    def test_response_ttl(self) -> Any:
        yield self.start(". {\n cache {\n  serve_stale 1h immediate 30s\n }\n cachetestbackend\n}\n")
        yield self.query("st.ttl10.example.org.")
        self.clock.advance(20)
        self.backend.answer = self.backend.servfail
        stale = yield self.query("st.ttl10.example.org.")
        self.assertEqual(set(ttls(stale)), {30})

    @inlineCallbacks
    def test_failure_recheck(self) -> Any:
        yield self.start(". {\n cache {\n  serve_stale 1h immediate 0 30s\n }\n cachetestbackend\n}\n")
        yield self.query("st.ttl10.example.org.")
        self.clock.advance(20)
        self.backend.answer = self.backend.servfail
        for _ in range(3):
            yield self.query("st.ttl10.example.org.")
        self.assertEqual(self.calls("st.ttl10.example.org."), 2)  # one failed refresh, then quiet
        self.clock.advance(31)
        yield self.query("st.ttl10.example.org.")
        self.assertEqual(self.calls("st.ttl10.example.org."), 3)

    @inlineCallbacks
    def test_verify_serves_fresh_answer(self) -> Any:
        yield self.start(". {\n cache {\n  serve_stale 1h verify\n }\n cachetestbackend\n}\n")
        first = yield self.query("st.ttl10.example.org.")
        self.clock.advance(20)
        fresh = yield self.query("st.ttl10.example.org.")
        self.assertNotEqual(fresh.answer, first.answer)
        self.assertEqual(set(ttls(fresh)), {10})
        self.assertEqual(self.calls("st.ttl10.example.org."), 2)

    @inlineCallbacks
    def test_verify_falls_back_to_stale(self) -> Any:
        yield self.start(". {\n cache {\n  serve_stale 1h verify\n }\n cachetestbackend\n}\n")
        before = sample("coredns_cache_served_stale_total")
        first = yield self.query("st.ttl10.example.org.")
        self.clock.advance(20)
        self.backend.answer = self.backend.servfail
        stale = yield self.query("st.ttl10.example.org.")
        self.assertEqual(stale.answer, first.answer)
        self.assertEqual(sample("coredns_cache_served_stale_total") - before, 1)

    @inlineCallbacks
    def test_verify_timeout(self) -> Any:
        yield self.start(". {\n cache {\n  serve_stale 1h verify 100ms\n }\n cachetestbackend\n}\n")
        first = yield self.query("st.ttl10.example.org.")
        self.clock.advance(20)
        self.backend.delay = True
        pending = self.query("st.ttl10.example.org.")
        yield deferLater(reactor, 0.2, self.clock.advance, 0.1)
        stale = yield pending
        self.assertEqual(stale.answer, first.answer)
        self.backend.release()  # the verify still completes and refreshes the entry
        self.backend.delay = False
        fresh = yield self.query("st.ttl10.example.org.")
        self.assertNotEqual(fresh.answer, first.answer)
        self.assertEqual(self.calls("st.ttl10.example.org."), 2)

    @inlineCallbacks
    def test_prefer_positive(self) -> Any:
        corefile = (
            ". {\n cache {\n  serve_stale\n  serve_stale_policy prefer_positive\n }\n cachetestbackend\n}\n"
        )
        yield self.start(corefile)
        first = yield self.query("pp.ttl10.example.org.")
        self.clock.advance(20)
        self.backend.answer = self.backend.nxdomain
        for _ in range(2):
            kept = yield self.query("pp.ttl10.example.org.")
            self.assertEqual(kept.answer, first.answer)

    @inlineCallbacks
    def test_without_policy_denial_replaces_answer(self) -> Any:
        yield self.start(". {\n cache {\n  serve_stale\n }\n cachetestbackend\n}\n")
        yield self.query("pp.ttl10.example.org.")
        self.clock.advance(20)
        self.backend.answer = self.backend.nxdomain
        yield self.query("pp.ttl10.example.org.")  # stale, and the refresh stores the NXDOMAIN
        now = yield self.query("pp.ttl10.example.org.")
        self.assertEqual(now.rcode(), dns.rcode.NXDOMAIN)


class ReadmeCorefileTests(SynchronousTestCase):
    """The README's example Corefiles (upstreams rewritten to 127.0.0.1) set up as they are."""

    def test_examples_build(self) -> None:
        directory = Path(__file__).parent.parent / "data" / "readme_corefiles"
        files = sorted(directory.glob("cache_*.corefile")) + sorted(directory.glob("loop_*.corefile"))
        self.assertEqual(len(files), 5)
        for path in files:
            text = path.read_text()
            self.assertNotRegex(text, r"\b(?!127\.)\d+\.\d+\.\d+\.\d+", path.name)
            instance = build(text, path.name, dns_port=0)
            names = [type(h).__name__ for h in instance.blocks[0].handlers]
            self.assertIn("Cache" if path.name.startswith("cache") else "Loop", names, path.name)

    def test_example_settings(self) -> None:
        directory = Path(__file__).parent.parent / "data" / "readme_corefiles"

        def settings(name: str) -> Settings:
            instance = build((directory / name).read_text(), name, dns_port=0)
            return next(h for h in instance.blocks[0].handlers if isinstance(h, Cache)).settings

        self.assertEqual(settings("cache_1.corefile").pttl, 10)
        self.assertEqual(settings("cache_2.corefile").zones, ["example.org."])
        self.assertEqual((settings("cache_3.corefile").pcap, settings("cache_3.corefile").ncap), (5000, 2500))
        self.assertEqual(settings("cache_4.corefile").nexcept, ["sub.example.org."])


class UnboundTests(SynchronousTestCase):
    """forward + cache in front of a real resolver: the second answer never reaches it."""

    def test_second_query_served_from_cache(self) -> None:
        reason = unbound_missing()
        if reason is not None:
            raise SkipTest(reason)
        records = [
            "www.example.org. 300 IN A 192.0.2.7",
            # an SOA makes unbound's NXDOMAIN cacheable (CoreDNS keeps no denial without one)
            "example.org. 3600 IN SOA ns.example.org. host.example.org. 1 3600 600 86400 60",
        ]
        with UnboundServer(records, zones=["example.org. static"]) as unbound:
            corefile = f". {{\n forward . 127.0.0.1:{unbound.port}\n cache\n}}\n"
            with SubprocessServer(corefile) as server:
                first = server.query("www.example.org.", "A")
                self.assertEqual([r.to_text() for r in first.answer[0]], ["192.0.2.7"])
                missing = server.query("nothing.example.org.", "A")
                self.assertEqual(missing.rcode(), dns.rcode.NXDOMAIN)
                self.assertEqual(len(missing.authority), 1)
                unbound.stop()  # from here on, only the cache can answer
                time.sleep(1.1)
                second = server.query("www.example.org.", "A")
                self.assertEqual(second.answer, first.answer)
                self.assertLess(second.answer[0].ttl, 300)
                denial = server.query("nothing.example.org.", "A")
                self.assertEqual(denial.rcode(), dns.rcode.NXDOMAIN)


class _Next(Handler):
    """Answers A with a ~110-byte reply; NXDOMAIN+SOA for names under nx."""

    name = "next"

    def __init__(self) -> None:
        soa_rdata = b"\x02ns\xc0\x0c\x0ahostmaster\xc0\x0c" + bytes(20)
        self.soa = records.rr(QNAME, SOA, 300, soa_rdata)
        self.a = [records.a(QNAME, 300, f"192.0.2.{i}") for i in range(1, 6)]

    def serve(self, request: Request) -> Response:
        if request.name.startswith("nx"):
            return reply(request, 3, authority=[self.soa])
        return reply(request, answer=self.a)


def _wire_name(label: str) -> bytes:
    return bytes((len(label),)) + label.encode() + b"\x07example\x03org\x00"


class StorageTests(SynchronousTestCase):
    def fill(self, settings: Settings) -> Cache:
        clock = Clock()
        cache = Cache(settings, clock)
        cache.next = cast(IHandler, _Next())
        head = struct.pack("!HHHHHH", 1, 0x0100, 1, 0, 0, 0)
        tail = struct.pack("!HH", A, CLASS_IN)
        for i in range(9984):
            # queries made by hand: dnspython under tracemalloc would take most of the time
            cache.serve(Request(head + _wire_name(f"host-{i:05d}") + tail))
            cache.serve(Request(head + _wire_name(f"nx{i:05d}") + tail))
        return cache

    def test_memory_of_full_default_cache(self) -> None:
        tracemalloc.start()
        try:
            base = tracemalloc.get_traced_memory()[0]
            cache = self.fill(Settings())
            used = tracemalloc.get_traced_memory()[0] - base
        finally:
            tracemalloc.stop()
        self.assertEqual((len(cache.pcache), len(cache.ncache)), (9984, 9984))
        entry = next(iter(cache.pcache.items.values()))
        self.assertGreater(len(entry.body), 60)
        self.assertLess(used, 60 * 1024 * 1024, f"{used / 2**20:.1f} MiB for 2 x 9984 entries")
        self.assertLess(used / (2 * 9984), 2048, f"{used / (2 * 9984):.0f} bytes per entry")

    def test_hit_is_synchronous_and_builds_no_message(self) -> None:
        cache = Cache(Settings(), Clock())
        cache.next = cast(IHandler, _Next())
        cache.serve(make_request("fast.example.org.", edns=True))

        def no_message(self: Request) -> Any:
            raise AssertionError("a hit parsed the query with dnspython")

        original = Request.message
        Request.message = property(no_message)  # type: ignore[assignment,method-assign]
        try:
            result = cache.serve(make_request("fast.example.org."))
        finally:
            Request.message = original  # type: ignore[method-assign]
        self.assertIs(type(result), Response)
        self.assertEqual(result.plugin, "cache")
        self.assertFalse(result.has_opt)
        msg = result.message()
        self.assertEqual(len(msg.answer[0]), 5)

    def test_rss_of_full_default_cache(self) -> None:
        script = (
            "import resource, struct\n"
            "def rss():\n"
            "    with open('/proc/self/status') as f:\n"
            "        return next(int(l.split()[1]) for l in f if l.startswith('VmRSS'))\n"
            "from twisted.internet.task import Clock\n"
            "from twisted_coredns.plugins.cache.handler import Cache, Settings\n"
            "from twisted_coredns.request import Request\n"
            "from tests.plugins.test_cache import _Next, _wire_name\n"
            "before = rss()\n"
            "cache = Cache(Settings(), Clock()); cache.next = _Next()\n"
            "head = struct.pack('!HHHHHH', 1, 0x0100, 1, 0, 0, 0); tail = struct.pack('!HH', 1, 1)\n"
            "for i in range(9984):\n"
            "    cache.serve(Request(head + _wire_name(f'host-{i:05d}') + tail))\n"
            "    cache.serve(Request(head + _wire_name(f'nx{i:05d}') + tail))\n"
            "assert len(cache.pcache) == len(cache.ncache) == 9984\n"
            "print(before, rss())\n"
        )
        root = Path(__file__).resolve().parents[2]
        out = subprocess.run(
            [sys.executable, "-c", script], capture_output=True, text=True, cwd=root, timeout=120
        )
        self.assertEqual(out.returncode, 0, out.stderr)
        before, after = (int(v) / 1024 for v in out.stdout.split())
        message = f"RSS {before:.0f} MB after imports, {after:.0f} MB with both tables full"
        self.assertLess(after - before, 30, message)
        self.assertLess(after, 100, message)

    def test_bad_reply_passes_untouched(self) -> None:
        cache = Cache(Settings(), Clock())

        class Garbage(Handler):
            def serve(self, request: Request) -> Response:
                return Response(
                    request.wire[:2] + b"\x81\x80\x00\x01\x00\x05\x00\x00\x00\x00" + request.wire[12:]
                )

        cache.next = cast(IHandler, Garbage())
        request = make_request("junk.example.org.")
        result = cache.serve(request)
        self.assertEqual(result.wire[12:], request.wire[12:])
        self.assertEqual(len(cache.pcache), 0)
