"""What a worker does: one function per work type, run in a process forked by the worker parent.

A work type is ``fn(args, stopped) -> report``: ``args`` is the msgpack map of the spawn
request, ``stopped()`` turns true once the worker got SIGTERM (then it reports the work done so
far), and the returned map is the worker's report. :data:`KINDS` names them for spawn requests:
each work type of :data:`guest.scenario.work.WORK_TYPES` under its name, ``scenario`` (any of
them inside a scenario, reported per step) and ``exec`` (a payload program).
"""

from __future__ import annotations

import os
import time
from collections import namedtuple

from guest.scenario import worker as _scenario

TYPE_CHECKING = False  # typing costs ~0.4 s of guest startup under TCG
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

__all__ = ("KINDS", "UNIT_ITERS", "SpinResult", "scenario_worker", "spin", "spin_worker")

#: Iterations of one work unit: ~1 ms under a loaded TCG guest (measured ~18 us per
#: iteration there), a few us natively, so checkpoints resolve ms-scale stalls.
UNIT_ITERS = 50

#: Work done by :func:`spin`: ``work_units: int``, ``max_gap_ns: int``, ``max_gap_at``
#: (the clock when the longest gap began), ``cpus`` (sorted CPUs seen, when ``cpu`` is given).
SpinResult = namedtuple("SpinResult", "work_units max_gap_ns max_gap_at cpus", defaults=(0, ()))


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
    cpu: Callable[[], int] | None = None,
) -> SpinResult:
    """Do fixed work units until ``duration_ns`` passed or ``stop()`` is true.

    :param cpu: the CPU running the caller now (sampled once per unit), or None.
    :return: units completed and the longest gap between consecutive checkpoints
        (the start counts as the first checkpoint).
    """
    start = last = clock()
    deadline = start + duration_ns
    units = max_gap = 0
    gap_at = start
    seen: set[int] = set()
    while not stop():
        _unit(unit_iters)
        units += 1
        now = clock()
        if now - last > max_gap:
            max_gap, gap_at = now - last, last
        last = now
        if cpu is not None:
            seen.add(cpu())
        if now >= deadline:
            break
    return SpinResult(units, max_gap, gap_at, tuple(sorted(seen)))


def _getcpu() -> Callable[[], int] | None:
    try:
        import ctypes  # loaded at startup already (mounts use it)

        return ctypes.CDLL(None).sched_getcpu  # type: ignore[no-any-return]
    except (ImportError, OSError, AttributeError):
        return None


_sched_getcpu = _getcpu()


def _boot_ns() -> int:
    return time.clock_gettime_ns(time.CLOCK_BOOTTIME)


def spin_worker(args: dict[str, Any], stopped: Callable[[], bool]) -> dict[str, Any]:
    """The ``spin`` work type: args ``cgroup`` (name), ``duration_s``, optional ``unit_iters``;
    a WorkerReport map plus ``max_gap_at_ns`` (CLOCK_BOOTTIME) and ``cpus``."""
    cpu0 = time.process_time_ns()
    res = spin(
        int(float(args["duration_s"]) * 1e9),
        stopped,
        clock=_boot_ns,
        unit_iters=int(args.get("unit_iters", UNIT_ITERS)),
        cpu=_sched_getcpu,
    )
    return {
        "cgroup": str(args.get("cgroup", "")),
        "pid": os.getpid(),
        "work_units": res.work_units,
        "cpu_time_ns": time.process_time_ns() - cpu0,
        "max_gap_ms": res.max_gap_ns / 1e6,
        "max_gap_at_ns": res.max_gap_at,
        "cpus": list(res.cpus),
        "error": "",
    }


def scenario_worker(args: dict[str, Any], stopped: Callable[[], bool]) -> dict[str, Any]:
    """Kind ``scenario``: any work type below, cut into per-step segments (:mod:`guest.scenario.worker`)."""
    return _scenario.run(args, stopped, KINDS)


KINDS: dict[str, Callable[[dict[str, Any], Callable[[], bool]], dict[str, Any]]] = {
    "spin": spin_worker,
    _scenario.KIND: scenario_worker,
    "exec": _scenario.exec_payload,
}
