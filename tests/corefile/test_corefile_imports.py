"""import: files, globs, snippets across files, cycles; rows from coredns/caddy's parse_test.go."""

from __future__ import annotations

import os
import re
from pathlib import Path

from twisted.logger import ILogObserver, LogEvent, LogLevel, formatEvent, globalLogPublisher
from zope.interface import provider

from twisted_coredns.corefile import CorefileError, ServerBlock, parse, parse_file
from twisted_coredns.corefile import parser as corefile_parser

from .support import CorefileTestCase

# caddy's caddyfile/testdata.
TESTDATA = {
    "import_glob0.txt": "glob0.host0 {\n\tdir2 arg1\n}\n\nglob0.host1 {\n}\n",
    "import_glob1.txt": "glob1.host0 {\n\tdir1\n\tdir2 arg1\n}\n",
    "import_glob2.txt": "glob2.host0 {\n\tdir2 arg1\n}\n",
    "import_test1.txt": "dir2 arg1 arg2\ndir3",
    "import_test2.txt": "host1 {\n\tdir1\n\tdir2 arg1\n}",
}


def counts(block: ServerBlock) -> dict[str, int]:
    out: dict[str, int] = {}
    for d in block.directives:
        out[d.name] = out.get(d.name, 0) + 1 + len(d.args)
    return out


# Import patterns caddy's fuzzing found, and the error each ends in.
FUZZED_PATTERNS = [
    ("/*/*.txt", "Glob pattern may only contain one wildcard (*), but has others: /*/*.txt"),
    ("/???/?*?o", "Glob pattern may only contain one wildcard (*), but has others: /???/?*?o"),
    ("/??", "Glob pattern may only contain one wildcard (*), but has others: /??"),
    ("/[a-z]", "Glob pattern may only contain one wildcard (*), but has others: /[a-z]"),
    ("{$}", "File to import not found: {$}"),
    ("{%}", "File to import not found: {%}"),
    # The variable named "$" is unset, so the pattern is empty.
    ("{$$}", "Import requires a non-empty filepath"),
    ("{%%}", "File to import not found: {%%}"),
]

# How the Corefile names the first imported file, and how that file names the second.
NESTED_IMPORTS = [
    ("relative", "relative"),
    ("relative", "absolute"),
    ("absolute", "relative"),
    ("absolute", "absolute"),
]


class ImportCase(CorefileTestCase):
    """A folder ``root`` holding caddy's testdata, with a Corefile's place in it."""

    def setUp(self) -> None:
        self.root = Path(self.mktemp()).resolve()
        (self.root / "testdata").mkdir(parents=True)
        for name, text in TESTDATA.items():
            (self.root / "testdata" / name).write_text(text)

    def parse_in(self, text: str) -> list[ServerBlock]:
        return parse(text, str(self.root / "Corefile"), env={})

    def warnings(self) -> list[str]:
        """What the corefile package logs from now until the test ends, each line with its level
        as the command prints it (``[WARNING] ...``)."""
        seen: list[str] = []

        @provider(ILogObserver)
        def observe(event: LogEvent) -> None:
            if event.get("log_namespace") == "twisted_coredns.corefile":
                level = "WARNING" if event.get("log_level") == LogLevel.warn else str(event.get("log_level"))
                seen.append(f"[{level}] {formatEvent(event)}")

        globalLogPublisher.addObserver(observe)
        self.addCleanup(globalLogPublisher.removeObserver, observe)
        return seen


