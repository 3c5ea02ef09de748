"""docs/plugin-api.md runs as written: its package is built from its code blocks, installed with pip,
listed by ``-plugins``, tested by its own pytest-twisted tests, and its Corefiles are served and
asked the queries the guide shows, with the answers and log lines the guide shows.

The guide marks what this test reads with an HTML comment on the line before a fence:
``<!-- file: PATH -->`` (a file of the package, or a Corefile), ``<!-- append: PATH -->`` (more lines
for a file named before), ``<!-- output: dig -->`` (the answer lines of the ``dig +noall +answer``
commands of the code block before it), ``<!-- output: log -->`` (lines the server prints by the time
it has stopped) and ``<!-- output: -plugins -->`` (lines of ``twisted-coredns -plugins``). A
Corefile's session is every ``dig`` and output block after it, up to the next Corefile.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import dns.flags
import dns.message
import dns.rcode
from twisted.trial.unittest import SynchronousTestCase

from twisted_coredns.testing import SubprocessServer, free_port, run_cli

ROOT = Path(__file__).resolve().parents[1]
GUIDE = ROOT / "docs" / "plugin-api.md"
PACKAGE = "hello"  # the folder of the guide's package, as its file blocks name it
GUIDE_TESTS = 13  # test functions (parametrized cases counted) in the guide's hello/tests/
GUIDE_PLUGINS = ("hello", "rcodes", "alias", "relay")
CODE_LANGUAGES = ("python", "toml", "corefile")  # fences that must be named by a marker

_FENCE = re.compile(r"^(?:<!-- (file|append|output): (\S+) -->\n)?```(\w*)[^\n]*\n(.*?)^```$", re.M | re.S)
_DIG = re.compile(r"^dig @127\.0\.0\.1 -p 1053((?: \+\S+)*) (\S+) (\S+)", re.M)


@dataclass
class Block:
    marker: str | None  # "file", "append", "output" or None
    target: str | None
    language: str
    text: str


@dataclass
class Session:
    """A Corefile of the guide and what the guide does with it."""

    name: str
    corefile: str
    digs: list[tuple[str, str, bool]] = field(default_factory=list)  # name, type, +answer shown
    answers: list[str] = field(default_factory=list)
    log: list[str] = field(default_factory=list)


def _blocks(text: str) -> list[Block]:
    return [Block(m[1], m[2], m[3], m[4]) for m in _FENCE.finditer(text)]


def _sessions(blocks: list[Block]) -> dict[str, Session]:
    sessions: dict[str, Session] = {}
    current: Session | None = None
    for block in blocks:
        if block.marker == "file" and block.target and block.target.startswith("Corefile"):
            current = sessions[block.target] = Session(block.target, block.text)
        elif current is None:
            continue
        elif block.marker is None and block.language == "sh":
            for opts, name, rdtype in _DIG.findall(block.text):
                current.digs.append((name, rdtype, "+answer" in opts))
        elif block.marker == "output" and block.target == "dig":
            current.answers += [_spaces(line) for line in block.text.splitlines() if line.strip()]
        elif block.marker == "output" and block.target == "log":
            current.log += [line for line in block.text.splitlines() if line.strip()]
    return sessions


def _spaces(line: str) -> str:
    return " ".join(line.split())


def _write(blocks: list[Block], into: Path) -> None:
    written: set[str] = set()
    for block in blocks:
        if block.marker not in ("file", "append"):
            continue
        assert block.target is not None
        path = into / block.target
        if block.marker == "file":
            if block.target in written:
                raise AssertionError(f"the guide writes {block.target} twice; add to it with 'append'")
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(block.text, encoding="utf-8")
            written.add(block.target)
        else:
            if block.target not in written:
                raise AssertionError(f"the guide appends to {block.target} before writing it")
            with path.open("a", encoding="utf-8") as f:
                f.write(block.text)


@dataclass
class Built:
    source: Path  # the files of the guide, as extracted
    target: Path  # where pip installed the package


_built: Built | None = None
_tmp: tempfile.TemporaryDirectory[str] | None = None


def _build() -> Built:
    """Extract the guide and pip-install its package once per test run (trial has no setUpClass)."""
    global _built, _tmp
    if _built is None:
        _tmp = tempfile.TemporaryDirectory(prefix="coredns-guide-")
        source, target = Path(_tmp.name, "guide"), Path(_tmp.name, "site")
        _write(_blocks(GUIDE.read_text(encoding="utf-8")), source)
        cmd = [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation",
               "--target", str(target), str(source / PACKAGE)]
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
        if done.returncode != 0:
            raise RuntimeError(f"pip install of the guide's package failed:\n{done.stdout}\n{done.stderr}")
        _built = Built(source, target)
    return _built


def _env(target: Path) -> dict[str, str]:
    paths = [str(target), os.environ.get("PYTHONPATH", "")]
    return {"PYTHONPATH": os.pathsep.join(p for p in paths if p)}


class GuideTextTests(SynchronousTestCase):
    """What can be checked without installing anything."""

    def setUp(self) -> None:
        self.blocks = _blocks(GUIDE.read_text(encoding="utf-8"))

    def test_every_code_block_is_named(self) -> None:
        unnamed = [b.text.splitlines()[0] for b in self.blocks
                   if b.language in CODE_LANGUAGES and b.marker not in ("file", "append")]
        self.assertEqual(unnamed, [], "code blocks without a <!-- file: --> or <!-- append: --> marker")

    def test_every_marker_is_read(self) -> None:
        # A marker the fence pattern misses (a typo, a blank line before the fence) is an untested block.
        text = GUIDE.read_text(encoding="utf-8")
        self.assertEqual(text.count("<!-- "), sum(1 for b in self.blocks if b.marker))

    def test_only_loopback_addresses(self) -> None:
        addresses = set(re.findall(r"\b\d{1,3}(?:\.\d{1,3}){3}\b", GUIDE.read_text(encoding="utf-8")))
        self.assertEqual(addresses - {"127.0.0.1"}, set())

    def test_every_session_is_checked(self) -> None:
        sessions = _sessions(self.blocks)
        self.assertEqual(sorted(sessions), ["Corefile.hello", "Corefile.relay", "Corefile.wrap"])
        for session in sessions.values():
            self.assertTrue(session.digs, f"{session.name}: the guide asks it nothing")


class GuidePackageTests(SynchronousTestCase):
    """The guide's package, installed with pip into a directory on the servers' PYTHONPATH."""

    def setUp(self) -> None:
        self.built = _build()
        self.env = _env(self.built.target)

    def test_dropin_layout(self) -> None:
        plugins = self.built.target / "twisted" / "plugins"
        self.assertTrue((plugins / "hellopkg_dropin.py").exists())
        self.assertFalse((plugins / "__init__.py").exists())
        self.assertFalse((plugins.parent / "__init__.py").exists())

    def test_plugins_listed_once(self) -> None:
        out = run_cli(["-plugins"], env=self.env)
        self.assertEqual(out.returncode, 0, out.stderr)
        for name in GUIDE_PLUGINS:
            self.assertEqual(out.stdout.count(f"  dns.{name}\n"), 1, out.stdout)
        self.assertNotIn("ignored", out.stdout + out.stderr)
        shown = next(b for b in _blocks(GUIDE.read_text(encoding="utf-8")) if b.target == "-plugins")
        for line in shown.text.splitlines():
            if line.strip() != "...":
                self.assertEqual(out.stdout.count(line + "\n"), 1, f"{line!r} not in:\n{out.stdout}")

    def test_guide_tests_pass(self) -> None:
        tests = self.built.source / PACKAGE / "tests"
        cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-o", "addopts=", str(tests)]
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=120,
                              env={**os.environ, **self.env}, cwd=self.built.source / PACKAGE)
        output = done.stdout + done.stderr
        self.assertEqual(done.returncode, 0, output)
        self.assertRegex(output, rf"(?m)^{GUIDE_TESTS} passed in ", output)

    def test_guide_python_passes_ruff(self) -> None:
        ruff = shutil.which("ruff", path=str(Path(sys.executable).parent)) or shutil.which("ruff")
        if ruff is None:
            self.skipTest("ruff is not installed")
        # Run in the package folder: its own [tool.ruff] applies, as it would for the author.
        done = subprocess.run([ruff, "check", "--no-cache", "src", "tests"], capture_output=True, text=True,
                              timeout=60, cwd=self.built.source / PACKAGE)
        self.assertEqual(done.returncode, 0, done.stdout + done.stderr)

    def serve(self, name: str) -> tuple[list[dns.message.Message], str]:
        """Serve the guide's Corefile ``name``, ask it the guide's queries and check the answers the
        guide shows; the replies and the server's output, once stopped."""
        session = _sessions(_blocks(GUIDE.read_text(encoding="utf-8")))[name]
        # Ports other than the server's own (1053, given as -dns.port) become free ones.
        ports: dict[str, int] = {}
        corefile = re.sub(r":(?!1053\b)(\d{4,5})\b",
                          lambda m: f":{ports.setdefault(m[1], free_port())}", session.corefile)
        server = SubprocessServer(corefile, env=self.env)
        replies = []
        with server:
            for qname, rdtype, _shown in session.digs:
                replies.append(server.query(qname, rdtype))
            server.stop()
            output = server.log()
        answers = [_spaces(line) for reply, (_n, _t, shown) in zip(replies, session.digs, strict=True)
                   if shown for rrset in reply.answer for line in rrset.to_text().splitlines()]
        self.assertEqual(answers, session.answers)
        for line in session.log:
            self.assertIn(line + "\n", output)
        return replies, output

    def test_corefile_hello(self) -> None:
        (txt, a), _output = self.serve("Corefile.hello")
        self.assertTrue(txt.flags & dns.flags.AA)
        # "hello passed it on to whoami, which puts the client's address and port in the additional section"
        self.assertEqual((a.rcode(), a.answer, len(a.additional)), (0, [], 2))

    def test_corefile_wrap(self) -> None:
        (_alias, _txt, a), _output = self.serve("Corefile.wrap")
        self.assertEqual(a.rcode(), dns.rcode.SERVFAIL)

    def test_corefile_relay(self) -> None:
        self.serve("Corefile.relay")
