"""forward when upstreams fail, case by case against CoreDNS's behaviour, over real sockets.

The first case is the issue's pair: a closed port and a real unbound that answers its local zone at
once and is slow (it recurses to a socket that never answers) on everything else, its `. NS` health
checks included. Then: all upstreams down, with and without `failfast_all_unhealthy_upstreams`;
health checks that time out; `max_fails 0`; REFUSED; a reply that comes after its query timed out;
replies with the wrong ID, question or class, or shorter than a header; a truncated reply whose TCP
retry fails. Each test's docstring says what CoreDNS does.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from typing import Any

import dns.message
import dns.rcode
from twisted.internet import reactor
from twisted.internet.defer import Deferred, gatherResults, inlineCallbacks
from twisted.internet.protocol import DatagramProtocol
from twisted.internet.task import deferLater
from twisted.trial.unittest import SkipTest

from twisted_coredns.plugins.forward.forward import Forward
from twisted_coredns.plugins.forward.proxy import Proxy
from twisted_coredns.testing import free_port, make_query, make_request
from twisted_coredns.testing.unbound import UnboundServer, unbound_missing

from .logerr_support import LogCapture
from .test_forward import FakeUpstream, _ForwardCase, answer, drop, sample

BROKEN = "coredns_forward_healthcheck_broken_total"
CHECK_FAILURES = "coredns_proxy_healthcheck_failures_total"


def until(condition: Callable[[], Any], timeout: float, what: str) -> Deferred[None]:
    """Fires once ``condition()`` is true (looked at every 20 ms); fails after ``timeout``."""
    deadline = reactor.seconds() + timeout

    @inlineCallbacks
    def poll() -> Any:
        while not condition():
            if reactor.seconds() > deadline:
                raise AssertionError(f"not {what} after {timeout}s")
            yield deferLater(reactor, 0.02, lambda: None)

    return poll()


def timed(d: Deferred[Any]) -> Deferred[tuple[float, Any]]:
    """``d``'s result with the seconds it took."""
    start = reactor.seconds()
    return d.addCallback(lambda result: (reactor.seconds() - start, result))


def failures(addr: str) -> float:
    return sample(CHECK_FAILURES, {"proxy_name": "forward", "to": addr})


def is_check(q: dns.message.Message) -> bool:
    return q.question[0].rdtype == 2


class _Case(_ForwardCase):
    def forward_in(self, srv: Any) -> Forward:
        """The block's forward, wherever it stands in the chain."""
        return next(h for h in srv.instance.blocks[0].handlers if isinstance(h, Forward))

    @inlineCallbacks
    def fast(self, srv: Any, names: list[tuple[str, str]], bad: list[Any]) -> Any:
        """Ask each (name, address) in turn; what did not come back as that one A record goes
        into ``bad``."""
        for name, address in names:
            r = yield srv.query(name, "A", timeout=8)
            got = [rd.address for rrset in r.answer for rd in rrset]
            if r.rcode() != dns.rcode.NOERROR or got != [address]:
                bad.append((name, dns.rcode.to_text(r.rcode()), got))


# -- the issue's pair -------------------------------------------------------------------------


class _Hole(DatagramProtocol):
    """Takes unbound's recursive queries and never answers them."""

    def __init__(self) -> None:
        self.received = 0

    def datagramReceived(self, data: bytes, addr: Any) -> None:
        self.received += 1


FAST = [(f"f{i}.fast.test.", f"127.0.1.{i}") for i in range(1, 61)]


