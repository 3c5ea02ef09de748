"""Why this folder's tests skip in the trial suite's pytest run, and how they are run instead.

They are written the pytest-twisted way, with the fixtures plugin authors get, and pytest-twisted
cannot share a process with the project's trial TestCases: ``make test`` runs this folder in a
pytest process of its own, with pytest-twisted on and the fixtures loaded by
``-p twisted_coredns.testing.fixtures``.

The fixtures are not loaded with ``pytest_plugins`` here, as a plugin's own conftest does it:
pytest accepts that only in a conftest it reads before it is configured (one in a folder named on
the command line), so a plain ``pytest tests`` would stop with a collection error when it reached
this folder. Here that run skips these tests instead.
"""

from __future__ import annotations

from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent


def pytest_configure(config: pytest.Config) -> None:
    # The fixtures module registers it too; in the run that skips, it is not loaded.
    config.addinivalue_line("markers", "corefile(text): the Corefile coredns_server serves for this test")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if config.pluginmanager.hasplugin("twisted") and config.pluginmanager.hasplugin(
        "twisted_coredns.testing.fixtures"
    ):
        return
    skip = pytest.mark.skip(reason="needs pytest-twisted and -p twisted_coredns.testing.fixtures (make test)")
    for item in items:
        if HERE in item.path.resolve().parents:
            item.add_marker(skip)
