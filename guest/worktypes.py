"""What a worker does: one function per work type, run in a process forked by the worker parent.

A work type is ``fn(args, stopped) -> report``: ``args`` is the msgpack map of the spawn
request, ``stopped()`` turns true once the worker got SIGTERM (then it reports the work done so
far), and the returned map is the worker's report. :data:`KINDS` names them for spawn requests.
"""

from __future__ import annotations

import os
import time
from collections import namedtuple

TYPE_CHECKING = False  # typing costs ~0.4 s of guest startup under TCG
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

__all__ = ("KINDS", "UNIT_ITERS", "SpinResult", "spin", "spin_worker")

#: Iterations of one work unit: ~1 ms under a loaded TCG guest (measured ~18 us per
#: iteration there), a few us natively, so checkpoints resolve ms-scale stalls.
UNIT_ITERS = 50

#: Work done by :func:`spin`: ``work_units: int``, ``max_gap_ns: int``.
SpinResult = namedtuple("SpinResult", "work_units max_gap_ns")


def _unit(n: int) -> int:
    x = 0
    for i in range(n):
        x = (x * 31 + i) & 0xFFFF
    return x


def spin(
    duration_ns: int,
    stop: Callable[[], bool] = lambda: False,
    clock: Callable[[], int] = time.monotonic_ns,
    unit_iters: int = UNIT_ITERS,
) -> SpinResult:
    """Do fixed work units until ``duration_ns`` passed or ``stop()`` is true.

    :return: units completed and the longest gap between consecutive checkpoints
        (the start counts as the first checkpoint).
    """
    start = last = clock()
    deadline = start + duration_ns
    units = max_gap = 0
    while not stop():
        _unit(unit_iters)
        units += 1
        now = clock()
        max_gap = max(max_gap, now - last)
        last = now
        if now >= deadline:
            break
    return SpinResult(units, max_gap)


def spin_worker(args: dict[str, Any], stopped: Callable[[], bool]) -> dict[str, Any]:
    """The ``spin`` work type: args ``cgroup`` (name) and ``duration_s``; a WorkerReport map."""
    cpu0 = time.process_time_ns()
    res = spin(int(float(args["duration_s"]) * 1e9), stopped)
    return {
        "cgroup": str(args.get("cgroup", "")),
        "pid": os.getpid(),
        "work_units": res.work_units,
        "cpu_time_ns": time.process_time_ns() - cpu0,
        "max_gap_ms": res.max_gap_ns / 1e6,
        "error": "",
    }


KINDS: dict[str, Callable[[dict[str, Any], Callable[[], bool]], dict[str, Any]]] = {
    "spin": spin_worker,
}
