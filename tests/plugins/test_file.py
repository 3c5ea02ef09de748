"""file: CoreDNS's own lookup tables through a real server, the Corefile syntax and its errors, bad
zone files, fallthrough, reload, transfers (ITransferer) and the README Corefiles.

Every answer here comes from a server on a real UDP socket, asked by dnspython."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

import dns.flags
import dns.name
import dns.rcode
import dns.rdatatype
from twisted.internet import reactor
from twisted.internet.defer import inlineCallbacks
from twisted.internet.task import deferLater
from twisted.trial.unittest import SynchronousTestCase, TestCase

from twisted_coredns import ITransferer
from twisted_coredns.instance import build
from twisted_coredns.plugins.file.handler import File
from twisted_coredns.plugins.file.zone import Zone, ZoneFileError
from twisted_coredns.registry import default_registry
from twisted_coredns.testing import handler_of, serve, setup_error, until

from ..helpers import write_file
from . import file_cases
from .logerr_support import LogCapture

DATA = file_cases.DATA
README = DATA / "readme"

MIEK = next(s for s in file_cases.suites() if s["test_func"] == "TestLookup")["zone_text"].rstrip("\n") + "\n"


class _ServingCase(TestCase):
    timeout = 60

    def setUp(self) -> None:
        tmp = tempfile.TemporaryDirectory(prefix="file-test-")
        self.addCleanup(tmp.cleanup)
        self.dir = tmp.name


class CoreDNSLookupTables(_ServingCase):
    """The 92 queries over 19 zones of CoreDNS's plugin/file tests, each asked over UDP."""

    @inlineCallbacks
    def check_suite(self, suite: dict[str, Any]) -> Any:
        path = write_file(self.dir, "db.zone", suite["zone_text"])
        server = yield serve(self, f"{suite['origin']} {{\n  file {path}\n}}\n")
        failures = []
        for case in suite["cases"]:
            do = bool(case.get("Do"))
            kw: dict[str, Any] = {"edns": 0, "want_dnssec": True} if do else {}
            reply = yield server.query(case["qname"], case["qtype"], **kw)
            why = file_cases.mismatch(case, reply)
            if why:
                failures.append(f"{case['qname']} {case['qtype']} do={do}: {why}")
        self.assertEqual(failures, [])
        return len(suite["cases"])

    def test_case_count(self) -> None:
        suites = file_cases.suites()
        self.assertEqual((len(suites), sum(len(s["cases"]) for s in suites)), (19, 92))


def _suite_test(index: int) -> Any:
    def test(self: CoreDNSLookupTables) -> Any:
        return self.check_suite(file_cases.suites()[index])

    return test


for _i, _suite in enumerate(file_cases.suites()):
    setattr(CoreDNSLookupTables, f"test_{_i:02d}_{_suite['test_func']}", _suite_test(_i))


