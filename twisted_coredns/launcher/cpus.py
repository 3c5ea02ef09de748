"""How many CPUs this process may really use: the default of ``multisocket``.

CoreDNS's default is ``GOMAXPROCS``, which CoreDNS sets through uber-go/automaxprocs: the CPUs in
the affinity mask, cut down to the container's CPU quota (cgroup v2 ``cpu.max``, or cgroup v1
``cpu.cfs_quota_us`` / ``cpu.cfs_period_us``), rounded down, at least 1. ``os.cpu_count()`` knows
nothing of either, so in a container with a 2-CPU limit on a 64-core node it would start 64
workers that fight over two CPUs.

Like Go, a ``GOMAXPROCS`` environment variable holding a positive number wins over both.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from pathlib import Path

CGROUP_ROOT = "/sys/fs/cgroup"
PROC_SELF_CGROUP = "/proc/self/cgroup"


def affinity_cpus() -> int:
    """The CPUs in this process's affinity mask (Go's ``runtime.NumCPU``)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


def _read(path: Path) -> str | None:
    try:
        return path.read_text(encoding="ascii").strip()
    except (OSError, UnicodeDecodeError):
        return None


def _cgroup_paths(proc_cgroup: str) -> tuple[str | None, dict[str, tuple[str, str]]]:
    """From ``/proc/self/cgroup``: the cgroup v2 path, and for each v1 controller the name of its
    hierarchy (``cpu,cpuacct``) and the path in it."""
    v2: str | None = None
    v1: dict[str, tuple[str, str]] = {}
    text = _read(Path(proc_cgroup)) or ""
    for line in text.splitlines():
        parts = line.split(":", 2)
        if len(parts) != 3:
            continue
        hierarchy, controllers, path = parts
        if hierarchy == "0" and controllers == "":
            v2 = path
        for controller in controllers.split(","):
            if controller:
                v1[controller] = (controllers, path)
    return v2, v1


def _candidates(base: Path, path: str) -> list[Path]:
    # Inside a container the path in /proc/self/cgroup may be the host's while the mount is the
    # container's own cgroup, so the mount point itself is tried after the joined path.
    joined = base / path.lstrip("/")
    return [joined, base] if joined != base else [base]


def _quota_v2(root: Path, path: str) -> float | None:
    for directory in _candidates(root, path):
        text = _read(directory / "cpu.max")
        if text is None:
            continue
        fields = text.split()
        if len(fields) != 2 or fields[0] == "max":
            return None
        try:
            quota, period = int(fields[0]), int(fields[1])
        except ValueError:
            return None
        return quota / period if quota > 0 and period > 0 else None
    return None


def _quota_v1(root: Path, v1: dict[str, tuple[str, str]]) -> float | None:
    if "cpu" not in v1:
        return None
    hierarchy, path = v1["cpu"]
    for mount in dict.fromkeys([hierarchy, "cpu", "cpu,cpuacct", "cpuacct,cpu"]):
        for directory in _candidates(root / mount, path):
            quota_text = _read(directory / "cpu.cfs_quota_us")
            period_text = _read(directory / "cpu.cfs_period_us")
            if quota_text is None or period_text is None:
                continue
            try:
                quota, period = int(quota_text), int(period_text)
            except ValueError:
                return None
            return quota / period if quota > 0 and period > 0 else None
    return None


def cpu_quota(cgroup_root: str = CGROUP_ROOT, proc_cgroup: str = PROC_SELF_CGROUP) -> float | None:
    """The CPU quota of this process's cgroup in CPUs (1.5 for ``150000 100000``), or None when
    there is none."""
    v2, v1 = _cgroup_paths(proc_cgroup)
    root = Path(cgroup_root)
    if v2 is not None:
        quota = _quota_v2(root, v2)
        if quota is not None:
            return quota
    return _quota_v1(root, v1)


def usable_cpus(
    cgroup_root: str = CGROUP_ROOT,
    proc_cgroup: str = PROC_SELF_CGROUP,
    env: Mapping[str, str] | None = None,
    affinity: int | None = None,
) -> int:
    """``GOMAXPROCS`` as CoreDNS computes it: the affinity count, limited by the cgroup quota
    (floor, at least 1); a positive ``GOMAXPROCS`` in the environment wins."""
    env = os.environ if env is None else env
    override = env.get("GOMAXPROCS", "")
    if override.isascii() and override.isdigit() and int(override) > 0:
        return int(override)
    cpus = affinity if affinity is not None else affinity_cpus()
    quota = cpu_quota(cgroup_root, proc_cgroup)
    if quota is None:
        return cpus
    return max(1, min(cpus, math.floor(quota)))