class DeadAndSlowUnboundTests(_Case):
    """``forward . DEAD UNBOUND { policy sequential }``: DEAD refuses at once (ICMP), UNBOUND answers
    ``fast.test`` from local data and never answers anything else within our timeouts.

    What happens, second by second: the slow names refuse on DEAD and time out on UNBOUND (2 s),
    which starts health checks on both. DEAD's fail at once and it is down after about 1 s, so the
    slow names skip it from then on and spend their next attempts on UNBOUND, until the 5 s deadline
    has passed (SERVFAIL at about 6 s). UNBOUND's checks (`. IN NS`, recursion desired) wait on the
    hole as well, time out after 1 s each and mark it down after three, at about 6 s: now every
    upstream is down. CoreDNS then tries one upstream at random and gives up if it fails: half the
    fast names got DEAD's "connection refused" as a SERVFAIL within a millisecond, which is what the
    issue saw. Here a pass over all-down upstreams tries them all, so the fast names are answered.
    """

    def setUp(self) -> None:
        reason = unbound_missing()
        if reason:
            raise SkipTest(reason)
        self.hole = _Hole()
        port = reactor.listenUDP(0, self.hole, interface="127.0.0.1")
        self.addCleanup(port.stopListening)
        records = [f"{name} 300 IN A {address}" for name, address in FAST]
        self.unbound = UnboundServer(
            records, zones=["fast.test. static"], stubs={".": port.getHost().port}
        ).start()
        self.addCleanup(self.unbound.stop)

    @inlineCallbacks
    def test_fast_names_answered_and_slow_names_fail_after_the_deadline(self) -> Any:
        dead = free_port()
        errors = LogCapture(self, "errors")
        srv = yield self.server(
            f". {{\n errors\n forward . 127.0.0.1:{dead} 127.0.0.1:{self.unbound.port} {{\n"
            "  policy sequential\n }\n}\n"
        )
        dead_proxy, unbound_proxy = self.forward_in(srv).proxies
        bad: list[Any] = []
        first = [timed(srv.query(f"s{i}.example.org.", "A", timeout=15)) for i in range(4)]
        yield self.fast(srv, FAST[:5], bad)  # nothing is down yet: DEAD refuses, UNBOUND answers
        yield until(lambda: dead_proxy.down(2), 5, "DEAD down")
        yield self.fast(srv, FAST[5:10], bad)  # DEAD is skipped
        yield until(lambda: unbound_proxy.down(2), 15, "UNBOUND down")
        broken = sample(BROKEN)
        # Every upstream is down now, and stays down: each check of either fails.
        later = [timed(srv.query(f"t{i}.example.org.", "A", timeout=15)) for i in range(3)]
        yield self.fast(srv, FAST[10:], bad)
        self.assertTrue(dead_proxy.down(2) and unbound_proxy.down(2), "both stayed down")
        self.assertGreaterEqual(sample(BROKEN) - broken, len(FAST[10:]), "each fast name found all down")
        self.assertEqual(bad, [], "every fast name answered from unbound's local zone")

        results = yield gatherResults(first + later)
        for elapsed, r in results[: len(first)]:
            self.assertEqual(r.rcode(), dns.rcode.SERVFAIL)
            self.assertGreaterEqual(elapsed, 5.0, "retried on UNBOUND until the 5 s deadline passed")
            self.assertLess(elapsed, 8.0)
        for elapsed, r in results[len(first) :]:
            # Two passes over the down upstreams (max_connect_attempts: 2 per upstream), each
            # waiting its read_timeout on UNBOUND; CoreDNS gives up after 0 or 2 s.
            self.assertEqual(r.rcode(), dns.rcode.SERVFAIL)
            self.assertGreaterEqual(elapsed, 3.9, "UNBOUND tried in both passes")
        self.assertGreater(self.hole.received, 0, "unbound did recurse for the slow names")
        logged = errors.texts()
        for i in range(4):
            self.assertRegex(
                "\n".join(logged),
                rf"plugin/errors: 2 s{i}\.example\.org\. A: read udp 127\.0\.0\.1:\d+->"
                rf"127\.0\.0\.1:{self.unbound.port}: i/o timeout",
            )
        self.assertFalse([t for t in logged if "fast.test" in t], "no error for a fast name")


# -- all upstreams down -----------------------------------------------------------------------