class FileSetupTests(SynchronousTestCase):
    """The directive: CoreDNS's setup table (plugin/file/setup_test.go) and its error texts."""

    def setUp(self) -> None:
        tmp = tempfile.TemporaryDirectory(prefix="file-setup-")
        self.addCleanup(tmp.cleanup)
        self.dir = tmp.name
        self.miek = write_file(self.dir, "db.miek.nl", MIEK)

    def test_setup_rows(self) -> None:
        ok = [
            f"file {self.miek} miek.nl.",
            f"file {self.miek} 10.0.0.0/8",
            f"file {self.miek} example.org. {{\n fallthrough\n}}",
            f"file {self.miek} example.org. {{\n fallthrough www.example.org\n}}",
            f"file {self.miek} miek.nl {{\n reload 30s\n reload_by_mtime\n upstream\n}}",
        ]
        for text in ok:
            self.assertIsNone(setup_error(text), text)
        self.assertEqual(
            setup_error("file"),
            "plugin/file: Corefile:2 - Error during parsing: Wrong argument count or unexpected line "
            "ending after 'file'",
        )
        for prop in ("transfer from 127.0.0.1", "no_reload", "no_rebloat"):
            word = prop.split()[0]
            self.assertEqual(
                setup_error(f"file {self.miek} miek.nl {{\n {prop}\n}}"),
                f"plugin/file: Corefile:3 - Error during parsing: unknown property '{word}'",
            )
        self.assertEqual(
            setup_error(f"file {self.miek} {{\n reload\n}}"), "plugin/file: reload duration value is expected"
        )
        self.assertEqual(
            setup_error(f"file {self.miek} {{\n reload soon\n}}"),
            'plugin/file: plugin/file: time: invalid duration "soon"',
        )

    def test_zones_and_fallthrough(self) -> None:
        from twisted_coredns.testing import run_setup

        handler = run_setup(f"file {self.miek} 10.0.0.0/8").handler
        self.assertEqual(list(handler.zones), ["10.in-addr.arpa."])
        handler = run_setup(f"file {self.miek} miek.nl {{\n fallthrough www.miek.nl\n}}").handler
        self.assertEqual(list(handler.fall), ["www.miek.nl."])
        self.assertEqual(handler.zones["miek.nl."].serial, 1282630057)
        self.assertTrue(ITransferer.providedBy(handler))

    def test_zone_file_syntax_error_names_file_and_line(self) -> None:
        bad = write_file(self.dir, "db.bad", MIEK + "broken IN A 300.1.1.1\n")
        line = len(MIEK.splitlines()) + 1
        error = setup_error(f"file {bad} miek.nl")
        self.assertTrue(
            error.startswith(
                f'plugin/file: failed to parse file "{bad}" for origin miek.nl. with error {bad}:{line}:'
            ),
            error,
        )

    def test_out_of_zone_record(self) -> None:
        """CoreDNS keeps records of other origins (one file may serve several); we say where they are."""
        bad = write_file(
            self.dir, "db.out", MIEK + "www.example.com. IN A 127.0.0.1\nx.example.com. IN A 127.0.0.1\n"
        )
        log = LogCapture(self, "file")
        self.assertIsNone(setup_error(f"file {bad} miek.nl"))
        self.assertIn(
            (
                "WARNING",
                f"plugin/file: {bad}:{len(MIEK.splitlines()) + 1}: out-of-zone record "
                "www.example.com. for origin miek.nl. (and 1 more): never answered, only transferred",
            ),
            log.lines(),
        )

    def test_cname_and_other_data(self) -> None:
        bad = write_file(self.dir, "db.cname", MIEK + "a IN CNAME www\n")
        error = setup_error(f"file {bad} miek.nl")
        self.assertIn(f"{bad}:{len(MIEK.splitlines()) + 1}: CNAME and other data at a.miek.nl.", error)

    def test_no_soa(self) -> None:
        bad = write_file(self.dir, "db.nosoa", "$ORIGIN miek.nl.\nwww 300 IN A 127.0.0.1\n")
        self.assertEqual(
            setup_error(f"file {bad} miek.nl"),
            f'plugin/file: file "{bad}" has no SOA record for origin miek.nl.',
        )

    def test_nsec3_zone_is_refused(self) -> None:
        bad = write_file(self.dir, "db.nsec3", MIEK + "miek.nl. 300 IN NSEC3PARAM 1 0 0 -\n")
        self.assertEqual(
            setup_error(f"file {bad} miek.nl"),
            "plugin/file: NSEC3 zone is not supported, dropping RR: miek.nl. for zone: miek.nl.",
        )

    def test_missing_file(self) -> None:
        gone = os.path.join(self.dir, "db.gone")
        self.assertEqual(
            setup_error(f"file {gone} miek.nl {{\n reload 0\n}}"),
            f"plugin/file: open {gone}: no such file or directory",
        )
        log = LogCapture(self, "file")
        self.assertIsNone(setup_error(f"file {gone} miek.nl"))
        self.assertIn(
            (
                "WARNING",
                f'plugin/file: Failed to open "open {gone}: no such file or directory": trying again in 1m0s',
            ),
            log.lines(),
        )

    def test_include_and_root(self) -> None:
        write_file(self.dir, "extra.inc", "included 300 IN A 127.0.0.9\n")
        write_file(self.dir, "db.inc", MIEK + f"$INCLUDE {self.dir}/extra.inc\n")
        from twisted_coredns.testing import run_setup

        result = run_setup(f"root {self.dir}\nfile db.inc miek.nl")
        self.assertIsNone(result.error)
        handler = handler_of(result.instance, File)
        self.assertIn("included.miek.nl.", handler.zones["miek.nl."].nodes)

    def test_readme_corefiles_start(self) -> None:
        """Every README Corefile of file sets up (with a zone file beside it)."""
        has_transfer = "transfer" in default_registry()
        for path in sorted(README.glob("file_*.corefile")):
            text = path.read_text(encoding="utf-8")
            if "transfer" in text and not has_transfer:
                continue  # the transfer plugin is someone else's, and may not be built yet
            zone = (
                "$TTL 300\n@ IN SOA ns hostmaster 1 7200 3600 1209600 3600\n@ IN NS ns\nns IN A 127.0.0.1\n"
            )
            write_file(self.dir, "db.example.org", zone)
            write_file(self.dir, "example.org.signed", zone)
            text = text.replace("file ", f"root {self.dir}\n    file ", 1)
            instance = build(text, path.name, dns_port=0)
            self.assertTrue(all(handler_of(instance, File).zones.values()), path.name)