class TestCaddyRows(ImportCase):
    def test_import_among_directives(self) -> None:
        (block,) = self.parse_in("localhost\n\t\t  dir1 arg1\n\t\t  import testdata/import_test1.txt")
        self.assertEqual(block.key_texts, ["localhost"])
        self.assertEqual(counts(block), {"dir1": 2, "dir2": 3, "dir3": 1})

    def test_import_where_an_address_is_expected(self) -> None:
        (block,) = self.parse_in("import testdata/import_test2.txt")
        self.assertEqual(block.key_texts, ["host1"])
        self.assertEqual(counts(block), {"dir1": 1, "dir2": 2})

    def test_import_takes_one_argument(self) -> None:
        with self.assertRaises(CorefileError) as cm:
            self.parse_in("import testdata/import_test1.txt testdata/import_test2.txt")
        self.assertTrue(
            str(cm.exception).endswith(
                ":1 - Error during parsing: Import takes only one argument (glob pattern or file)"
            ),
            str(cm.exception),
        )

    def test_missing_file(self) -> None:
        with self.assertRaises(CorefileError) as cm:
            self.parse_in("import testdata/not_found.txt")
        self.assertEqual(
            str(cm.exception),
            f"{self.root}/Corefile:1 - Error during parsing: "
            "File to import not found: testdata/not_found.txt",
        )

    def test_glob(self) -> None:
        blocks = self.parse_in("import testdata/import_glob*.txt")
        self.assertEqual(
            [b.key_texts for b in blocks],
            [
                ["glob0.host0"],
                ["glob0.host1"],
                ["glob1.host0"],
                ["glob2.host0"],
            ],
        )

    def test_glob_matching_nothing_only_warns(self) -> None:
        warnings = self.warnings()
        self.assertEqual(self.parse_in("import notfound/*"), [])
        self.assertEqual(warnings, ["[WARNING] No files matching import glob pattern: notfound/*"])

    def test_plain_file_missing_is_an_error(self) -> None:
        with self.assertRaises(CorefileError) as cm:
            self.parse_in("import notfound/file.conf")
        self.assertRegex(str(cm.exception), r"File to import not found: notfound/file\.conf")

    def test_fuzzed_patterns(self) -> None:
        for row in FUZZED_PATTERNS:
            pattern, message = row
            error = self.parse_error(row, self.parse_in, f"import {pattern}")
            self.assertTrue(
                str(error).endswith("Error during parsing: " + message), msg=f"{row!r}: {str(error)!r}"
            )

    def test_fuzzed_unterminated_quote(self) -> None:
        with self.assertRaises(CorefileError) as cm:
            self.parse_in('import }{$"')
        self.assertRegex(str(cm.exception), re.escape('File to import not found: }{$"'))


class TestRecursiveImport(ImportCase):
    """caddy's TestRecursiveImport: an imported file imports another, by relative or absolute path."""

    def test_nested_import(self) -> None:
        file1 = self.root / "testdata" / "recursive_import_test1"
        file2 = self.root / "testdata" / "recursive_import_test2"
        for row in NESTED_IMPORTS:
            outer, inner = row
            target = "recursive_import_test2" if inner == "relative" else str(file2)
            file1.write_text(f"localhost\n\t\tdir1\n\t\timport {target}")
            file2.write_text("dir2 1")
            pattern = "testdata/recursive_import_test1" if outer == "relative" else str(file1)
            (block,) = self.parse_in(f"import {pattern}")
            self.assertEqual(block.key_texts, ["localhost"], msg=repr(row))
            self.assertEqual(counts(block), {"dir1": 1, "dir2": 2}, msg=repr(row))


class TestDirectiveImport(ImportCase):
    """caddy's TestDirectiveImport: import as a line of a directive's block."""

    def test_import_inside_a_block(self) -> None:
        (self.root / "testdata" / "directive_import_test").write_text("prop1 1\n\tprop2 2")
        (block,) = self.parse_in(
            "localhost\n\tdir1\n\tproxy {\n\t\timport testdata/directive_import_test\n\t\ttransparent\n\t}",
        )
        _, proxy = block.directives
        assert proxy.block is not None
        self.assertEqual(
            [(d.name, d.values) for d in proxy.block],
            [
                ("prop1", ["1"]),
                ("prop2", ["2"]),
                ("transparent", []),
            ],
        )
        # caddy's count for proxy: name, braces and six words.
        self.assertEqual(1 + 2 + sum(1 + len(d.args) for d in proxy.block), 8)

    def test_missing_file_inside_a_block(self) -> None:
        with self.assertRaises(CorefileError) as cm:
            self.parse_in(
                "localhost\n\tdir1\n\tproxy {\n\t\timport testdata/nonexistent_file\n\t\ttransparent\n\t}",
            )
        self.assertRegex(str(cm.exception), "File to import not found: testdata/nonexistent_file")