class AllDownTests(_Case):
    """Two upstreams that become down the natural way: DEAD (a closed port) and FLAKY, which
    answers queries (unless told to drop them) but never its health checks."""

    def flaky(self) -> tuple[FakeUpstream, dict[str, bool]]:
        state = {"drop": True, "checks": False}

        def behaviour(q: dns.message.Message, proto: str) -> bytes | None:
            if is_check(q):
                return answer(q) if state["checks"] else None
            return None if state["drop"] else answer(q)

        return self.upstream(behaviour), state

    @inlineCallbacks
    def both_down(self, options: str) -> Any:
        dead = free_port()
        up, state = self.flaky()
        errors = LogCapture(self, "errors")
        forward_log = LogCapture(self, "forward")
        srv = yield self.server(
            f". {{\n errors\n forward . 127.0.0.1:{dead} 127.0.0.1:{up.port} {{\n  policy sequential\n"
            f"  health_check 100ms\n  read_timeout 100ms\n{options} }}\n}}\n"
        )
        f = self.forward_in(srv)
        r = yield srv.query("first.example.", "A", timeout=5)  # starts both health checks
        self.assertEqual(r.rcode(), dns.rcode.SERVFAIL)
        yield until(lambda: all(p.down(2) for p in f.proxies), 6, "both down")
        return srv, f, up, state, errors, forward_log

    @inlineCallbacks
    def test_all_down_tries_every_upstream(self) -> Any:
        """CoreDNS: ``healthcheck_broken_total`` +1 and one random upstream; if it fails, SERVFAIL
        with its error. Here: +1 per pass over all-down upstreams, each tried in random order,
        for as many passes as the deadline and ``max_connect_attempts`` allow."""
        srv, _f, up, state, errors, forward_log = yield self.both_down("")
        state["drop"] = False
        before, broken = len(up.lookups), sample(BROKEN)
        bad: list[Any] = []
        yield self.fast(srv, [(f"q{i}.example.", "127.0.0.9") for i in range(20)], bad)
        self.assertEqual(bad, [], "FLAKY answers, whichever upstream the pass tried first")
        self.assertEqual(len(up.lookups) - before, 20, "FLAKY asked once per query")
        self.assertEqual(sample(BROKEN) - broken, 20, "one pass each, all down")

        # Both failing: two passes (2 attempts per upstream), then SERVFAIL with the last error.
        state["drop"] = True
        before, broken = len(up.lookups), sample(BROKEN)
        errors.clear()
        r = yield srv.query("gone.example.", "A", timeout=5)
        self.assertEqual(r.rcode(), dns.rcode.SERVFAIL)
        self.assertEqual(len(up.lookups) - before, 2)
        self.assertEqual(sample(BROKEN) - broken, 2)
        [line] = errors.texts()
        self.assertRegex(
            line, r"^plugin/errors: 2 gone\.example\. A: read udp \S+: (i/o timeout|read: connection refused)"
        )
        self.assertEqual(forward_log.texts(), [], "forward itself logs nothing, as CoreDNS's")

    @inlineCallbacks
    def test_failfast_all_unhealthy_upstreams(self) -> Any:
        """CoreDNS: all down → ``healthcheck_broken_total`` +1, SERVFAIL with ``no healthy
        proxies``, nothing sent; the same here. Once an upstream's check passes, it serves."""
        srv, f, up, state, errors, _ = yield self.both_down("  failfast_all_unhealthy_upstreams\n")
        state["drop"] = False
        before, broken = len(up.lookups), sample(BROKEN)
        errors.clear()
        r = yield srv.query("ff.example.", "A")
        self.assertEqual(r.rcode(), dns.rcode.SERVFAIL)
        self.assertEqual(len(up.lookups), before, "nothing sent")
        self.assertEqual(sample(BROKEN) - broken, 1)
        self.assertEqual(errors.texts(), ["plugin/errors: 2 ff.example. A: no healthy proxies"])

        state["checks"] = True
        flaky = f.proxies[1]
        yield until(lambda: flaky.fails == 0, 3, "FLAKY healthy again")
        r = yield srv.query("back.example.", "A")
        self.assertEqual(r.answer[0][0].address, "127.0.0.9")
        self.assertEqual(sample(BROKEN) - broken, 1, "DEAD is skipped, not all down")


