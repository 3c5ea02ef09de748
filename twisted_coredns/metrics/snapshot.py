"""Metrics summed over the multisocket workers.

Each worker counts its own queries in its own ``REGISTRY``. It writes a snapshot of that registry
(JSON, written to a temporary name and renamed, so a reader never sees half of one) into a folder
the master made: when the master asks before a scrape, every second, and when it stops. The
master serves ``/metrics`` as its own ``PROCESS_REGISTRY`` followed by the sum of the snapshots.

A worker that ends, killed or retired by a reload, leaves its last snapshot: the master adds its
counters and histograms to a running total of ended workers and deletes the file, so a counter
never goes down when a worker is replaced (its gauges, a cache's entries say, end with it).

Why files and not prometheus_client's multiprocess mode: that mode makes every ``inc()`` a locked
write into an mmap'd file, which costs the query path more than the rest of the ``prometheus``
plugin; it must be chosen by an environment variable before prometheus_client is imported; and it
cannot sum the families that ``queries`` computes at scrape time. A snapshot costs a worker one
JSON dump a second, nothing per query.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry
from prometheus_client.metrics_core import Metric

Snapshot = list[dict[str, Any]]
_SUMMED = ("counter", "histogram", "gauge", "summary", "untyped")
_KEPT_AFTER_END = ("counter", "histogram", "summary")


def take(registry: CollectorRegistry) -> Snapshot:
    """The registry's families and samples, as plain data."""
    families = []
    for metric in registry.collect():
        families.append({
            "name": metric.name,
            "type": metric.type,
            "help": metric.documentation,
            "samples": [[s.name, s.labels, s.value] for s in metric.samples],
        })
    return families


def write(registry: CollectorRegistry, path: str | os.PathLike[str]) -> None:
    """Write the registry's snapshot to ``path`` atomically."""
    tmp = f"{path}.tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(take(registry), f, separators=(",", ":"))
    os.replace(tmp, path)


def read(path: str | os.PathLike[str]) -> Snapshot | None:
    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
    except (OSError, ValueError):
        return None
    return data if isinstance(data, list) else None


class _Family:
    __slots__ = ("help", "name", "samples", "type")

    def __init__(self, name: str, type_: str, help_: str) -> None:
        self.name = name
        self.type = type_
        self.help = help_
        # (sample name, sorted labels) -> [labels, value], in first-seen order so that a
        # histogram's buckets stay together and in order.
        self.samples: dict[tuple[str, tuple[tuple[str, str], ...]], list[Any]] = {}

    def add(self, samples: Iterable[list[Any]]) -> None:
        for name, labels, value in samples:
            key = (name, tuple(sorted(labels.items())))
            found = self.samples.get(key)
            if found is None:
                self.samples[key] = [labels, value]
            else:
                found[1] += value


def merge(snapshots: Iterable[Snapshot], only: tuple[str, ...] = _SUMMED) -> dict[str, _Family]:
    families: dict[str, _Family] = {}
    for snapshot in snapshots:
        for fam in snapshot:
            if fam.get("type") not in only:
                continue
            family = families.get(fam["name"])
            if family is None:
                family = families[fam["name"]] = _Family(fam["name"], fam["type"], fam.get("help", ""))
            family.add(fam.get("samples", []))
    return families


class WorkerMetrics:
    """The master's view of its workers' metrics: the snapshot folder and the total of ended
    workers. Registered as a collector, it yields the sum."""

    def __init__(self, folder: str | os.PathLike[str]) -> None:
        self.folder = Path(folder)
        self.ended: Snapshot = []

    def path_for(self, pid: int) -> Path:
        return self.folder / f"worker-{pid}.json"

    def worker_ended(self, pid: int | None) -> None:
        """Fold an ended worker's last snapshot into the running total, and forget its file."""
        if pid is None:
            return
        path = self.path_for(pid)
        last = read(path)
        if last is not None:
            merged = merge([self.ended, last], only=_KEPT_AFTER_END)
            self.ended = [
                {"name": f.name, "type": f.type, "help": f.help,
                 "samples": [[key[0], labels, value] for key, (labels, value) in f.samples.items()]}
                for f in merged.values()
            ]
        for p in (path, Path(f"{path}.tmp")):
            try:
                p.unlink()
            except FileNotFoundError:
                pass

    def snapshots(self) -> list[Snapshot]:
        found = [self.ended]
        for path in sorted(self.folder.glob("worker-*.json")):
            snap = read(path)
            if snap is not None:
                found.append(snap)
        return found

    def summed(self, *extra: Snapshot) -> Summed:
        """A collector of the sum of the ended workers, the live ones, and ``extra``."""
        return Summed([*self.snapshots(), *extra])


class Summed:
    """A collector yielding the sum of some snapshots."""

    def __init__(self, snapshots: list[Snapshot]) -> None:
        self.snapshots = snapshots

    def collect(self) -> Iterator[Metric]:
        for family in merge(self.snapshots).values():
            metric = Metric(family.name, family.help, family.type)
            for (name, _key), (labels, value) in family.samples.items():
                metric.add_sample(name, labels, value)
            yield metric


__all__ = ["Snapshot", "Summed", "WorkerMetrics", "merge", "read", "take", "write"]
