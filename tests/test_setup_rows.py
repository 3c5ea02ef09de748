"""twisted_coredns.testing.setup's row helpers: check_setup_rows and load_setup_rows."""

from __future__ import annotations

import json
import unittest as pyunit
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from twisted.trial.unittest import SynchronousTestCase

from twisted_coredns.testing.setup import SetupResult, check_setup_rows, load_setup_rows

ARG_ERROR = (
    "plugin/whoami: Corefile:2 - Error during parsing: Wrong argument count or unexpected line ending "
    "after 'example.org'"
)


class _Case(SynchronousTestCase):
    """A case the helper may fail, to read its failure from outside."""

    __test__ = False

    def runTest(self) -> None:
        pass


def _failure(rows: list[dict[str, Any]], **kw: Any) -> str:
    case = _Case()
    try:
        check_setup_rows(case, rows, **kw)
    except case.failureException as exc:
        return str(exc)
    raise AssertionError("check_setup_rows passed")


class CheckSetupRowsTests(SynchronousTestCase):
    def test_rows_that_hold(self) -> None:
        seen: list[tuple[str, bool]] = []

        def check(row: Mapping[str, Any], result: SetupResult) -> None:
            seen.append((row["input"], result.handler is not None))

        rows = [
            {"input": "whoami", "expect_error": False},
            {"input": "whoami example.org", "expect_error": True, "error": ARG_ERROR},
            {"input": "whoami example.org", "expect_error": True, "error_contains": "Wrong argument count"},
        ]
        self.assertEqual(check_setup_rows(self, rows, check=check, error_prefix="plugin/whoami: "), 3)
        self.assertEqual(seen, [("whoami", True)], "check runs on the rows that set up")

    def test_every_failing_row_is_listed(self) -> None:
        message = _failure(
            [
                {"input": "whoami example.org", "expect_error": False},
                {"input": "whoami", "expect_error": False},
                {"input": "whoami", "expect_error": True, "test_func": "TestSetup"},
                {"input": "whoami example.org", "expect_error": True, "error": "plugin/whoami: other"},
                {"input": "whoami example.org", "expect_error": True, "error_contains": "missing"},
            ]
        )
        self.assertTrue(message.startswith("4 of 5 setup rows failed:\n"), message)
        self.assertIn(f"row 0: 'whoami example.org'\n      fails, but CoreDNS sets it up: {ARG_ERROR}",
                      message)
        self.assertNotIn("row 1", message)
        self.assertIn("row 2 (TestSetup): 'whoami'\n      sets up, but CoreDNS rejects it", message)
        self.assertIn(f"row 3: 'whoami example.org'\n      error\n        {ARG_ERROR!r}\n      is not\n",
                      message)
        self.assertIn("does not contain\n        'missing'", message)

    def test_error_prefix(self) -> None:
        message = _failure([{"input": "whoami example.org", "expect_error": True}], error_prefix="plugin/x: ")
        self.assertIn("does not start with 'plugin/x: '", message)

    def test_check_failures_are_collected(self) -> None:
        def check(row: Mapping[str, Any], result: SetupResult) -> None:
            assert result.handler is None, "no handler expected"

        message = _failure([{"input": "whoami", "expect_error": False}] * 2, check=check)
        self.assertIn("2 of 2 setup rows failed", message)
        self.assertIn("no handler expected", message)

    def test_text_fills_the_row_in(self) -> None:
        rows = [{"input": "whoami %s", "fill": "example.org", "expect_error": True, "error": ARG_ERROR}]
        check_setup_rows(self, rows, text=lambda row: row["input"].replace("%s", row["fill"]))

    def test_known_difference(self) -> None:
        differs: dict[str, Any] = {
            "input": "whoami example.org",
            "expect_error": True,
            "error": "plugin/whoami: CoreDNS says",
            "known_difference": "we word it differently",
        }
        check_setup_rows(self, [differs], error_prefix="plugin/other: ")  # not checked against the prefix
        stale = dict(differs, error=ARG_ERROR)
        self.assertIn("now matches CoreDNS's: drop the row's known_difference", _failure([stale]))
        still_errs = dict(differs, input="whoami")
        self.assertIn("sets up, but CoreDNS rejects it", _failure([still_errs]))

    def test_malformed_rows(self) -> None:
        cases: list[tuple[dict[str, Any], str]] = [
            ({"input": "whoami"}, "no true/false expect_error"),
            ({"input": "whoami", "expect_error": "no"}, "no true/false expect_error"),
            ({"input": "whoami", "expect_error": False, "error": "x"}, "expects no error but gives an error"),
            ({"input": "whoami x", "expect_error": True, "known_difference": "?"}, "known_difference must"),
        ]
        for row, why in cases:
            self.assertIn(why, _failure([row]), row)
        self.assertIn("no setup rows", _failure([]))

    def test_empty_texts_are_no_texts(self) -> None:
        # tests/data/forward/setup_cases.json gives "error_contains": "" on the rows that set up.
        check_setup_rows(self, [{"input": "whoami", "expect_error": False, "error_contains": ""}])

    def test_a_bug_propagates_with_the_row(self) -> None:
        def check(row: Mapping[str, Any], result: SetupResult) -> None:
            raise KeyError("boom")

        with self.assertRaises(KeyError) as caught:
            check_setup_rows(self, [{"input": "whoami", "expect_error": False}], check=check)
        self.assertEqual(caught.exception.__notes__, ["in setup row 0: 'whoami'"])

    def test_reported_as_subtests_where_the_runner_can(self) -> None:
        class Plain(pyunit.TestCase):
            def test_rows(self) -> None:
                check_setup_rows(
                    self,
                    [
                        {"input": "whoami", "expect_error": True},
                        {"input": "whoami", "expect_error": False},
                        {"input": "whoami example.org", "expect_error": False},
                    ],
                )

        result = pyunit.TestResult()
        Plain("test_rows").run(result)
        self.assertEqual(len(result.failures), 2)
        self.assertEqual(
            [test.params["row"] for test, _ in result.failures],  # type: ignore[attr-defined]
            [0, 2],
        )


