"""The order in which a query tries the upstreams (CoreDNS's ``policy``).

``random`` shuffles on every query (for two upstreams a coin flip), ``round_robin`` rotates a
counter, ``sequential`` keeps the Corefile's order. Each returns a new list: the caller walks it.
"""

from __future__ import annotations

import random as _random
from typing import Any, Generic, TypeVar

T = TypeVar("T")


class Policy(Generic[T]):
    name = ""

    def order(self, upstreams: list[T]) -> list[T]:
        raise NotImplementedError


class Random(Policy[T]):
    name = "random"

    def __init__(self, rng: _random.Random | None = None) -> None:
        self._rng = rng or _random.Random()

    def order(self, upstreams: list[T]) -> list[T]:
        n = len(upstreams)
        if n == 1:
            return upstreams
        if n == 2:
            if self._rng.getrandbits(1):
                return [upstreams[1], upstreams[0]]
            return upstreams
        shuffled = list(upstreams)
        self._rng.shuffle(shuffled)
        return shuffled


class RoundRobin(Policy[T]):
    name = "round_robin"

    def __init__(self) -> None:
        self._robin = 0

    def order(self, upstreams: list[T]) -> list[T]:
        # CoreDNS increments before use, so the second upstream leads the first query.
        self._robin = (self._robin + 1) & 0xFFFFFFFF
        i = self._robin % len(upstreams)
        return [upstreams[i], *upstreams[:i], *upstreams[i + 1 :]]


class Sequential(Policy[T]):
    name = "sequential"

    def order(self, upstreams: list[T]) -> list[T]:
        return upstreams


POLICIES: dict[str, type[Policy[Any]]] = {
    "random": Random,
    "round_robin": RoundRobin,
    "sequential": Sequential,
}
