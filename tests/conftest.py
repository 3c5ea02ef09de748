"""pytest runs these trial TestCases from a scratch working directory, as trial does with
_trial_temp, so that ``TestCase.mktemp()`` never writes into the checkout."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator

import pytest


@pytest.fixture(scope="session", autouse=True)
def _scratch_working_directory() -> Iterator[None]:
    here = os.getcwd()
    with tempfile.TemporaryDirectory(prefix="coredns-tests-") as scratch:
        os.chdir(scratch)
        try:
            yield
        finally:
            os.chdir(here)
