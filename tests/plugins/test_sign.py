"""sign: its Corefile syntax and errors, zones it signs (checked by ldns-verify-zone, kzonecheck
and dnspython's validator), when it signs again, and a real server where ``file`` serves what
``sign`` wrote, validated by ``delv``."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

import dns.dnssec
import dns.name
import dns.query
import dns.rdatatype
import dns.rrset
from twisted.internet import reactor
from twisted.internet.defer import inlineCallbacks
from twisted.internet.task import Clock, deferLater
from twisted.internet.threads import deferToThread
from twisted.trial.unittest import SynchronousTestCase, TestCase

from twisted_coredns.dns.dnssec import key_file_paths, read_key_pair
from twisted_coredns.plugins.file.zonefile import read_zone_file
from twisted_coredns.plugins.sign.setup import Sign
from twisted_coredns.plugins.sign.signer import Signer
from twisted_coredns.testing import InProcessServer, make_query
from twisted_coredns.testing.setup import setup_error

from .dnssec_support import delv, write_trust_anchor
from .logerr_support import LogCapture

DATA = Path(__file__).resolve().parent.parent / "data" / "dnssec"
MIEK_KEY = "Kmiek.nl.+013+59725"
KSK, ZSK = "Kexample.org.+013+12235", "Kexample.org.+013+16275"
MIEK = dns.name.from_text("miek.nl.")


def _copy(directory: str, *names: str) -> None:
    for name in names:
        shutil.copy(DATA / name, os.path.join(directory, name))


def _key(name: str) -> Any:
    return read_key_pair(*key_file_paths(str(DATA / name)))


def _tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        raise AssertionError(f"{name} is not installed")
    return path


class SetupTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.dir = os.path.abspath(self.mktemp())
        os.makedirs(self.dir)
        _copy(
            self.dir, f"{MIEK_KEY}.key", f"{MIEK_KEY}.private", f"{ZSK}.key", f"{ZSK}.private", "db.miek.nl"
        )

    def error(self, text: str) -> str | None:
        return setup_error(f"root {self.dir}\n{text}")

    def test_accepted(self) -> None:
        for text in [
            f"sign db.miek.nl miek.nl {{\n key file {MIEK_KEY}\n}}",
            f"sign db.miek.nl example.org {{\n key file {MIEK_KEY}.key\n directory {self.dir}\n}}",
            f"sign db.miek.nl miek.nl {{\n key directory {self.dir}\n}}",
            "sign db.miek.nl {\n key unknown x\n}",
        ]:
            self.assertIsNone(self.error(text), text)

    def test_errors(self) -> None:
        p = "plugin/sign: "
        self.assertEqual(
            self.error("sign"),
            p
            + "Corefile:3 - Error during parsing: "
            "Wrong argument count or unexpected line ending after 'sign'",
        )
        self.assertEqual(
            self.error("sign db.miek.nl {\n key file /etc/coredns/keys/Kexample.org\n}"),
            p + "open /etc/coredns/keys/Kexample.org.key: no such file or directory",
        )
        self.assertEqual(
            self.error(f"sign db.miek.nl {{\n key file {ZSK}\n}}"),
            p + f'DNSKEY in "{self.dir}/{ZSK}.key" is not a CSK/KSK',
        )
        self.assertEqual(
            self.error("sign db.miek.nl {\n directory a b\n}"),
            p + 'can only be one argument after "directory"',
        )
        self.assertEqual(
            self.error("sign db.miek.nl {\n directory\n}"), p + 'can only be one argument after "directory"'
        )
        self.assertEqual(
            self.error("sign db.miek.nl {\n colour blue\n}"),
            p + "Corefile:4 - Error during parsing: unknown property 'colour'",
        )
        self.assertEqual(
            self.error("sign db.miek.nl {\n key\n}"),
            p
            + "Corefile:4 - Error during parsing: Wrong argument count or unexpected line ending after 'key'",
        )
        self.assertEqual(
            self.error("sign db.miek.nl {\n key file\n}"),
            p
            + "Corefile:4 - Error during parsing: "
            "Wrong argument count or unexpected line ending after 'file'",
        )
        self.assertEqual(
            self.error("sign db.miek.nl example.com {\n key directory .\n}"),
            p + 'no CSK/KSK key pair for "example.com." in "."',
        )
        self.assertIn("contains invalid characters", self.error('sign "\udcff" {\n}') or "")


def _verify(path: str, origin: str) -> None:
    for cmd in (
        [_tool("ldns-verify-zone"), path],
        [_tool("kzonecheck"), "-o", origin, "--dnssec", "on", path],
    ):
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
        assert out.returncode == 0, f"{cmd}: {out.stdout}{out.stderr}"


class SignerTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.dir = os.path.abspath(self.mktemp())
        os.makedirs(self.dir)

    def signer(self, db: str, origin: str = "miek.nl.", key: str = MIEK_KEY) -> Signer:
        return Signer(str(DATA / db), origin, [_key(key)], self.dir)

    def test_signs_as_coredns(self) -> None:
        signer = self.signer("db.miek.nl")
        now = time.time()
        zone = signer.sign(now)
        self.assertEqual(zone.serial, int(now))
        by = {(r.name.to_text(), r.rdtype, r.covers): r for r in zone.rrsets}
        apex = "miek.nl."
        self.assertEqual(len(by[(apex, dns.rdatatype.CDS, 0)]), 2)  # SHA-1 and SHA-256
        self.assertEqual(len(by[(apex, dns.rdatatype.CDNSKEY, 0)]), 1)
        self.assertEqual(by[(apex, dns.rdatatype.DNSKEY, 0)].ttl, 1800)  # the SOA's TTL
        nsec = by[(apex, dns.rdatatype.NSEC, 0)]
        self.assertEqual((str(nsec[0].next), nsec.ttl), ("a.miek.nl.", 14400))  # TTL: the SOA minimum
        self.assertNotIn(("ns2.bla.miek.nl.", dns.rdatatype.RRSIG, dns.rdatatype.A), by)  # glue
        self.assertNotIn(("ns2.bla.miek.nl.", dns.rdatatype.NSEC, 0), by)
        self.assertNotIn(("bla.miek.nl.", dns.rdatatype.RRSIG, dns.rdatatype.NS), by)  # a delegation
        self.assertIn(("ns3.blaaat.miek.nl.", dns.rdatatype.RRSIG, dns.rdatatype.AAAA), by)
        sig = by[(apex, dns.rdatatype.RRSIG, dns.rdatatype.SOA)][0]
        self.assertTrue(now - 21 * 3600 - 1 <= sig.inception <= now - 3 * 3600)
        self.assertTrue(now + 32 * 86400 - 1 <= sig.expiration <= now + 37 * 86400)
        keys = {MIEK: by[(apex, dns.rdatatype.DNSKEY, 0)]}
        for (name, rdtype, _covers), rrset in by.items():
            sigs = by.get((name, dns.rdatatype.RRSIG, rdtype))
            if sigs is not None and rdtype != dns.rdatatype.RRSIG:
                dns.dnssec.validate(rrset, sigs, keys, now=now)
        signer.write(zone)
        _verify(signer.path, "miek.nl.")

    def test_delegation_with_ds(self) -> None:
        signer = self.signer("db.miek.nl_ns")
        signer.write(signer.sign(time.time()))
        records = read_zone_file(signer.path, "miek.nl.")
        child = {r.rdtype: r for r in records if r.name.to_text() == "child.miek.nl."}
        self.assertEqual(
            set(child), {dns.rdatatype.NS, dns.rdatatype.DS, dns.rdatatype.NSEC, dns.rdatatype.RRSIG}
        )
        self.assertEqual(str(child[dns.rdatatype.NSEC][0].next), "www.miek.nl.")
        _verify(signer.path, "miek.nl.")

    def test_key_made_for_another_zone(self) -> None:
        # The key's owner becomes the zone's (a key is just a key), as CoreDNS does.
        signer = self.signer("db.miek.nl", "example.org.", KSK)
        Path(self.dir, "db").write_text(
            "@ 300 IN SOA ns admin 1 2 3 4 5\n@ NS ns\nns A 127.0.0.1\n*.w TXT hi\n"
        )
        signer.dbfile = os.path.join(self.dir, "db")
        signer.write(signer.sign(time.time()))
        self.assertEqual(signer.signed_file, "db.example.org.signed")
        _verify(signer.path, "example.org.")

    def test_bad_zones(self) -> None:
        Path(self.dir, "nosoa").write_text("www 300 IN A 127.0.0.1\n")
        with self.assertRaises(ValueError) as cm:
            Signer(os.path.join(self.dir, "nosoa"), "miek.nl.", [], self.dir).sign(time.time())
        self.assertIn("has no SOA record", str(cm.exception))
        Path(self.dir, "nsec3").write_text("@ 300 IN SOA ns admin 1 2 3 4 5\n@ NSEC3PARAM 1 0 0 -\n")
        with self.assertRaises(ValueError) as cm:
            Signer(os.path.join(self.dir, "nsec3"), "miek.nl.", [], self.dir).sign(time.time())
        self.assertIn("NSEC3 zone is not supported", str(cm.exception))

    def test_resign_rules(self) -> None:
        signer = self.signer("db.miek.nl")
        self.assertEqual(signer.resign_reason(time.time()), f"open {signer.path}: no such file or directory")
        now = time.time()
        signer.write(signer.sign(now))
        self.assertIsNone(signer.resign_reason(now))
        self.assertIn("was more than: 144h0m0s ago", signer.resign_reason(now + 7 * 86400) or "")
        self.assertIn("date is in the future", signer.resign_reason(now - 86400) or "")
        signer.jitter_inception, signer.jitter_expiration = 0, -30 * 86400  # expires in 2 days
        signer.write(signer.sign(now))
        self.assertIn("is less than: 168h0m0s away", signer.resign_reason(now) or "")
        shutil.copy(DATA / "db.miek.nl", signer.path)
        self.assertEqual(signer.resign_reason(now), "no SOA RRSIG found in first 100 records")


class ScheduleTests(TestCase):
    """Signing at start, in a thread, and again on the 5-hour timer when due."""

    timeout = 30

    @inlineCallbacks
    def test_start_and_refresh(self) -> Any:
        directory = os.path.abspath(self.mktemp())
        os.makedirs(directory)
        logs = LogCapture(self, "sign")
        wall = [time.time()]
        clock = Clock()
        signer = Signer(str(DATA / "db.miek.nl"), "miek.nl.", [_key(MIEK_KEY)], directory)
        sign = Sign([signer], reactor, clock=clock, wall=lambda: wall[0])
        sign.start()
        yield sign.first_round
        texts = logs.texts()
        self.assertIn(
            f'plugin/sign: Signing "miek.nl." because open {signer.path}: no such file or directory', texts
        )
        self.assertTrue(
            any(
                t.startswith(
                    f'plugin/sign: Successfully signed zone "miek.nl." in "{signer.path}" '
                    'with key tags "59725" and '
                )
                for t in texts
            ),
            texts,
        )
        first = signer.resign_reason(wall[0])
        self.assertIsNone(first)
        logs.clear()
        self.assertEqual([c.getTime() for c in clock.getDelayedCalls()], [5 * 3600])  # the timer
        yield sign.refresh()  # nothing due yet
        self.assertEqual(logs.texts(), [])
        wall[0] += 7 * 86400
        yield sign.refresh()
        self.assertTrue(any("because inception" in t for t in logs.texts()), logs.texts())
        sign.stop()
        again = Sign([signer], reactor, clock=Clock(), wall=lambda: wall[0])
        logs.clear()
        again.start()
        yield again.first_round
        again.stop()
        self.assertEqual(
            logs.texts(),
            [f'plugin/sign: Skipping signing zone "miek.nl." in "{signer.path}": signatures are valid'],
        )
        broken = Sign(
            [Signer(os.path.join(directory, "missing"), "miek.nl.", [], directory)], reactor, clock=Clock()
        )
        logs.clear()
        broken.start()
        yield broken.first_round
        broken.stop()
        self.assertTrue(
            any(
                t.startswith('plugin/sign: Error signing "miek.nl." with key tags "" in ')
                and "open " + os.path.join(directory, "missing") in t
                for t in logs.texts()
            ),
            logs.texts(),
        )


class ServerTests(TestCase):
    """sign writes the file, file serves it, delv validates it."""

    timeout = 60

    @inlineCallbacks
    def test_file_serves_what_sign_wrote(self) -> Any:
        directory = os.path.abspath(self.mktemp())
        os.makedirs(directory)
        _copy(directory, f"{MIEK_KEY}.key", f"{MIEK_KEY}.private", "db.miek.nl_ns")
        corefile = (
            f"miek.nl {{\n root {directory}\n file db.miek.nl.signed {{\n  reload 100ms\n }}\n"
            f" sign db.miek.nl_ns {{\n  key file {MIEK_KEY}\n  directory .\n }}\n}}\n"
        )
        server = InProcessServer(corefile)
        yield server.start()
        self.addCleanup(server.stop)
        query = make_query("www.miek.nl.", "AAAA", edns=True, want_dnssec=True)
        reply = None
        for _ in range(200):  # until file has loaded what sign wrote
            reply = yield deferToThread(dns.query.udp, query, "127.0.0.1", port=server.port, timeout=3)
            if reply.rcode() == 0 and len(reply.answer) == 2:
                break
            yield deferLater(reactor, 0.05, lambda: None)
        assert reply is not None
        self.assertEqual(len(reply.answer), 2, reply)
        keys = yield deferToThread(
            dns.query.udp,
            make_query("miek.nl.", "DNSKEY", edns=True, want_dnssec=True),
            "127.0.0.1",
            port=server.port,
            timeout=3,
        )
        dnskey = keys.find_rrset(keys.answer, MIEK, 1, dns.rdatatype.DNSKEY)
        dns.dnssec.validate(reply.answer[0], reply.answer[1], {MIEK: dnskey})
        k = dnskey[0]
        anchor = write_trust_anchor(Path(directory, "anchor"), "miek.nl.", k)
        _tool("delv")
        for qname, qtype, expect in [
            ("www.miek.nl", "AAAA", "; fully validated"),
            ("b.miek.nl", "A", "; negative response, fully validated"),
            ("www.miek.nl", "TXT", "; negative response, fully validated"),
            ("child.miek.nl", "DS", "; fully validated"),
        ]:
            out = yield delv(server.port, anchor, "miek.nl", qname, qtype)
            self.assertIn(expect, out.stdout + out.stderr, f"{qname} {qtype}: {out.stdout}{out.stderr}")

    @inlineCallbacks
    def test_readme_corefiles_start(self) -> Any:
        directory = os.path.abspath(self.mktemp())
        keys = os.path.join(directory, "keys")
        os.makedirs(keys)
        for suffix in (".key", ".private"):
            shutil.copy(DATA / f"{KSK}{suffix}", os.path.join(keys, f"Kexample.org{suffix}"))
            shutil.copy(DATA / f"{KSK}{suffix}", os.path.join(keys, f"{KSK}{suffix}"))
            shutil.copy(DATA / f"{KSK}{suffix}", os.path.join(keys, f"Kexample.net.+013+12235{suffix}"))
        Path(directory, "db.example.org").write_text(
            "@ 300 IN SOA ns admin 1 2 3 4 5\n@ NS ns\nns A 127.0.0.1\n"
        )
        for n in (1, 2, 3, 4):
            text = (DATA / f"readme_sign_{n}.corefile").read_text(encoding="utf-8")
            text = (
                text.replace("/etc/coredns/keys", keys)
                .replace("/var/lib/coredns/", "")
                .replace("plugin/sign/testdata/", "")
                .replace("var/lib/coredns/", "")
            )
            text = text.replace("{\n", f"{{\n    root {directory}\n", 1)
            server = InProcessServer(text)
            yield server.start()
            yield server.stop()