# -- health checks that time out ---------------------------------------------------------------


class HealthCheckTimeoutTests(_Case):
    @inlineCallbacks
    def test_checks_that_time_out(self) -> Any:
        """CoreDNS: a check waits 1 s for its reply; each timeout adds one failure (and one to
        ``healthcheck_failures_total``), the next check starts an interval later, a reply that
        comes after the timeout counts for nothing, and the upstream is down after ``max_fails``
        + 1 failures. A check that is answered resets the count and ends the checking."""
        state = {"late": True, "drop": True}
        probes: list[float] = []
        late_sent: list[float] = []

        def behaviour(q: dns.message.Message, proto: str) -> Any:
            if not is_check(q):
                return None if state["drop"] else answer(q)
            probes.append(reactor.seconds())
            if not state["late"]:
                return answer(q)

            def late() -> bytes:
                late_sent.append(reactor.seconds())
                return answer(q)

            return deferLater(reactor, 1.2, late)

        up = self.upstream(behaviour)
        addr = f"127.0.0.1:{up.port}"
        srv = yield self.server(
            f". {{\n forward . {addr} {{\n  health_check 100ms\n  read_timeout 100ms\n }}\n}}\n"
        )
        proxy: Proxy = self.forward_in(srv).proxies[0]
        before = failures(addr)
        r = yield srv.query("x.example.", "A", timeout=5)
        self.assertEqual(r.rcode(), dns.rcode.SERVFAIL, "the query was dropped")
        yield until(lambda: proxy.down(2), 6, "down")
        self.assertEqual(proxy.fails, 3)
        self.assertEqual(failures(addr) - before, 3)
        self.assertLessEqual(len(probes) - proxy.fails, 1, "one check at a time")
        gaps = [b - a for a, b in itertools.pairwise(probes)]
        self.assertTrue(all(gap >= 1.05 for gap in gaps), f"1 s timeout + 100ms interval: {gaps}")
        self.assertTrue(late_sent, "replies came, too late")

        # Down, and alone: all down, so it is still asked (and answers).
        state["drop"] = False
        broken = sample(BROKEN)
        r = yield srv.query("y.example.", "A")
        self.assertEqual(r.answer[0][0].address, "127.0.0.9")
        self.assertEqual(sample(BROKEN) - broken, 1)

        state["late"] = False
        yield until(lambda: proxy.fails == 0, 4, "healthy again")
        seen = len(probes)
        yield deferLater(reactor, 0.4, lambda: None)  # four intervals: nothing more is checked
        self.assertEqual(len(probes), seen, "a healthy upstream is not checked")
        self.assertFalse(proxy.down(2))


# -- max_fails 0 -------------------------------------------------------------------------------


class MaxFailsZeroTests(_Case):
    @inlineCallbacks
    def test_never_checked_never_down(self) -> Any:
        """CoreDNS: with ``max_fails 0`` no check is ever sent and no upstream is ever down: every
        query walks the list from the first, failing upstream included, and when all fail it
        makes its ``max_connect_attempts`` and returns the last error."""
        dropper = self.upstream(drop)
        good = self.upstream()
        to = f"127.0.0.1:{dropper.port} 127.0.0.1:{good.port}"
        srv = yield self.server(
            f". {{\n forward . {to} {{\n  policy sequential\n  max_fails 0\n  health_check 50ms\n"
            "  read_timeout 100ms\n }\n}\n"
        )
        f = self.forward_in(srv)
        broken = sample(BROKEN)
        before = failures(f"127.0.0.1:{dropper.port}")
        bad: list[Any] = []
        yield self.fast(srv, [(f"q{i}.example.", "127.0.0.9") for i in range(5)], bad)
        self.assertEqual(bad, [])
        self.assertEqual(len(dropper.lookups), 5, "never skipped")
        self.assertEqual(len(good.lookups), 5)

        both = self.upstream(drop), self.upstream(drop)
        srv2 = yield self.server(
            f". {{\n forward . 127.0.0.1:{both[0].port} 127.0.0.1:{both[1].port} {{\n"
            "  policy sequential\n  max_fails 0\n  read_timeout 100ms\n }\n}\n"
        )
        r = yield srv2.query("z.example.", "A", timeout=5)
        self.assertEqual(r.rcode(), dns.rcode.SERVFAIL)
        self.assertEqual([len(u.lookups) for u in both], [2, 2], "two attempts per upstream")

        self.assertEqual(dropper.probes + good.probes + both[0].probes + both[1].probes, [], "no checks")
        self.assertEqual(failures(f"127.0.0.1:{dropper.port}"), before)
        self.assertEqual(sample(BROKEN), broken)
        self.assertEqual([p.fails for p in f.proxies], [0, 0], "never down")