class FileServingTests(_ServingCase):
    """Answers over UDP: flags, fallthrough, an out-of-zone CNAME through the chain, reload."""

    @inlineCallbacks
    def test_flags_and_sections(self) -> Any:
        path = write_file(self.dir, "db.miek.nl", MIEK)
        srv = yield serve(self, f"miek.nl {{\n file {path}\n}}\n")
        reply = yield srv.query("a.miek.nl.", "A")
        self.assertTrue(reply.flags & dns.flags.AA)
        self.assertEqual(len(reply.authority[0]), 4)
        reply = yield srv.query("nothere.miek.nl.", "A")
        self.assertEqual(reply.rcode(), dns.rcode.NXDOMAIN)
        self.assertEqual(reply.authority[0].rdtype, dns.rdatatype.SOA)
        # AXFR over UDP to file itself is refused (the transfer plugin answers transfers)
        reply = yield srv.query("miek.nl.", "AXFR")
        self.assertEqual(reply.rcode(), dns.rcode.REFUSED)
        # the same question twice gives the same bytes (the second from the answer cache)
        first = yield srv.query("srv.miek.nl.", "SRV")
        self.assertIn(
            ("srv.miek.nl.", dns.rdatatype.SRV, False),
            handler_of(srv.instance, File).zones["miek.nl."].wire_cache,
        )
        second = yield srv.query("srv.miek.nl.", "SRV")
        self.assertEqual(
            (first.answer, first.authority, first.additional),
            (second.answer, second.authority, second.additional),
        )
        # mixed case: the zone's names in lower case, as CoreDNS writes them
        reply = yield srv.query("WWW.Miek.NL.", "A")
        self.assertEqual([str(r.name) for r in reply.answer], ["www.miek.nl.", "a.miek.nl."])

    @inlineCallbacks
    def test_fallthrough(self) -> Any:
        path = write_file(self.dir, "db.miek.nl", MIEK)
        srv = yield serve(self, f"miek.nl {{\n file {path} {{\n  fallthrough\n }}\n whoami\n}}\n")
        reply = yield srv.query("nothere.miek.nl.", "A")
        self.assertEqual(reply.rcode(), dns.rcode.NOERROR)
        self.assertEqual(len(reply.additional), 2)  # whoami answered
        reply = yield srv.query("a.miek.nl.", "A")
        self.assertEqual(reply.answer[0][0].address, "139.162.196.78")

    @inlineCallbacks
    def test_cname_out_of_zone_goes_through_the_chain(self) -> Any:
        path = write_file(self.dir, "db.miek.nl", MIEK + "hosted IN CNAME web.example.net.\n")
        hosts = write_file(self.dir, "hosts", "192.0.2.7 web.example.net\n")
        # hosts runs before file (plugin.cfg); file asks the whole chain for the CNAME's target
        srv = yield serve(self, f". {{\n file {path} miek.nl\n hosts {hosts} {{\n  fallthrough\n }}\n}}\n")
        reply = yield srv.query("hosted.miek.nl.", "A")
        self.assertEqual(
            [(str(r.name), r.rdtype) for r in reply.answer],
            [("hosted.miek.nl.", dns.rdatatype.CNAME), ("web.example.net.", dns.rdatatype.A)],
        )

    @inlineCallbacks
    def test_reload(self) -> Any:
        path = write_file(self.dir, "db.miek.nl", MIEK)
        log = LogCapture(self, "file")
        srv = yield serve(self, f"miek.nl {{\n file {path} {{\n  reload 50ms\n }}\n}}\n")
        handler = handler_of(srv.instance, File)
        notified: list[str] = []

        class _Transfer:
            def notify(self, zone: str) -> None:
                notified.append(zone)

        handler.transfer_handler = _Transfer()
        # a broken file keeps the old zone, and says why
        write_file(self.dir, "db.miek.nl", MIEK.replace("1282630057", "1282630058") + "bad IN A x\n")
        yield until(lambda: any("Parsing zone" in t for _, t in log.lines()))
        reply = yield srv.query("a.miek.nl.", "A")
        self.assertEqual(reply.answer[0][0].address, "139.162.196.78")
        # the same serial: not reloaded
        write_file(self.dir, "db.miek.nl", MIEK.replace("139.162.196.78", "127.0.0.2"))
        yield deferLater(reactor, 0.2, lambda: None)
        reply = yield srv.query("a.miek.nl.", "A")
        self.assertEqual(reply.answer[0][0].address, "139.162.196.78")
        # a new serial: swapped in, notified
        write_file(
            self.dir,
            "db.miek.nl",
            MIEK.replace("139.162.196.78", "127.0.0.3").replace("1282630057", "1282630059"),
        )
        yield until(lambda: handler.zones["miek.nl."].serial == 1282630059)
        reply = yield srv.query("a.miek.nl.", "A")
        self.assertEqual(reply.answer[0][0].address, "127.0.0.3")
        self.assertEqual(notified, ["miek.nl."])
        self.assertIn(
            (
                "INFO",
                f'plugin/file: Successfully reloaded zone "miek.nl." in "{path}" with 1282630059 SOA serial',
            ),
            log.lines(),
        )


    @inlineCallbacks
    def test_expired_zone_servfails(self) -> Any:
        path = write_file(self.dir, "db.miek.nl", MIEK)
        srv = yield serve(self, f"miek.nl {{\n file {path}\n}}\n")
        handler = handler_of(srv.instance, File)
        handler.zones["miek.nl."].set_expired()
        reply = yield srv.query("a.miek.nl.", "A")
        self.assertEqual(reply.rcode(), dns.rcode.SERVFAIL)
        self.assertIsNone(handler.transfer("miek.nl.", 0))


