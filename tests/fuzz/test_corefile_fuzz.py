"""Whatever the Corefile, ``build`` gives a server or CoreDNS's one-line error, never a traceback.

``tests/corefile/test_corefile_fuzz.py`` fuzzes the parser alone. Here the text goes through
``instance.build``, as ``twisted-coredns`` reads a Corefile: parsing, every plugin's setup with
whatever arguments and blocks, the addresses, the zones. Corefile-like text is made of server
blocks whose keys are addresses good and bad, directives of the registry with arguments drawn
from what their setups read (numbers, durations, addresses, names, options, files), nested
blocks, snippets, imports and environment references, then broken the way a hand breaks one
(a brace lost, a quote opened). Every error is a ``CorefileError`` whose message has one of
CoreDNS's shapes, and none is a ``PluginBug``. A few failing texts go through the real command:
exit status 1, that one line on standard error, no traceback.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from twisted.trial.unittest import SynchronousTestCase

from twisted_coredns.corefile import CorefileError
from twisted_coredns.instance import Instance, build
from twisted_coredns.plugin import PluginBug
from twisted_coredns.plugins.forward import addresses
from twisted_coredns.registry import default_registry
from twisted_coredns.testing import run_cli

FUZZ = settings(
    max_examples=400, derandomize=True, database=None, deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much, HealthCheck.data_too_large],
)  # fmt: skip

ENV = {"A": "example.org", "NL": "\n", "OPEN": "{", "EMPTY": "", "PORT": "1053", "LOOP": "{$LOOP}"}

ERROR_SHAPES = re.compile(
    r"(plugin/[a-z0-9_-]+: )?[^\n]*:\d+ - (Error during parsing|Syntax error): "  # caddy's, a plugin's
    r"|plugin/[a-z0-9_-]+: "  # a plugin's own words
    r"|error inspecting server blocks: "  # a key that is no address
    r"|cannot serve "  # a zone served twice, a transport not served yet
    r"|open [^\n]*: "  # an import that cannot be read
    r"|(DoQ|DoH3) requires TLS, ",  # a quic:// or https3:// block without the tls plugin
)
"""The shapes CoreDNS's messages take (``corefile/errors.py``, ``plugin.plugin_error``,
``instance._inspect``, ``config.check_zones``)."""

DIRECTIVES = sorted(default_registry().names())

KEYS = (
    ".", "example.org", "example.org:53", ".:1053", "dns://.:0", "dns://example.org:5353", "tls://.",
    "https://.", "grpc://.", "quic://.", "10.0.0.0/8", "0.0.10.in-addr.arpa", "[::1]:53", "::1",
    "example.org:99999", "example.org:-1", "example.org:", ":53", "a..b", "*", "dns://", "{$A}",
    "{$A}:{$PORT}", "xn--bcher-kva.example", "EXAMPLE.ORG.", "fwd.test", "127.0.0.1", "unix://.",
)  # fmt: skip

ARGS = (
    "0", "1", "2", "-1", "3600", "65536", "1024", "1025", "99999999999999999999", "1.5", "10s", "1h",
    "-5s", "0s", "300ms", "1h30m", "abc", ".", "example.org", "example.org.", "fwd.test", "*",
    "127.0.0.1", "127.0.0.1:53", "127.0.0.1:0", "127.0.0.1:99999", "[::1]:53", "::1", "tls://127.0.0.1",
    "dns://127.0.0.1", "https://127.0.0.1/dns-query", "unix:///nonexistent.sock", "tcp://127.0.0.1:6000",
    "localhost:53", "example.org:53", "success", "denial", "NXDOMAIN", "SERVFAIL", "all", "A", "IN", "CH",
    "{combined}", "{common}", '"{type} {name} {rcode}"', '"{>id} {/meta}"', "except", "policy", "random",
    "sequential", "round_robin", "max_fails", "health_check", "prefer_udp", "force_tcp", "expire",
    "tls", "tls_servername", "consolidate", '"^abc.*$"', '"[unclosed"', "stop", "fallthrough", "ttl",
    "no_reverse", "lameduck", "until-ready", "continuously", "serve_stale", "prefetch", "keepttl",
    "disable", "verify", "immediate", "{$A}", "{%A%}", "{$EMPTY}", '""', "hosts.txt", "missing.txt",
    "sub", "\u00e9\u00e8", "x" * 300, "{", "}", "#", "'quoted'", "a,b", "on", "off", "true", "-",
    "/nonexistent/dir", "%", "\\", "nsid", "domain", "max_concurrent", "next", "failover",
)  # fmt: skip

PROPERTIES = (
    "except", "force_tcp", "prefer_udp", "expire", "max_fails", "tls", "tls_servername", "policy",
    "health_check", "max_concurrent", "failfast_all_unhealthy_upstreams", "next", "failover",
    "max_connect_attempts", "success", "denial", "prefetch", "serve_stale", "servfail", "disable",
    "keepttl", "class", "consolidate", "stacktrace", "lameduck", "ttl", "reload", "no_reverse",
    "fallthrough", "identity", "version", "extra", "monitor", "127.0.0.1 localhost",
)  # fmt: skip
"""What the plugins read inside their blocks (and a hosts line)."""

_arg = st.one_of(st.sampled_from(ARGS), st.sampled_from(ARGS), st.text(
    st.characters(codec="utf-8", exclude_characters="\n{}\"#"), min_size=1, max_size=8))
_directive = st.sampled_from((*DIRECTIVES,) * 12 + ARGS[:12])  # now and then no directive at all
_property = st.one_of(st.sampled_from(PROPERTIES), st.sampled_from(PROPERTIES), _arg)


_key = st.sampled_from((".",) * 8 + ("example.org", ".:1053", "fwd.test") * 3 + KEYS)


def _line(draw: st.DrawFn, depth: int) -> str:
    words = [draw(_directive if depth == 0 else _property), *draw(st.lists(_arg, max_size=4))]
    text = " ".join(words)
    if depth < 2 and draw(st.integers(0, 3)) == 0:
        inner = [_line(draw, depth + 1) for _ in range(draw(st.integers(0, 3)))]
        text += " {\n" + "".join(f"  {line}\n" for line in inner) + "}"
    return text


@st.composite
def corefiles(draw: st.DrawFn) -> str:
    """Corefile-like text: snippets, server blocks of directives with arguments and blocks,
    imports, environment references; then, now and then, broken."""
    parts = []
    imports = ["import other", "import *.conf", "import nope", "import sub/*"]
    if draw(st.integers(0, 4)) == 0:
        parts.append("(snip) {\n  " + _line(draw, 0) + "\n}\n")
        imports += ["import snip"] * 4
    for _ in range(draw(st.integers(1, 3))):
        keys = " ".join(draw(st.lists(_key, min_size=1, max_size=3)))
        lines = [_line(draw, 0) for _ in range(draw(st.integers(0, 5)))]
        if draw(st.integers(0, 5)) == 0:
            lines.insert(draw(st.integers(0, len(lines))), draw(st.sampled_from(imports)))
        parts.append(keys + " {\n" + "".join(f"  {line}\n" for line in lines) + "}\n")
    text = "".join(parts)
    for _ in range(draw(st.sampled_from((0, 0, 0, 1, 2)))):
        at = draw(st.integers(0, len(text)))
        glitch = draw(st.sampled_from(("{", "}", "\n", '"', "\\", "#", " ", "{$", "}\n}", "\x00", "\r")))
        if draw(st.booleans()):
            text = text[:at] + glitch + text[at:]
        else:
            text = text[:at] + text[at + 1 :]
    return text


def _lookup(hostname: str, *_resolvers: object) -> list[str]:
    # forward resolves host names in its setup: never off this machine here.
    if hostname.startswith("nx"):
        raise addresses.AddressError(f"lookup {hostname}: no such host")
    return ["127.0.0.1"]


class BuildFuzzTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.patch(addresses, "system_lookup", _lookup)
        self.patch(addresses, "_dns_lookup", _lookup)
        self.folder = Path(self.mktemp()).resolve()
        self.folder.mkdir(parents=True)
        (self.folder / "hosts.txt").write_text("127.0.0.1 localhost\n::1 localhost\n")
        (self.folder / "other").write_text("log\nerrors\n")
        (self.folder / "a.conf").write_text("example.net {\n whoami\n}\n")
        (self.folder / "sub").mkdir()
        self.corefile = str(self.folder / "Corefile")

    def build(self, text: str) -> Instance | CorefileError:
        """The server ``text`` makes, or its error; anything else fails the test."""
        try:
            return build(text, self.corefile, dns_port=0, default_host="127.0.0.1", env=ENV)
        except PluginBug as bug:
            self.fail(f"{text!r}:\n{bug}\n{bug.traceback}")
        except CorefileError as error:
            self.assertRegex(str(error), ERROR_SHAPES, msg=repr(text))
            return error

    @FUZZ
    @given(text=corefiles())
    def test_corefile_like_text(self, text: str) -> None:
        self.build(text)

    @settings(FUZZ, max_examples=200)
    @given(text=st.text())
    def test_any_text(self, text: str) -> None:
        self.build(text)

    @settings(FUZZ, max_examples=200)
    @given(text=st.text(st.sampled_from(". {}\n\"#\\$%()*,:ax0"), max_size=40))
    def test_punctuation(self, text: str) -> None:
        self.build(text)

    @settings(FUZZ, max_examples=200)
    @given(name=st.sampled_from(DIRECTIVES), args=st.lists(_arg, max_size=5),
           block=st.lists(st.tuples(_property, st.lists(_arg, max_size=3)), max_size=4))
    def test_one_directive(self, name: str, args: list[str], block: list[tuple[str, list[str]]]) -> None:
        # Each plugin's setup alone, with every kind of argument and property.
        lines = "".join(f"  {prop} {' '.join(values)}\n" for prop, values in block)
        body = " {\n" + lines + " }" if block else ""
        self.build(f". {{\n {name} {' '.join(args)}{body}\n}}\n")

    def test_the_fuzz_corefile_builds(self) -> None:
        from .target import corefile

        self.assertIsInstance(self.build(corefile(53)), Instance)


class CommandFuzzTests(SynchronousTestCase):
    """``twisted-coredns -conf FILE`` with a Corefile ``build`` refuses: status 1, the error as
    one line on standard error, nothing on standard output, no traceback."""

    def setUp(self) -> None:
        self.looked_up: list[str] = []

        def lookup(hostname: str, *_resolvers: object) -> list[str]:
            self.looked_up.append(hostname)
            return ["127.0.0.1"]

        self.patch(addresses, "system_lookup", lookup)
        self.patch(addresses, "_dns_lookup", lookup)
        self.env = {**os.environ, **ENV}

    @settings(FUZZ, max_examples=6)
    @given(text=corefiles())
    def test_bad_corefiles(self, text: str) -> None:
        folder = Path(self.mktemp()).resolve()
        folder.mkdir(parents=True)
        path = folder / "Corefile"
        path.write_text(text, encoding="utf-8")
        del self.looked_up[:]
        try:
            build(text, str(path), dns_port=0, env=self.env)
        except PluginBug as bug:
            self.fail(f"{text!r}:\n{bug}")
        except CorefileError as error:
            expected = str(error)
        else:
            assume(False)
        # The command would ask the system's resolver for a host name: never off this machine.
        assume(not self.looked_up)
        assume("\n" not in expected)  # a quoted token may hold a newline, which the line repeats
        result = run_cli(["-conf", str(path), "-dns.port", "0"], cwd=folder, env=self.env)
        # Standard output holds only what parsing warned about (CoreDNS logs it there too).
        said = [line for line in result.stdout.splitlines() if not line.startswith("[WARNING] ")]
        self.assertEqual((result.returncode, said), (1, []), msg=repr(text))
        self.assertEqual(result.stderr, expected + "\n", msg=repr(text))
        self.assertNotIn("Traceback", result.stderr)