# -- REFUSED -----------------------------------------------------------------------------------


class RefusedTests(_Case):
    @inlineCallbacks
    def test_refused_is_an_answer(self) -> Any:
        """CoreDNS: REFUSED is a reply, not a failure: relayed as it is, no check, no retry
        (unless ``failover REFUSED``), counted under ``rcode="REFUSED"``; a REFUSED reply to a
        health check is healthy."""
        seen = {"first": True}

        def refuse(q: dns.message.Message, proto: str) -> bytes | None:
            if not is_check(q) and seen.pop("first", False):
                return None  # drop the first query so that a check starts
            return answer(q, dns.rcode.REFUSED)

        refuser = self.upstream(refuse)
        good = self.upstream()
        to = f"127.0.0.1:{refuser.port} 127.0.0.1:{good.port}"
        errors = LogCapture(self, "errors")
        srv = yield self.server(
            f". {{\n errors\n forward . {to} {{\n  policy sequential\n  health_check 100ms\n"
            "  read_timeout 100ms\n }\n}\n"
        )
        proxy = self.forward_in(srv).proxies[0]
        r = yield srv.query("first.example.", "A")
        self.assertEqual(r.answer[0][0].address, "127.0.0.9", "the dropped query went on to GOOD")
        yield until(lambda: refuser.probes, 3, "a check")
        yield until(lambda: not proxy.probe.active, 3, "the check done")
        self.assertEqual((proxy.fails, len(refuser.probes)), (0, 1), "REFUSED: healthy at the first check")

        before = len(good.lookups)
        r = yield srv.query("x.example.", "A")
        self.assertEqual(r.rcode(), dns.rcode.REFUSED)
        self.assertEqual(len(good.lookups), before, "no retry on REFUSED")
        self.assertEqual(len(refuser.probes), 1, "no check after a REFUSED reply")
        labels = {"proxy_name": "forward", "to": f"127.0.0.1:{refuser.port}", "rcode": "REFUSED"}
        self.assertEqual(sample("coredns_proxy_request_duration_seconds_count", labels), 1)
        self.assertFalse([t for t in errors.texts() if "x.example." in t], "a relayed REFUSED is no error")

        failover = yield self.server(
            f". {{\n forward . {to} {{\n  policy sequential\n  failover REFUSED\n }}\n}}\n"
        )
        r = yield failover.query("y.example.", "A")
        self.assertEqual(r.answer[0][0].address, "127.0.0.9", "failover REFUSED: the next upstream")


# -- late replies ------------------------------------------------------------------------------