class TransferAPITests(SynchronousTestCase):
    """ITransferer and the Zone API that transfer and secondary build on."""

    def test_transfer(self) -> None:
        zone = Zone.from_rrsets("miek.nl", [r for r in file_cases_rrsets()])
        handler = File({"miek.nl.": zone})
        records = handler.transfer("miek.nl.", -1)
        assert records is not None
        self.assertEqual(records[0].rdtype, dns.rdatatype.SOA)
        self.assertEqual(sum(len(r) for r in records), zone.records)
        self.assertEqual(handler.transfer("miek.nl.", zone.serial), [zone.soa])
        self.assertEqual(handler.transfer("miek.nl.", zone.serial + 5), [zone.soa])
        self.assertIsNone(handler.transfer("a.miek.nl.", 0))
        self.assertIsNone(handler.transfer("example.org.", 0))
        self.assertEqual(zone.origin, "miek.nl.")
        self.assertFalse(zone.expired)

    def test_from_rrsets_validates(self) -> None:
        import dns.rrset

        rrsets = file_cases_rrsets()
        with self.assertRaises(ZoneFileError):
            Zone.from_rrsets("miek.nl.", [r for r in rrsets if r.rdtype != dns.rdatatype.SOA])
        with self.assertRaises(ZoneFileError):
            Zone.from_rrsets(
                "miek.nl.", [*rrsets, dns.rrset.from_text("x.example.", 60, "IN", "A", "127.0.0.1")]
            )

    def test_from_file_error_names_line(self) -> None:
        with tempfile.TemporaryDirectory() as d:
            path = write_file(d, "db", "$ORIGIN miek.nl.\n@ 300 IN SOA a. b. 1 2 3 4 5\nx 300 IN A nope\n")
            with self.assertRaises(ZoneFileError) as caught:
                Zone.from_file(path, "miek.nl.")
            self.assertTrue(str(caught.exception).startswith(f"{path}:3:"), str(caught.exception))