class TestAcrossFiles(ImportCase):
    def test_non_directive_import_tokens_are_kept(self) -> None:
        """caddy's TestImportedFilesIgnoreNonDirectiveImportTokens."""
        other = self.root / "other"
        other.write_text(
            "\n\t\thttp://example.com {\n"
            "\t\t\t# This isn't an import directive, it's just an arg with value 'import'\n"
            "\t\t\tbasicauth / import password\n\t\t}\n"
        )
        (block,) = self.parse_in(f"import {other}")
        (auth,) = block.directives_named("basicauth")
        self.assertEqual(" ".join([auth.name, *auth.values]), "basicauth / import password")

    def test_snippet_across_multiple_files(self) -> None:
        """caddy's TestSnippetAcrossMultipleFiles."""
        other = self.root / "derived"
        other.write_text("\n\t\thttp://example.com {\n\t\t\timport common\n\t\t}\n")
        (block,) = self.parse_in(f"\n\t\t(common) {{\n\t\t\tgzip foo\n\t\t}}\n\t\timport {other}\n\t")
        self.assertEqual(block.key_texts, ["http://example.com"])
        self.assertEqual([(d.name, d.values) for d in block.directives], [("gzip", ["foo"])])
        # The snippet's tokens still name the file that defined it.
        self.assertEqual(block.directives[0].file, f"{self.root}/Corefile")

    def test_snippet_defined_in_an_imported_file(self) -> None:
        (self.root / "snippets").write_text("(common) {\n log\n}\n")
        (block,) = self.parse_in("import snippets\n. {\n import common\n}")
        self.assertEqual([d.name for d in block.directives], ["log"])

    def test_no_cwd_leak(self) -> None:
        # Nothing here changes the working directory of the test process.
        before = os.getcwd()
        self.parse_in("import testdata/import_test2.txt")
        self.assertEqual(os.getcwd(), before)


class TestCycles(ImportCase):
    def setUp(self) -> None:
        super().setUp()
        # caddy's tests lower both limits to 10 the same way.
        self.patch(corefile_parser, "MAX_SNIPPET_EXPANSIONS", 10)
        self.patch(corefile_parser, "MAX_FILE_EXPANSIONS", 10)

    def test_file_import_cycle(self) -> None:
        """caddy's TestFileImportCycleError; the message prints the snippet limit, as CoreDNS's does."""
        a, b = self.root / "a", self.root / "b"
        a.write_text(f"import {b}")
        b.write_text(f"import {a}")
        with self.assertRaises(CorefileError) as cm:
            self.parse_in(f"import {a}")
        self.assertTrue(
            str(cm.exception).endswith("Error during parsing: maximum file import depth (10) exceeded"),
            str(cm.exception),
        )

    def test_file_importing_itself(self) -> None:
        (self.root / "self").write_text("import self")
        with self.assertRaises(CorefileError) as cm:
            self.parse_in("import self")
        self.assertRegex(str(cm.exception), r"maximum file import depth \(10\) exceeded")

    def test_one_glob_counts_once(self) -> None:
        """caddy's TestFileImportDir: ten times the limit of files through one glob is fine."""
        many = self.root / "many"
        many.mkdir()
        for i in range(100):
            (many / f"many_{i}").write_text("")
        self.assertEqual(self.parse_in(f"import {many}/*"), [])

    def test_snippet_cycle(self) -> None:
        with self.assertRaises(CorefileError) as cm:
            self.parse_in("(a) {\n x\n import b\n}\n(b) {\n x\n import a\n}\n. {\n import a\n}")
        self.assertRegex(str(cm.exception), r"maximum snippet import depth \(10\) exceeded")