class LateReplyTests(_Case):
    @inlineCallbacks
    def check(self, tcp: bool) -> Any:
        """CoreDNS closes a connection whose read timed out, so a reply that comes later is never
        read, and the retry dials a new one (a cache miss). Here too."""
        sent: dict[str, Any] = {}

        def behaviour(q: dns.message.Message, proto: str) -> Any:
            name = q.question[0].name.to_text()
            if is_check(q) or name in sent:
                return answer(q)
            sent[name] = None

            def late() -> bytes:
                sent[name] = True
                return answer(q, ip="127.0.0.66")

            return deferLater(reactor, 0.3, late)

        up = self.upstream(behaviour)
        option = "  force_tcp\n" if tcp else ""
        srv = yield self.server(
            f". {{\n forward . 127.0.0.1:{up.port} {{\n  read_timeout 100ms\n{option} }}\n}}\n"
        )
        r = yield srv.query("late.example.", "A")
        self.assertEqual(r.answer[0][0].address, "127.0.0.9", "the retry's own reply")
        yield until(lambda: sent.get("late.example.") is True, 2, "the late reply sent")
        r = yield srv.query("next.example.", "A")
        yield until(lambda: sent.get("next.example.") is True, 2, "the late reply sent")
        self.assertEqual(r.answer[0][0].address, "127.0.0.9")
        self.assertEqual(str(r.question[0].name), "next.example.")
        sources = [addr for _p, addr, _q, _w in up.lookups]
        self.assertEqual(len(sources), 4)
        self.assertEqual(len(set(sources)), 3, "a new socket after each timeout, the answered one kept")
        proto = "tcp" if tcp else "udp"
        labels = {"proxy_name": "forward", "to": f"127.0.0.1:{up.port}", "proto": proto}
        self.assertEqual(sample("coredns_proxy_conn_cache_misses_total", labels), 3)
        self.assertEqual(sample("coredns_proxy_conn_cache_hits_total", labels), 1)

    def test_udp(self) -> Any:
        return self.check(tcp=False)

    def test_tcp(self) -> Any:
        return self.check(tcp=True)


# -- wrong ID, question, class -----------------------------------------------------------------


class _Scripted(FakeUpstream):
    """Sends what the query's first label asks for:

    ``wrongid``: only a reply under another ID; ``wrongidfirst``: that, then the right reply;
    ``wrongq``: the right ID with the question ``other.example. A``; ``wrongclass``: the right ID,
    name and type, class CH; ``mixed``: the right reply with the name in upper case; ``runt``: four
    bytes; anything else (health checks) the right reply."""

    def handle(self, data: bytes, proto: str, addr: Any, send: Callable[[bytes], None]) -> None:
        q = dns.message.from_wire(data)
        self.queries.append((proto, addr, q, data))
        label = q.question[0].name.labels[0].decode() if q.question[0].name.labels[0] else ""
        name, rdtype = q.question[0].name, q.question[0].rdtype
        if label in ("wrongid", "wrongidfirst"):
            wrong = dns.message.from_wire(answer(q, ip="127.0.0.66"))
            wrong.id = q.id ^ 0x5A5A
            send(wrong.to_wire())
            if label == "wrongidfirst":
                send(answer(q))
        elif label == "wrongq":
            send(answer(dns.message.make_query("other.example.", "A", id=q.id)))
        elif label == "wrongclass":
            other = dns.message.make_response(dns.message.make_query(name, rdtype, "CH", id=q.id))
            send(other.to_wire())
        elif label == "runt":
            send(answer(q)[:4])
        elif label == "mixed":
            send(answer(dns.message.make_query(name.to_text().upper(), rdtype, id=q.id)))
        else:
            send(answer(q))