def file_cases_rrsets() -> list[Any]:
    from twisted_coredns.plugins.file.zonefile import read_zone_text

    return read_zone_text(MIEK, "miek.nl.")


# -- the zone file reader's two roads ----------------------------------------------------------

ROOT_ZONE_GZ = DATA / "root.zone.gz"
"""The root zone of 2018-03-12 (github.com/rootzone/zone, via /work/shared/conformance/zones)."""
SYNTAX_ZONE = DATA / "syntax.zone"


def _gunzip(source: Path, folder: str) -> str:
    import gzip
    import shutil

    target = os.path.join(folder, source.name.removesuffix(".gz"))
    with gzip.open(source, "rb") as packed, open(target, "wb") as out:
        shutil.copyfileobj(packed, out)
    return target


def _facts(rrsets: list[Any]) -> list[tuple[Any, ...]]:
    """All an RRset holds, in order: owner as written, type, covered type, TTL, each record's
    data and the comment dnspython keeps beside it."""
    return [
        (r.name.to_text(), r.rdtype, r.covers, r.ttl, [d.to_text() for d in r], [d.rdcomment for d in r])
        for r in rrsets
    ]


class ZoneReaderRoadsTests(SynchronousTestCase):
    """The reader takes plain lines by a fast road and the rest through dnspython's reader: both
    must give the same RRsets, in the same order, and the same errors."""

    def setUp(self) -> None:
        tmp = tempfile.TemporaryDirectory(prefix="file-reader-")
        self.addCleanup(tmp.cleanup)
        self.dir = tmp.name

    def same(self, text: str, origin: str) -> list[Any]:
        from twisted_coredns.plugins.file.zonefile import read_zone_text

        fast = read_zone_text(text, origin, "db")
        slow = read_zone_text(text, origin, "db", fast=False)
        self.assertEqual(_facts(fast), _facts(slow))
        return fast

    def test_every_syntax(self) -> None:
        include = write_file(
            self.dir, "extra.inc", "inc1 A 192.0.2.40\n  TXT \"same owner\"\ninc2 MX 5 inc1\n"
        )
        text = SYNTAX_ZONE.read_text(encoding="utf-8")
        text += f"$INCLUDE {include} inc.example.org.\nafter A 192.0.2.41\n"
        rrsets = self.same(text, "example.org.")
        names = {r.name.to_text() for r in rrsets}
        self.assertTrue({"inc1.inc.example.org.", "after.example.org.", "gen5.example.org."} <= names)
        self.assertEqual(len(rrsets), 44)

    def test_lookup_table_zones(self) -> None:
        for suite in file_cases.suites():
            self.same(suite["zone_text"], suite["origin"])

    def test_made_up_zones(self) -> None:
        from twisted_coredns.testing.zones import synthetic_zone, tangled_zone

        self.assertEqual(sum(len(r) for r in self.same(synthetic_zone(5000), "synth.example.")), 5000)
        self.same(tangled_zone(), "tangled.example.")

    def test_root_zone(self) -> None:
        from twisted_coredns.plugins.file.zonefile import read_zone_file

        path = _gunzip(ROOT_ZONE_GZ, self.dir)
        fast = read_zone_file(path, ".")
        self.assertEqual(_facts(fast), _facts(read_zone_file(path, ".", fast=False)))
        self.assertEqual(sum(len(r) for r in fast), 19597)  # 19,598 lines: the SOA twice (AXFR form)

    def test_fast_road_taken(self) -> None:
        """Plain lines do not go through dnspython's reader (else the speed-up is gone)."""
        from twisted_coredns.plugins.file import zonefile
        from twisted_coredns.testing.zones import synthetic_zone

        slow: list[int] = []
        original = zonefile._Reader._slow

        def counting(reader: Any, lines: list[str], start: int) -> int:
            slow.append(start)
            return original(reader, lines, start)

        self.patch(zonefile._Reader, "_slow", counting)
        zonefile.read_zone_text(synthetic_zone(1000), "synth.example.")
        self.assertEqual(slow, [0, 1, 2])  # $ORIGIN, $TTL and the SOA

    def test_same_errors(self) -> None:
        from twisted_coredns.plugins.file.zonefile import read_zone_text

        head = "$ORIGIN example.org.\n@ 300 IN SOA ns h 1 2 3 4 5\n"
        bad = [
            "x A 300.1.1.1", "x AAAA zz", "x MX 70000 mx", "x MX ten mx", "x TXT", "x A", "x A 1.2.3.4 extra",
            "x FOO 1", "x 300 IN 400 A 1.2.3.4", "x CH A 1.2.3.4", "a..b A 1.2.3.4", "x CNAME a..b",
            "x" * 64 + " A 1.2.3.4", 'x TXT "' + "y" * 300 + '"', "x A 1.2.3.4\nx CNAME y",
            "x CNAME y\nx A 1.2.3.4", "x 1x A 1.2.3.4", 'x TXT "open', '"q" A 1.2.3.4', 'x "300" A 1.2.3.4',
            "x SRV 1 2 y", "x 99999999999 A 1.2.3.4", "x A 01.2.3.4", "x TXT a(b", "w A 1.2.3.4\n  A",
        ]
        for line in bad:
            errors = []
            for fast in (True, False):
                with self.assertRaises(ZoneFileError) as caught:
                    read_zone_text(head + line + "\n", "example.org.", "db", fast=fast)
                errors.append(str(caught.exception))
            self.assertEqual(errors[0], errors[1], line)
            self.assertTrue(errors[0].startswith(("db:3:", "db:4:")), errors[0])