class TestPaths(ImportCase):
    def test_relative_to_the_importing_file(self) -> None:
        (self.root / "sub").mkdir()
        (self.root / "sub" / "inner").write_text(". {\n import ../testdata/import_test1.txt\n}")
        (block,) = self.parse_in("import sub/inner")
        self.assertEqual([d.name for d in block.directives], ["dir2", "dir3"])

    def test_tokens_name_the_absolute_imported_file(self) -> None:
        (block,) = self.parse_in("import ./testdata/../testdata/import_test2.txt")
        path = str(self.root / "testdata" / "import_test2.txt")
        self.assertEqual(block.keys[0].file, path)
        self.assertEqual((block.directives[0].file, block.directives[0].line), (path, 2))

    def test_errors_in_imported_files_name_them(self) -> None:
        (self.root / "bad").write_text("a {\n nope\n}")
        with self.assertRaises(CorefileError) as cm:
            parse(f"import {self.root}/bad", str(self.root / "Corefile"), directives={"log"})
        self.assertEqual(
            str(cm.exception), f"{self.root}/bad:2 - Error during parsing: Unknown directive 'nope'"
        )

    def test_main_file_relative_name_resolves_from_cwd(self) -> None:
        self.addCleanup(os.chdir, os.getcwd())
        os.chdir(self.root)
        (block,) = parse("import testdata/import_test2.txt", "Corefile")
        self.assertEqual(block.key_texts, ["host1"])

    def test_directory(self) -> None:
        with self.assertRaises(CorefileError) as cm:
            self.parse_in("import testdata")
        self.assertTrue(
            str(cm.exception).endswith(f"Could not import {self.root}/testdata: is a directory"),
            str(cm.exception),
        )

    def test_star_matches_hidden_files(self) -> None:
        (self.root / "d").mkdir()
        (self.root / "d" / ".hidden").write_text("h {\n}\n")
        self.assertEqual([b.key_texts for b in self.parse_in("import d/*")], [["h"]])

    def test_backslash_escapes_a_wildcard(self) -> None:
        (self.root / "a*b").write_text("star {\n}\n")
        (self.root / "axb").write_text("x {\n}\n")
        self.assertEqual([b.key_texts for b in self.parse_in("import a\\*b")], [["star"]])
        self.assertEqual([b.key_texts for b in self.parse_in("import a*b")], [["star"], ["x"]])

    def test_bad_pattern(self) -> None:
        with self.assertRaises(CorefileError) as cm:
            self.parse_in("import f1\\")
        self.assertTrue(
            str(cm.exception).endswith("Failed to use import pattern f1\\: syntax error in pattern"),
            str(cm.exception),
        )

    def test_lone_bracket_is_a_bad_pattern(self) -> None:
        with self.assertRaises(CorefileError) as cm:
            self.parse_in("import x[")
        self.assertRegex(str(cm.exception), "Failed to use import pattern x\\[: syntax error in pattern")

    def test_lone_closing_bracket_only_warns(self) -> None:
        warnings = self.warnings()
        self.assertEqual(self.parse_in("import f1]"), [])
        self.assertEqual(warnings, ["[WARNING] No files matching import glob pattern: f1]"])

    def test_wildcard_in_a_directory(self) -> None:
        blocks = self.parse_in("import */import_test2.txt")
        self.assertEqual([b.key_texts for b in blocks], [["host1"]])

    def test_env_in_pattern(self) -> None:
        blocks = parse(
            "import testdata/{$NAME}", str(self.root / "Corefile"), env={"NAME": "import_test2.txt"}
        )
        self.assertEqual([b.key_texts for b in blocks], [["host1"]])

    def test_import_of_an_empty_file(self) -> None:
        (self.root / "empty").write_text("")
        self.assertEqual(self.parse_in("import empty"), [])
        (block,) = self.parse_in(". {\n import empty\n log\n}")
        self.assertEqual([d.name for d in block.directives], ["log"])

    def test_invalid_utf8_in_an_imported_file(self) -> None:
        (self.root / "bin").write_bytes(b"a\xff\xe2\x82 {\n}\n")
        (block,) = self.parse_in("import bin")
        # Go reads one U+FFFD for each byte it cannot decode.
        self.assertEqual(block.key_texts, ["a\ufffd\ufffd\ufffd"])


class TestParseFile(ImportCase):
    def test_parse_file(self) -> None:
        path = self.root / "Corefile"
        path.write_text(". {\n import testdata/import_test1.txt\n}")
        (block,) = parse_file(path)
        self.assertEqual(block.keys[0].file, str(path))
        self.assertEqual([d.name for d in block.directives], ["dir2", "dir3"])

    def test_missing(self) -> None:
        with self.assertRaises(CorefileError) as cm:
            parse_file(self.root / "nope")
        self.assertEqual(str(cm.exception), f"open {self.root}/nope: no such file or directory")

    def test_bom_and_crlf(self) -> None:
        path = self.root / "Corefile"
        path.write_bytes(b"\xef\xbb\xbf. {\r\n whoami\r\n}\r\n")
        (block,) = parse_file(path, directives={"whoami"})
        self.assertEqual(block.key_texts, ["."])
        self.assertEqual(block.directives[0].line, 2)