class LoadSetupRowsTests(SynchronousTestCase):
    def write(self, data: Any) -> Path:
        path = Path(self.mktemp())
        path.write_text(json.dumps(data), encoding="utf-8")
        return path

    def test_shapes(self) -> None:
        row = {"input": "whoami", "expect_error": False}
        self.assertEqual(load_setup_rows(self.write([row])), [row])
        self.assertEqual(load_setup_rows(self.write({"source": "s", "rows": [row]})), [row])
        self.assertEqual(load_setup_rows(self.write({"_source": "s", "whoami": [row]}), "whoami"), [row])

    def test_source(self) -> None:
        row = {"input": "whoami", "expect_error": False}
        for key in ("source", "_source", "attribution"):
            path = self.write({key: "coredns/coredns @abc, Apache-2.0", "rows": [row]})
            self.assertEqual(load_setup_rows(path, source_contains="coredns/coredns @abc"), [row])
        with self.assertRaises(ValueError):
            load_setup_rows(self.write({"source": "elsewhere", "rows": [row]}), source_contains="coredns")
        with self.assertRaises(ValueError):
            load_setup_rows(self.write([row]), source_contains="coredns")

    def test_no_rows(self) -> None:
        for data, plugin in [([], None), ({"rows": []}, None), ({"whoami": []}, "whoami"), ({}, "debug"),
                             ([{"input": "whoami"}], "whoami"), (["whoami"], None)]:
            with self.assertRaises(ValueError, msg=repr(data)):
                load_setup_rows(self.write(data), plugin)

    def test_the_project_files_load(self) -> None:
        data = Path(__file__).parent / "data"
        for plugin in ("whoami", "debug", "root", "bind", "chaos", "any"):
            self.assertTrue(load_setup_rows(data / "setup_cases.json", plugin, source_contains="coredns"))
