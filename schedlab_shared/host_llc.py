"""The host's CPUs grouped by last-level cache, read from sysfs, and what performance mode
needs of them (one CPU per vCPU plus a service CPU). Shared by the CLI (refuses early, one
line) and the KVM engine (pins by LLC)."""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ("SYSFS_CPU", "cpu_list", "host_llcs", "performance_refusal")

SYSFS_CPU = Path("/sys/devices/system/cpu")


def cpu_list(text: str) -> list[int]:
    """Parse a kernel CPU list such as ``0-3,8,10-11``."""
    out: list[int] = []
    for part in text.strip().split(","):
        if not part:
            continue
        lo, _, hi = part.partition("-")
        out.extend(range(int(lo), int(hi or lo) + 1))
    return out


def _llc_of(cpu_dir: Path) -> tuple[int, ...] | None:
    """The CPUs sharing the highest-level cache of one CPU (None if sysfs has no caches)."""
    best: tuple[int, tuple[int, ...]] | None = None
    for index in sorted(cpu_dir.glob("cache/index[0-9]*")):
        try:
            level = int((index / "level").read_text())
            shared = tuple(cpu_list((index / "shared_cpu_list").read_text()))
        except (OSError, ValueError):
            continue
        if best is None or level > best[0]:
            best = (level, shared)
    return best[1] if best else None


def host_llcs(root: Path = SYSFS_CPU) -> list[list[int]]:
    """Online host CPUs grouped by LLC, ordered by first CPU. (Not this thread's affinity:
    a performance run pins its own threads, and the next VM must still see the host.)"""
    try:
        online = set(cpu_list((root / "online").read_text()))
    except OSError:
        online = set(range(os.cpu_count() or 1))
    groups: dict[tuple[int, ...], list[int]] = {}
    for cpu in sorted(online):
        shared = _llc_of(root / f"cpu{cpu}") or (cpu,)
        groups.setdefault(shared, []).append(cpu)
    return sorted(groups.values())


def performance_refusal(nr_vcpus: int, llcs: list[list[int]] | None = None) -> str | None:
    """The one-line reason performance mode cannot run ``nr_vcpus`` here, or None."""
    llcs = host_llcs() if llcs is None else llcs
    have = sum(len(g) for g in llcs)
    if have < nr_vcpus + 1:
        return (
            f"--performance needs {nr_vcpus + 1} host CPUs ({nr_vcpus} vCPUs plus a service "
            f"CPU) and this host offers {have}: use a smaller topology or drop --performance"
        )
    return None