class RootZoneTests(_ServingCase):
    """The root zone of 2018 (19,597 records, 1,544 TLDs) loads and serves: a referral for every
    TLD, the DS of every signed TLD answered at the root, and NXDOMAIN with the SOA and the
    covering NSEC for a TLD that does not exist."""

    timeout = 120

    @inlineCallbacks
    def test_root_zone(self) -> Any:
        from twisted.internet.threads import deferToThread

        from twisted_coredns.plugins.file.zonefile import read_zone_file

        path = _gunzip(ROOT_ZONE_GZ, self.dir)
        # What to expect, from dnspython's own reading of the file (the slow road).
        rrsets = read_zone_file(path, ".", fast=False)
        by_key = {(r.name.to_text(), r.rdtype): r for r in rrsets}
        tlds = sorted(name for name, rdtype in by_key if rdtype == dns.rdatatype.NS and name != ".")
        self.assertEqual(len(tlds), 1544)
        srv = yield serve(self, f". {{\n file {path}\n}}\n")
        failures = yield deferToThread(self._ask_every_tld, srv.port, tlds, by_key)
        self.assertEqual(failures, [])

    def _ask_every_tld(self, port: int, tlds: list[str], by_key: dict[Any, Any]) -> list[str]:
        from twisted_coredns.testing import query

        failures = []
        signed = 0
        for tld in tlds:
            ns = by_key[(tld, dns.rdatatype.NS)]
            glue = set()
            for rdata in ns:
                if rdata.target.is_subdomain(ns.name):
                    for rdtype in (dns.rdatatype.A, dns.rdatatype.AAAA):
                        found = by_key.get((rdata.target.to_text(), rdtype))
                        if found is not None:
                            glue.add(found.to_text())
            reply = query(port, f"www.{tld}", "A", edns=0, payload=4096)
            got = (
                reply.rcode(),
                bool(reply.flags & dns.flags.AA),
                [r.to_text() for r in reply.answer],
                [r.to_text() for r in reply.authority],
                {r.to_text() for r in reply.additional},
            )
            want = (dns.rcode.NOERROR, False, [], [ns.to_text()], glue)
            if got != want:
                failures.append(f"referral {tld}: {got} != {want}")
            ds = by_key.get((tld, dns.rdatatype.DS))
            if ds is not None:
                signed += 1
                reply = query(port, tld, "DS", edns=0, payload=4096)
                if not reply.flags & dns.flags.AA or [r.to_text() for r in reply.answer] != [ds.to_text()]:
                    failures.append(f"DS {tld}: {reply}")
        if signed < 1000:
            failures.append(f"only {signed} signed TLDs")
        # A TLD that is not there: NXDOMAIN, the SOA, and (with DO) the NSEC that covers it.
        missing = dns.name.from_text("nosuchtld.")
        owners = sorted(dns.name.from_text(name) for name, rdtype in by_key if rdtype == dns.rdatatype.NSEC)
        cover = max(owner for owner in owners if owner < missing)
        reply = query(port, missing.to_text(), "A", edns=0, want_dnssec=True)
        authority = {(r.name.to_text(), r.rdtype): r for r in reply.authority}
        covering = authority.get((cover.to_text(), dns.rdatatype.NSEC))
        if (
            reply.rcode() != dns.rcode.NXDOMAIN
            or not reply.flags & dns.flags.AA
            or (".", dns.rdatatype.SOA) not in authority
            or covering is None
            or not cover < missing < covering[0].next
        ):
            failures.append(f"NXDOMAIN: {reply}")
        return failures


