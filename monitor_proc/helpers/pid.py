"""Tasks of the guest (:linux:`include/linux/sched/signal.h`)."""

from __future__ import annotations

from collections.abc import Iterator

from monitor_proc.helpers.list import list_for_each_entry
from monitor_proc.program import Program

__all__ = ("MAX_TASKS", "for_each_task")

MAX_TASKS = 1 << 22  # PID_MAX_LIMIT: a longer task list is corrupt


def for_each_task(prog: Program) -> Iterator[int]:
    """Iterate over every thread-group leader, starting after ``init_task`` (the idle task
    of CPU 0, pid 0), like ``for_each_process()``.

    >>> [task_pid(prog, t) for t in for_each_task(prog)][:3]
    [1, 2, 3]

    :returns: iterator of ``struct task_struct *``
    """
    init = prog.symbol("init_task")
    head = init + prog.member_offset("task_struct", "tasks")
    yield from list_for_each_entry(prog, "task_struct", head, "tasks", MAX_TASKS)
