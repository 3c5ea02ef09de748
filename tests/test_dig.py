"""The server as the usual command-line clients see it: BIND's dig and Knot's kdig, over UDP and
TCP, against a real `twisted-coredns` process. CI installs both (`make tools`)."""

from __future__ import annotations

import re
import shutil
import subprocess

from twisted.trial.unittest import SkipTest, SynchronousTestCase

from twisted_coredns.testing import SubprocessServer

# Enough authors that the authors.bind answer cannot fit in 512 bytes.
_AUTHORS = " ".join(f"author-number-{i:03d}@example.org" for i in range(40))
COREFILE = f". {{\n chaos twisted-test-1 {_AUTHORS}\n any\n whoami\n}}\n"


def _tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        raise SkipTest(f"{name} is not installed: `make tools` installs it (Debian package "
                       f"{'knot-dnsutils' if name == 'kdig' else 'bind9-dnsutils'})")
    return path


class ClientTestCase(SynchronousTestCase):
    def setUp(self) -> None:
        self.server = SubprocessServer(COREFILE).start()
        self.addCleanup(self.server.stop)

    def run_tool(self, tool: str, *args: str) -> str:
        cmd = [_tool(tool), "@127.0.0.1", "-p", str(self.server.port), *args]
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=30)
        self.assertEqual(done.returncode, 0, f"{cmd}: {done.stderr}")
        return done.stdout


class DigTests(ClientTestCase):
    def test_udp_whoami(self) -> None:
        out = self.run_tool("dig", "example.org", "A", "+norecurse")
        self.assertIn("status: NOERROR", out)
        self.assertRegex(out, r"flags: qr aa;")
        self.assertRegex(out, r"\nexample\.org\.\s+0\s+IN\s+A\s+127\.0\.0\.1\n")
        self.assertRegex(out, r"\n_udp\.example\.org\.\s+0\s+IN\s+SRV\s+0 0 \d+ \.\n")
        self.assertRegex(out, r"EDNS: version: 0, flags:; udp: \d+")

    def test_tcp_whoami(self) -> None:
        out = self.run_tool("dig", "+tcp", "Example.ORG", "AAAA")
        self.assertIn("status: NOERROR", out)
        self.assertRegex(out, r"\n_tcp\.Example\.ORG\.\s+0\s+IN\s+SRV\s+0 0 \d+ \.\n")
        self.assertIn("(TCP)", out)

    def test_chaos_version(self) -> None:
        out = self.run_tool("dig", "version.bind", "TXT", "CH", "+short")
        self.assertEqual(out.strip(), '"twisted-test-1"')

    def test_truncated_without_tcp_retry(self) -> None:
        out = self.run_tool("dig", "authors.bind", "TXT", "CH", "+ignore", "+noedns")
        self.assertRegex(out, r"flags: qr[^;]* tc")
        out = self.run_tool("dig", "authors.bind", "TXT", "CH", "+noedns")  # dig retries over TCP
        self.assertEqual(out.count("author-number-"), 40)

    def test_any_is_answered_with_rfc8482_hinfo(self) -> None:
        out = self.run_tool("dig", "example.org", "ANY")
        self.assertRegex(out, r'IN\s+HINFO\s+"ANY obsoleted" "See RFC 8482"')


class KdigTests(ClientTestCase):
    def test_udp_and_tcp(self) -> None:
        for flag, proto in (("+notcp", "_udp"), ("+tcp", "_tcp")):
            out = self.run_tool("kdig", flag, "www.example.org", "A")
            self.assertIn("status: NOERROR", out, flag)
            self.assertRegex(out, rf"{proto}\.www\.example\.org\.\s+0\s+IN\s+SRV\s+0 0 \d+ \.", flag)

    def test_badvers(self) -> None:
        out = self.run_tool("kdig", "+edns=1", "example.org", "A")
        self.assertIn("status: BADVERS", out)
        self.assertRegex(out, r"Version: 0; flags: ; UDP size: \d+ B; ext-rcode: BADVERS")

    def test_refused_outside_the_zones(self) -> None:
        server = SubprocessServer("example.org {\n whoami\n}\n").start()
        self.addCleanup(server.stop)
        done = subprocess.run([_tool("kdig"), "@127.0.0.1", "-p", str(server.port), "example.net"],
                              capture_output=True, text=True, timeout=30)
        self.assertIn("status: REFUSED", done.stdout)

    def test_supported_edns_options_are_echoed_as_coredns_does(self) -> None:
        # CoreDNS copies the client's OPT options it knows (here the client cookie) into the reply.
        out = self.run_tool("kdig", "+cookie", "example.org", "A")
        self.assertIn("status: NOERROR", out)
        self.assertRegex(out, re.compile(r"COOKIE: [0-9a-f]{16}", re.I))