class WireEncoderTests(SynchronousTestCase):
    """file's own encoder of answer sections (wire.py) writes the bytes dnspython's encoder
    writes, compression included, for every answer of the lookup-table zones and tangled_zone."""

    @staticmethod
    def dnspython_sections(request: Any, answer: Any) -> tuple[bytes, int, int, int]:
        import io

        question = request.wire[12 : request.end_of_question]
        out = io.BytesIO()
        out.write(b"\x00" * 12 + question)
        compress: dict[Any, int] = {}
        if request.qname == request.name and request.name != ".":
            labels = dns.name.from_text(request.name).labels
            offset = 12
            for i in range(len(labels) - 1):
                compress[dns.name.Name(labels[i:])] = offset
                offset += len(labels[i]) + 1
        counts = []
        for section in (answer.answer, answer.authority, answer.additional):
            counts.append(sum(r.to_wire(out, compress, want_shuffle=False) for r in section))
        return out.getvalue()[12 + len(question) :], counts[0], counts[1], counts[2]

    def test_same_bytes(self) -> None:
        from twisted_coredns.plugins.file.handler import encode_sections
        from twisted_coredns.plugins.file.zonefile import read_zone_text
        from twisted_coredns.testing import make_request
        from twisted_coredns.testing.zones import tangled_names, tangled_zone

        zones = [(s["origin"], s["zone_text"]) for s in file_cases.suites()]
        zones.append(("tangled.example.", tangled_zone()))
        compared = 0
        for origin, text in zones:
            zone = Zone.from_rrsets(origin, read_zone_text(text, origin), out_of_zone=True)
            names = sorted({r.name.to_text() for r in zone.all_rrsets()} | set(tangled_names(origin)))
            for name in names:
                for qtype in ("A", "MX", "NS", "SOA", "TXT", "SRV", "DS", "NSEC"):
                    for spelled, do in ((name, False), (name.upper(), True)):
                        request = make_request(spelled, qtype, edns=0, want_dnssec=do)
                        answer = zone.lookup(request)
                        self.assertEqual(
                            encode_sections(request, answer, zone.templates),
                            self.dnspython_sections(request, answer),
                            f"{spelled} {qtype} do={do}",
                        )
                        compared += 1
        self.assertGreater(compared, 5000)
