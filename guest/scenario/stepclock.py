"""The step counter every worker of a scenario reads: one shared file, written by the runner.

Workers cut their report into one segment per step phase (:mod:`guest.scenario.worker`):
``setup`` from the step's start (its ops, its cgroups; the backdrop's too, for step 0) to
its hold, then ``hold``. The counter holds ``2 * step + (1 if hold else 0)``
(:func:`phase_of`). A signal per boundary would be lost when two arrive before the handler
runs (CPython keeps one pending flag per signal), so the runner writes the counter into a
file on tmpfs and each worker reads it through a shared mapping between work units (a read
is a few hundred nanoseconds).

Each worker also has a slot where it acknowledges the value it saw once it closed its
previous segment; the runner waits for those acknowledgements (:meth:`StepClock.wait`)
before it applies the next step's ops. So a hold segment begins after its step's ops took
effect and ends before the next step's first op: it shows that step's steady state.

A second word per slot says the worker's meter for that value began (:meth:`StepReader.began`):
the runner starts a hold's clock only then (bounded), so the hold measures work, not a
worker's way to its loop. Under a slow guest that way took longer than a 2 s hold (scx_simple
in the nested-KVM testbed: 4-5 s from the hold's start to the workers' first unit).
"""

from __future__ import annotations

import mmap
import os
import struct
import time

TYPE_CHECKING = False  # typing costs ~0.4 s of guest startup under TCG
if TYPE_CHECKING:
    from collections.abc import Callable, Iterable

__all__ = ("HOLD", "SETUP", "SLOTS", "StepClock", "StepReader", "phase_of")

SETUP, HOLD = "setup", "hold"
SLOTS = 1024  # guest.spec.MAX_TOTAL_WORKERS: workers alive at once
_WORD = struct.Struct("<Q")  # aligned 8-byte words: never torn on x86
_SIZE = -(-(_WORD.size * (1 + 2 * SLOTS)) // mmap.PAGESIZE) * mmap.PAGESIZE


def _ack_at(slot: int) -> int:
    return _WORD.size * (1 + slot)


def _began_at(slot: int) -> int:
    return _WORD.size * (1 + SLOTS + slot)


def phase_of(value: int) -> tuple[int, str]:
    """A counter value as ``(step, phase)``."""
    return value >> 1, HOLD if value & 1 else SETUP


def _map(path: str, flags: int, prot: int) -> mmap.mmap:
    fd = os.open(path, flags | os.O_CLOEXEC, 0o644)
    try:
        if flags & os.O_CREAT:
            os.ftruncate(fd, _SIZE)
        return mmap.mmap(fd, _SIZE, mmap.MAP_SHARED, prot)
    finally:
        os.close(fd)


class StepClock:
    """The runner's side: create the file, set the current step, wait for the workers.

    :param path: a file on tmpfs (``/run/schedlab/scenario/step`` in the guest).
    """

    def __init__(self, path: str) -> None:
        self.path = path
        os.makedirs(os.path.dirname(path), exist_ok=True)
        rw = mmap.PROT_READ | mmap.PROT_WRITE
        self._map = _map(path, os.O_RDWR | os.O_CREAT | os.O_TRUNC, rw)
        self.value = 0
        self.set(0)

    def set(self, step: int, hold: bool = False) -> None:
        """Step ``step`` begins (its setup phase), or its hold does."""
        self.value = 2 * step + (1 if hold else 0)
        _WORD.pack_into(self._map, 0, self.value)

    def clear(self, slot: int) -> None:
        """Slot ``slot`` is a new worker's: nothing acknowledged or begun yet."""
        _WORD.pack_into(self._map, _ack_at(slot), 0)
        _WORD.pack_into(self._map, _began_at(slot), 0)

    def acked(self, slot: int) -> int:
        """The last value the worker in ``slot`` acknowledged, or -1 for none."""
        return _WORD.unpack_from(self._map, _ack_at(slot))[0] - 1

    def begun(self, slot: int) -> int:
        """The last value whose meter the worker in ``slot`` began, or -1 for none."""
        return _WORD.unpack_from(self._map, _began_at(slot))[0] - 1

    def wait(
        self,
        slots: Callable[[], Iterable[int]],
        timeout_s: float,
        poll: Callable[[float], None],
        began: bool = False,
    ) -> list[int]:
        """Wait until every slot of ``slots()`` (asked again each time: workers end) saw the
        current value (``began``: began its meter for it); return the late ones.

        :param poll: called with a short timeout between looks (it takes ended workers).
        """
        seen = self.begun if began else self.acked
        end = time.monotonic() + timeout_s
        while True:
            left = [s for s in slots() if seen(s) != self.value]
            if not left or time.monotonic() >= end:
                return left
            poll(0.002)

    def close(self) -> None:
        self._map.close()
        try:
            os.unlink(self.path)
        except OSError:
            pass


class StepReader:
    """A worker's side: :meth:`read` is the counter's value (:func:`phase_of` decodes it);
    :meth:`ack` acknowledges it in the worker's ``slot``, :meth:`began` says its meter for
    it runs."""

    def __init__(self, path: str, slot: int) -> None:
        self._map = _map(path, os.O_RDWR, mmap.PROT_READ | mmap.PROT_WRITE)
        self._slot = _ack_at(slot)
        self._began = _began_at(slot)
        #: The shared page itself: native loops watch the counter in it (its first u64).
        self.buffer = self._map

    def read(self) -> int:
        return _WORD.unpack_from(self._map, 0)[0]

    def ack(self, value: int) -> None:
        _WORD.pack_into(self._map, self._slot, value + 1)

    def began(self, value: int) -> None:
        _WORD.pack_into(self._map, self._began, value + 1)
