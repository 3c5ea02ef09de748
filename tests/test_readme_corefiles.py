"""Every example Corefile of CoreDNS's plugin READMEs, started as CoreDNS's own README test starts
them (test/readme_test.go): each must set up and serve, then stop.

INDEX lists the 121 examples of coredns/coredns @4b26cce. Before one starts, what it names off this
machine is moved to loopback (the network rule of the conformance README): every IPv4 or IPv6
address that is not a network (no ``/len``) becomes 127.0.0.1 or ::1, /etc/resolv.conf becomes a
resolv.conf naming 127.0.0.1, and each port a server block key names becomes a free one, so the
examples neither need root nor collide. The files CoreDNS's test writes (a DNSSEC key pair and a
zone) are written here too, into the working directory the example runs in.
"""

from __future__ import annotations

import ipaddress
import os
import re
import tempfile
from pathlib import Path
from typing import Any

from twisted.internet.defer import inlineCallbacks
from twisted.trial.unittest import TestCase

from twisted_coredns.testing import InProcessServer, free_port

DATA = Path(__file__).resolve().parent / "data" / "readme_corefiles"

# What CoreDNS's README test writes next to the examples (a key made for that test, and a zone).
KEY_PUBLIC = (
    "example.org. IN DNSKEY 256 3 13 eNMYFZYb6e0oJOV47IPo5f/UHy7wY9aBebotvcKakIYLyyGscBmXJQhbKLt/"
    "LhrMNDE2Q96hQnI5PdTBeOLzhQ==\n"
)
KEY_PRIVATE = (
    "Private-key-format: v1.3\nAlgorithm: 13 (ECDSAP256SHA256)\n"
    "PrivateKey: f03VplaIEA+KHI9uizlemUSbUJH86hPBPjmcUninPoM=\n"
)
ZONE = """\
$ORIGIN example.org.
@ 3600 IN SOA sns.dns.icann.org. noc.dns.icann.org. 2017042745 7200 3600 1209600 3600
  3600 IN NS a.iana-servers.net.
  3600 IN NS b.iana-servers.net.
www IN A 127.0.0.1
"""

# The examples that do not start yet, each with the reason (the closing notes list them).
EXPECTED_FAILURES: dict[str, str] = {}

MINIMUM_STARTED = 115

_KEY_PORT = re.compile(r":(\d+)(?=$|\s|,)")
_SCHEME = re.compile(r"^([a-z0-9]+://)?(.*)$")


def _loopback_token(token: str) -> str:
    """One word of a directive with its address, if it is one, moved to loopback."""
    scheme, rest = _SCHEME.match(token).groups()  # type: ignore[union-attr]
    host, port = rest, ""
    if rest.startswith("["):
        host, _, tail = rest[1:].partition("]")
        port = tail
    elif rest.count(":") == 1:
        host, sep, number = rest.partition(":")
        port = sep + number
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        return token
    if ip.version == 4:
        return f"{scheme or ''}127.0.0.1{port}"
    if rest.startswith("["):
        return f"{scheme or ''}[::1]{port}"
    return f"{scheme or ''}::1"


def loopback(text: str, resolv_conf: str) -> str:
    """``text`` with every upstream and bound address on loopback and every key port free."""
    ports: dict[str, str] = {}
    out = []
    depth = 0
    for line in text.splitlines():
        stripped = line.strip()
        if depth == 0 and stripped.endswith("{") and not stripped.startswith("#"):
            def fresh(m: re.Match[str]) -> str:
                return ":" + ports.setdefault(m.group(1), str(free_port()))

            line = _KEY_PORT.sub(fresh, stripped[:-1]) + "{"
        else:
            line = line.replace("/etc/resolv.conf", resolv_conf)
            line = re.sub(r"\S+", lambda m: _loopback_token(m.group(0)), line)
        depth += line.count("{") - line.count("}")
        out.append(line)
    return "\n".join(out) + "\n"


@inlineCallbacks
def _processes_gone(timeout: float = 10.0) -> Any:
    """Wait until the worker processes a multisocket example started have exited and their pipes
    are closed, so the next example (and trial) finds a clean reactor."""
    from twisted.internet import process, reactor
    from twisted.internet.task import deferLater

    deadline = reactor.seconds() + timeout  # type: ignore[attr-defined]
    while reactor.seconds() < deadline:  # type: ignore[attr-defined]
        selectables = list(reactor.getReaders()) + list(reactor.getWriters())  # type: ignore[attr-defined]
        if not any(isinstance(s, process.ProcessReader | process.ProcessWriter) for s in selectables):
            return
        yield deferLater(reactor, 0.05, lambda: None)


def _first_line(exc: BaseException) -> str:
    return str(exc).splitlines()[0] if str(exc) else type(exc).__name__


def examples() -> list[Path]:
    names = (DATA / "INDEX").read_text(encoding="utf-8").split()
    return [DATA / name for name in names]


class ReadmeCorefileTests(TestCase):
    timeout = 300

    def test_loopback_rewrite(self) -> None:
        text = (
            ". :53 {\n    forward . 8.8.8.8:53 tls://[2003::1] 2001:db8::1 /etc/resolv.conf\n"
            "    acl {\n        block net 192.168.0.0/16\n    }\n}\n"
        )
        out = loopback(text, "/tmp/r")
        self.assertNotIn(":53 {", out)
        self.assertIn("forward . 127.0.0.1:53 tls://[::1] ::1 /tmp/r", out)
        self.assertIn("192.168.0.0/16", out)

    @inlineCallbacks
    def test_readme_corefiles_start(self) -> Any:
        here = os.getcwd()
        workdir = tempfile.mkdtemp(prefix="readme-")
        resolv = os.path.join(workdir, "resolv.conf")
        Path(resolv).write_text("nameserver 127.0.0.1\n", encoding="utf-8")
        for name, content in {
            "Kexample.org.+013+45330.key": KEY_PUBLIC,
            "Kexample.org.+013+45330.private": KEY_PRIVATE,
            "example.org.signed": ZONE,
        }.items():
            Path(workdir, name).write_text(content, encoding="utf-8")
        started: list[str] = []
        failed: dict[str, str] = {}
        os.chdir(workdir)
        try:
            for path in examples():
                corefile = loopback(path.read_text(encoding="utf-8"), resolv)
                try:
                    server = InProcessServer(corefile)
                except Exception as exc:
                    failed[path.name] = _first_line(exc)
                    continue
                try:
                    yield server.start()
                except Exception as exc:
                    failed[path.name] = _first_line(exc)
                    # What a failed start bound is let go, as the command's exit would.
                    yield server.stop()
                    continue
                try:
                    yield server.stop()
                except Exception as exc:
                    failed[path.name] = f"stop: {exc}"
                    continue
                started.append(path.name)
                yield _processes_gone()
        finally:
            os.chdir(here)
        print(f"\nREADME Corefiles started: {len(started)} of {len(started) + len(failed)}")
        for name, why in sorted(failed.items()):
            print(f"  {name}: {why}")
        self.assertEqual(len(started) + len(failed), 121)
        unexpected = {n: w for n, w in failed.items() if n not in EXPECTED_FAILURES}
        self.assertEqual(unexpected, {}, "README Corefiles that stopped starting")
        self.assertGreaterEqual(len(started), MINIMUM_STARTED)