class WrongReplyTests(_Case):
    @inlineCallbacks
    def check(self, tcp: bool) -> Any:
        """CoreDNS reads past a reply with another ID (UDP and TCP) and keeps waiting for its own
        until the read timeout; a reply with our ID and another name or type is answered FORMERR,
        with no retry and no check (``Request.Match``, which does not look at the class); with
        ``debug`` it dumps the reply (``Wrong reply for id: ...``)."""
        up = _Scripted().start()
        self.addCleanup(up.stop)
        other = self.upstream()
        errors = LogCapture(self, "errors")
        forward_log = LogCapture(self, "forward")
        option = "  force_tcp\n" if tcp else ""
        srv = yield self.server(
            f". {{\n debug\n errors\n forward . 127.0.0.1:{up.port} 127.0.0.1:{other.port} {{\n"
            f"  policy sequential\n  read_timeout 200ms\n  health_check 100ms\n{option} }}\n}}\n"
        )
        proxy = self.forward_in(srv).proxies[0]
        proto = "tcp" if tcp else "udp"

        r = yield srv.query("wrongidfirst.example.", "A")
        self.assertEqual(r.answer[0][0].address, "127.0.0.9", "the wrong ID was skipped")
        self.assertEqual(up.probes, [], "no check")

        q = make_query("wrongq.example.")
        q.id = 4321
        r = yield srv.query("", message=q)
        self.assertEqual((r.id, r.rcode(), r.answer), (4321, dns.rcode.FORMERR, []))
        self.assertEqual(str(r.question[0].name), "wrongq.example.")
        self.assertEqual(other.lookups, [], "no retry elsewhere")
        self.assertEqual(up.probes, [], "no check")
        [dump] = [t for t in forward_log.texts() if "Wrong reply" in t]
        self.assertTrue(dump.startswith("plugin/forward: Wrong reply for id: 4321, wrongq.example. 1\n"))
        self.assertIn("\ndebug: 000000 10 e1 ", dump, "the reply, under the client's ID")

        # dnspython would not take this reply for its query: ask the handler itself.
        resp = yield self.forward_in(srv).serve(make_request("wrongclass.example.", proto=proto))
        relayed = dns.message.from_wire(resp.wire)
        self.assertEqual(resp.rcode, dns.rcode.NOERROR, "relayed: CoreDNS does not compare the class")
        self.assertEqual(relayed.question[0].rdclass, 3)
        r = yield srv.query("mixed.example.", "A")
        self.assertEqual(r.answer[0][0].address, "127.0.0.9", "the name in another case matches")

        r = yield srv.query("wrongid.example.", "A", timeout=5)
        self.assertEqual(r.answer[0][0].address, "127.0.0.9", "timed out, went on to the next upstream")
        yield until(lambda: up.probes, 2, "a check after the timeout")
        yield until(lambda: proxy.fails == 0 and not proxy.probe.active, 3, "the check passed")
        self.assertEqual(errors.texts(), [])

    def test_udp(self) -> Any:
        return self.check(tcp=False)

    def test_tcp(self) -> Any:
        return self.check(tcp=True)

    @inlineCallbacks
    def test_message_shorter_than_a_header(self) -> Any:
        """miekg skips a datagram shorter than a header and keeps reading, but fails a stream
        read of one ("dns: short read"), and CoreDNS closes that connection; here too."""
        up = _Scripted().start()
        self.addCleanup(up.stop)
        for option, error in (
            ("", r"^read udp 127\.0\.0\.1:\d+->127\.0\.0\.1:\d+: i/o timeout$"),
            ("  force_tcp\n", r"^dns: short read$"),
        ):
            srv = yield self.server(
                f". {{\n forward . 127.0.0.1:{up.port} {{\n  max_connect_attempts 1\n  read_timeout 300ms\n"
                f"{option} }}\n}}\n"
            )
            elapsed, resp = yield timed(self.forward_in(srv).serve(make_request("runt.example.")))
            self.assertEqual(resp.rcode, dns.rcode.SERVFAIL)
            self.assertRegex(str(resp.error), error)
            if option:
                self.assertLess(elapsed, 0.3, "failed at once, not at the read timeout")


class TruncatedRetryTests(_Case):
    @inlineCallbacks
    def test_tcp_retry_is_for_the_truncating_upstream_only(self) -> Any:
        """CoreDNS copies its options for each upstream: with ``prefer_udp`` a truncated reply is
        asked again over TCP of the same upstream, and when that fails the next upstream is asked
        over UDP again."""
        a = self.upstream(lambda q, proto: answer(q, tc=True) if proto == "udp" else None)
        b = self.upstream()
        srv = yield self.server(
            f". {{\n forward . 127.0.0.1:{a.port} 127.0.0.1:{b.port} {{\n  policy sequential\n"
            "  prefer_udp\n  read_timeout 100ms\n }\n}\n"
        )
        r = yield srv.query("tc.example.", "A", timeout=5)
        self.assertEqual(r.answer[0][0].address, "127.0.0.9")
        self.assertEqual([p for p, *_ in a.lookups], ["udp", "tcp"])
        self.assertEqual([p for p, *_ in b.lookups], ["udp"])
