"""Host CPUs for a performance-mode VM, reserved a whole LLC at a time.

Each host LLC has a lock file; a run holds an exclusive ``flock`` on every LLC it uses for
its whole life, so two performance runs never share a last-level cache (and never measure
each other's cache traffic). The kernel drops the locks if the process dies.
"""

from __future__ import annotations

import fcntl
import os
from dataclasses import dataclass, field
from pathlib import Path

from schedlab_shared.host_llc import host_llcs

__all__ = ("LOCK_DIR", "LlcReservation", "ReservationRefused", "reserve")

LOCK_DIR = Path.home() / ".cache" / "schedlab" / "locks"


class ReservationRefused(Exception):
    """No set of free LLCs holds enough CPUs; the message says what was busy."""


@dataclass
class LlcReservation:
    """``service`` runs the VMM's own threads; ``vcpus[i]`` is vCPU i's CPU."""

    service: int
    vcpus: list[int]
    llcs: list[list[int]]
    _fds: list[int] = field(default_factory=list, repr=False)

    def release(self) -> None:
        """Drop the LLC locks (idempotent)."""
        fds, self._fds = self._fds, []
        for fd in fds:
            os.close(fd)  # closing the last fd releases the flock


def _try_lock(path: Path) -> int | None:
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return None
    return fd


def reserve(
    nr_vcpus: int, llcs: list[list[int]] | None = None, lock_dir: Path = LOCK_DIR
) -> LlcReservation:
    """Lock free LLCs, smallest first, until they hold ``nr_vcpus`` + 1 CPUs.

    :raises ReservationRefused: the free LLCs do not hold enough CPUs.
    """
    groups = host_llcs() if llcs is None else llcs
    lock_dir.mkdir(parents=True, exist_ok=True)
    fds: list[int] = []
    taken: list[list[int]] = []
    busy: list[str] = []
    need = nr_vcpus + 1
    for group in sorted(groups, key=lambda g: (len(g) < need, len(g), g)):
        fd = _try_lock(lock_dir / f"llc-cpu{group[0]}.lock")
        if fd is None:
            busy.append(f"{group[0]}-{group[-1]}")
            continue
        fds.append(fd)
        taken.append(group)
        if sum(len(g) for g in taken) >= need:
            cpus = [c for g in taken for c in g]
            return LlcReservation(cpus[0], cpus[1 : 1 + nr_vcpus], taken, fds)
    for fd in fds:
        os.close(fd)
    held = f" (LLCs with CPUs {', '.join(busy)} are held by other performance runs)" if busy else ""
    raise ReservationRefused(f"no free host LLCs with {need} CPUs{held}")
