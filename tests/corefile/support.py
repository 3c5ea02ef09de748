"""What the Corefile test modules share."""

from __future__ import annotations

from collections.abc import Callable

from twisted.trial.unittest import SynchronousTestCase

from twisted_coredns.corefile import CorefileError


class CorefileTestCase(SynchronousTestCase):
    def parse_error(self, row: object, call: Callable[..., object], *args: object) -> CorefileError:
        """The CorefileError that ``call(*args)`` raises; a failure naming ``row`` if it raises none."""
        try:
            result = call(*args)
        except CorefileError as e:
            return e
        self.fail(f"CorefileError not raised ({result!r} returned): {row!r}")
