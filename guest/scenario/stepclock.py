"""The step counter every worker of a scenario reads: one shared page, written by the runner.

Workers cut their report into one segment per step phase (:mod:`guest.scenario.worker`):
``setup`` from the step's start (its ops, its cgroups; the backdrop's too, for step 0) to
its hold, then ``hold``. A hold segment so begins after every op of its step took effect:
what it shows (the CPUs used, say) is the step's steady state. The counter holds
``2 * step + (1 if hold else 0)`` (:func:`phase_of`). A signal
per step boundary would be lost when two arrive before the handler runs (CPython keeps one
pending flag per signal), so the runner writes the current step's index into a small file
on tmpfs and each worker reads it through a shared mapping between work units: a read is a
few hundred nanoseconds and never misses a step.
"""

from __future__ import annotations

import mmap
import os
import struct

__all__ = ("HOLD", "SETUP", "StepClock", "StepReader", "phase_of")

SETUP, HOLD = "setup", "hold"


def phase_of(value: int) -> tuple[int, str]:
    """A counter value as ``(step, phase)``."""
    return value >> 1, HOLD if value & 1 else SETUP


_FMT = "<Q"  # the step index (aligned: a worker never sees a torn write on x86)
_SIZE = mmap.PAGESIZE


class StepClock:
    """The runner's side: create the file, set the current step.

    :param path: a file on tmpfs (``/run/schedlab/scenario/step`` in the guest).
    """

    def __init__(self, path: str) -> None:
        self.path = path
        os.makedirs(os.path.dirname(path), exist_ok=True)
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o644)
        try:
            os.ftruncate(fd, _SIZE)
            self._map = mmap.mmap(fd, _SIZE, mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE)
        finally:
            os.close(fd)
        self.step = 0
        self.set(0)

    def set(self, step: int, hold: bool = False) -> None:
        """Step ``step`` begins (its setup phase), or its hold does."""
        self.step = step
        struct.pack_into(_FMT, self._map, 0, 2 * step + (1 if hold else 0))

    def close(self) -> None:
        self._map.close()
        try:
            os.unlink(self.path)
        except OSError:
            pass


class StepReader:
    """A worker's side: :meth:`read` is the counter's value (:func:`phase_of` decodes it)."""

    def __init__(self, path: str) -> None:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        try:
            self._map = mmap.mmap(fd, _SIZE, mmap.MAP_SHARED, mmap.PROT_READ)
        finally:
            os.close(fd)
        self._unpack = struct.Struct(_FMT).unpack_from

    def read(self) -> int:
        return self._unpack(self._map, 0)[0]
