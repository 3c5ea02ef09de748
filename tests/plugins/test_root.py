"""root: BlockConfig.root set from the Corefile, checked as CoreDNS checks it."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import dns.rcode
from twisted.internet.defer import inlineCallbacks
from twisted.trial import unittest

from twisted_coredns.testing import InProcessServer
from twisted_coredns.testing.setup import SetupResult, check_setup_rows, load_setup_rows, setup_error

from .small_plugin_support import DATA, build_block, captured_log, readme_corefiles


class RootSetupTests(unittest.SynchronousTestCase):
    def setUp(self) -> None:
        self.existing = Path(self.mktemp()).resolve()
        self.existing.mkdir(parents=True)
        # What plugin/root/root_test.go puts in place of %s, by the row's "fill".
        self.fills = {
            "existing_dir": str(self.existing),
            "missing_dir": str(self.existing / "highly_unlikely_to_exist_dir"),
            "nul_byte_path": os.path.join("C:", "file\x00name"),
        }

    def test_coredns_setup_rows(self) -> None:
        def path(row: Mapping[str, Any]) -> str:
            return self.fills[row["fill"]] if "fill" in row else ""

        def filled(row: Mapping[str, Any]) -> str:
            return str(row["input"]).replace("%s", path(row))

        def root_set(row: Mapping[str, Any], result: SetupResult) -> None:
            self.assertEqual(result.config.root, path(row), filled(row))

        rows = load_setup_rows(DATA / "setup_cases.json", "root")
        check_setup_rows(self, rows, text=filled, check=root_set, error_prefix="plugin/root: ")

    def test_missing_directory_is_a_warning(self) -> None:
        missing = self.fills["missing_dir"]
        with captured_log() as out:
            self.assertEqual(build_block(f"root {missing}").blocks[0].root, missing)
        self.assertEqual(out.getvalue(), f"[WARNING] plugin/root: Root path does not exist: {missing}\n")
        self.assertFalse(os.path.exists(missing), "nothing is created")

    def test_values(self) -> None:
        for body, root in [
            ("root zones", "zones"),  # relative: kept, relative to the working directory
            (f"root {self.existing}\nroot zones", "zones"),  # the last one wins
            ("root a b c", "c"),  # CoreDNS reads the tokens two by two: "b" is taken as a directive
        ]:
            self.assertEqual(build_block(body).blocks[0].root, root, body)
        self.assertEqual(build_block("whoami").blocks[0].root, "", "no root: the working directory")

    def test_error_messages(self) -> None:
        a_file = self.existing / "file"
        a_file.write_text("x")
        arg_error = "Error during parsing: Wrong argument count or unexpected line ending after"
        for body, message in [
            ("root", f"Corefile:2 - {arg_error} 'root'"),
            ("root a b", f"Corefile:2 - {arg_error} 'b'"),
            (f"root {{\n{self.existing}\n}}", f"Corefile:3 - {arg_error} '{self.existing}'"),
            (f"root {a_file}/x",
             f"Corefile:2 - Error during parsing: unable to access root path '{a_file}/x': "
             f"stat {a_file}/x: not a directory"),
            ("root C:/file\x00name",
             "Corefile:2 - Error during parsing: unable to access root path 'C:/file\x00name': "
             "stat C:/file\x00name: invalid argument"),
        ]:
            self.assertEqual(setup_error(body), "plugin/root: " + message, repr(body))


class RootReadmeTests(unittest.TestCase):
    @inlineCallbacks
    def test_readme_corefiles_start_and_answer(self) -> Any:
        for path in readme_corefiles("root"):
            text = path.read_text(encoding="utf-8")
            with captured_log():  # /etc/coredns/zones is most likely missing: a warning only
                server = InProcessServer(text)
            self.assertEqual(server.instance.blocks[0].root, "/etc/coredns/zones", path.name)
            yield server.start()
            try:
                r = yield server.query("example.org.")
                # root adds no handler: a block without one is refused, as CoreDNS does.
                self.assertEqual(r.rcode(), dns.rcode.REFUSED, path.name)
            finally:
                yield server.stop()
