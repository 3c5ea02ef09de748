"""greet's tests run with pytest and pytest-twisted, using the fixtures twisted-coredns ships."""

from __future__ import annotations

pytest_plugins = ["twisted_coredns.testing.fixtures"]
