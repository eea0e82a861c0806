"""Host CPU time of each vCPU's thread, from ``/proc/PID/task/TID/schedstat``.

The monitor asks for it to tell a vCPU that the host did not run (its guest clock stands
still, which is not a guest stall) from one that ran and made no progress.
"""

from __future__ import annotations

__all__ = ("thread_run_ns",)


def thread_run_ns(pid: int, tid: int) -> int:
    """Nanoseconds thread ``tid`` of process ``pid`` has spent on a CPU; -1 if unreadable.

    The first field of ``schedstat`` (Documentation/scheduler/sched-stats.rst: "time spent on
    the cpu", ns; needs CONFIG_SCHED_INFO, which every distribution kernel has).
    """
    try:
        with open(f"/proc/{pid}/task/{tid}/schedstat", "rb") as f:
            return int(f.read(64).split(maxsplit=1)[0])
    except (OSError, ValueError, IndexError):
        return -1
