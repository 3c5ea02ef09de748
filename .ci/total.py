"""One count for every pytest run of ``make test``, from their JUnit XML reports.

``make test`` runs pytest twice (the trial suite with pytest-twisted off, the pytest-twisted tests
with it on) and lets the second run even when the first fails, so neither's count can be missed.
CI reads the last line, ``N passed, N failed, N skipped``; errors (setup, teardown, collection)
count as failed there. Exits 1 when a test failed or errored, when a run left no report, ran no
test, or exited non-zero (``REPORT.rc`` beside the report, when the Makefile wrote one).

Usage: ``python .ci/total.py REPORT.xml [REPORT.xml ...]``; standard library only.
"""

from __future__ import annotations

import sys
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path


@dataclass
class Count:
    passed: int = 0
    failed: int = 0
    errors: int = 0
    skipped: int = 0
    seconds: float = 0.0

    @property
    def tests(self) -> int:
        return self.passed + self.failed + self.errors + self.skipped


def count(report: Path) -> Count:
    root = ET.parse(report).getroot()
    suites = [root] if root.tag == "testsuite" else root.iter("testsuite")
    total = Count()
    for suite in suites:
        total.seconds += float(suite.get("time") or 0)
        for case in suite.iter("testcase"):
            kinds = {child.tag for child in case}
            if "failure" in kinds:
                total.failed += 1
            elif "error" in kinds:
                total.errors += 1
            elif "skipped" in kinds:
                total.skipped += 1
            else:
                total.passed += 1
    return total


def exit_status(report: Path) -> int | None:
    rc = report.with_suffix(".rc")
    try:
        return int(rc.read_text().strip())
    except (FileNotFoundError, ValueError):
        return None


def main(argv: list[str]) -> int:
    if not argv:
        print(__doc__.strip().splitlines()[-1], file=sys.stderr)
        return 2
    total = Count()
    ok = True
    for name in argv:
        report = Path(name)
        try:
            c = count(report)
        except (FileNotFoundError, ET.ParseError) as exc:
            # Worded so that CI's "N passed, N failed" reader never mistakes it for the total.
            print(f"report {report.name}: unreadable, the run did not finish ({exc})")
            ok = False
            continue
        rc = exit_status(report)
        print(f"report {report.name}: tests={c.tests} passed={c.passed} failed={c.failed} errors={c.errors}"
              f" skipped={c.skipped} time={c.seconds:.1f}s" + ("" if rc is None else f" exit={rc}"))
        if c.tests == 0:
            print(f"report {report.name}: no test ran")
            ok = False
        if rc not in (None, 0) and not (c.failed or c.errors):
            print(f"report {report.name}: pytest exited {rc} with no failed test in its report")
            ok = False
        total.passed += c.passed
        total.failed += c.failed
        total.errors += c.errors
        total.skipped += c.skipped
    print(f"{total.passed} passed, {total.failed + total.errors} failed, {total.skipped} skipped")
    return 0 if ok and total.tests and not (total.failed or total.errors) else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
