"""Whatever the text, parsing ends in server blocks or a CorefileError, never another exception."""

from __future__ import annotations

from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from twisted.trial.unittest import SynchronousTestCase

from twisted_coredns.corefile import CorefileError, parse, tokenize

SETTINGS = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# Pieces that reach the parser's corners: braces, quotes, escapes, comments, commas, snippets,
# imports (of files that exist in the fuzz folder, of globs, of nothing) and environment references.
PIECES = [
    "a", "dir", ".", "example.org:53", "{", "}", "\n", " ", "\t", '"', '""', "\\", '\\"', "#", ",", "a,",
    "(s)", "(s) {\n", "import", "import s", "import f", "import *", "import sub/*", "import nope",
    "{$A}", "{$NL}", "{$OPEN}", "{$LOOP}", "{%A%}", "{$", "{%", "%}", "{$}", "\r", "\ufeff", "\xa0", "\x1c",
    "\\\\ȶ.", "*", "?", "[", "]", "\ufffd", "\x00",
]  # fmt: skip

ENV = {"A": "x", "NL": "\n", "OPEN": "{", "LOOP": "{$LOOP}"}


# coredns/test/corefile_test.go: inputs that once crashed CoreDNS.
COREDNS_FUZZ_REGRESSIONS = [
    "\\\\\\\\ȶ.\nacl\n".encode(),
    b"\xd9//\nhosts#\x90\xd0{lc\x0c{\n'{mport\xef1\x0c}\x0b''",
    b"\xf6\xe6*S65558::65535\nkubernetes idd\x0cd\xc8:0\x00,\x13"
    + b"\x00" * 10
    + b"\xfd"
    + b"\x00" * 7
    + b"-"
    + b"\x00" * 16
    + b"\t{\tendpoint m"
    + b"\xff" * 13
    + b"FFFFFF%FFFFFFFF"
    + b"\xff" * 44
    + b"\tuil{ticll{ticl\x00,1:*\x0cd}\x0c}",
]


class FuzzTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.folder = Path(self.mktemp()).resolve()
        (self.folder / "sub").mkdir(parents=True)
        (self.folder / "f").write_text("log\n(t) {\n x\n}\n")
        (self.folder / "sub" / "g").write_text("b {\n import ../f\n}\n")

    def check(self, text: str | bytes, directives: set[str] | None = None) -> None:
        try:
            blocks = parse(text, str(self.folder / "Corefile"), directives=directives, env=ENV)
        except CorefileError as e:
            self.assertIn(" - ", str(e), msg=repr(text))
            return
        for block in blocks:
            self.assertTrue(block.keys, msg=repr(text))

    @SETTINGS
    @given(text=st.text())
    def test_any_text(self, text: str) -> None:
        self.check(text)

    @SETTINGS
    @given(text=st.lists(st.sampled_from(PIECES)).map(" ".join))
    def test_structured_text(self, text: str) -> None:
        self.check(text)
        self.check(text, directives={"dir", "log", "a"})

    @SETTINGS
    @given(text=st.lists(st.sampled_from(PIECES)).map("".join))
    def test_glued_text(self, text: str) -> None:
        self.check(text)

    @SETTINGS
    @given(text=st.text())
    def test_tokenize_any_text(self, text: str) -> None:
        for token in tokenize(text, "Corefile"):
            self.assertGreaterEqual(token.line, 1)

    def test_coredns_fuzz_regressions(self) -> None:
        for data in COREDNS_FUZZ_REGRESSIONS:
            self.check(data)

    @SETTINGS
    @given(data=st.binary())
    def test_any_bytes(self, data: bytes) -> None:
        self.check(data)

    def test_deep_nesting_does_not_exhaust_the_stack(self) -> None:
        depth = 50000
        (block,) = parse(". {\n dir " + "{\n" * depth + "}\n" * depth + "}\n")
        node = block.directives[0]
        for _ in range(depth - 1):
            assert node.block is not None
            node = node.block[0]

    def test_deep_glob_pattern_does_not_exhaust_the_stack(self) -> None:
        pattern = "/".join(["\\x"] * 5000)
        self.assertEqual(parse(f"import {pattern}/*", str(self.folder / "Corefile")), [])
