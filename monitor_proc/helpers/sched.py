"""Scheduler run queues (:linux:`kernel/sched/sched.h`).

Fields are looked up by BTF member name; a member missing from this kernel is left out of
the sample (EAFP), never guessed from a version number.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from monitor_proc.btf import MissingMember
from monitor_proc.helpers.percpu import per_cpu_ptr, percpu_symbol
from monitor_proc.program import BadDataError, Program

__all__ = ("cpu_curr", "cpu_rq", "rq_sample", "task_comm", "task_cpu", "task_pid", "task_sample",
           "task_state_to_char")

_FMT = {1: "<B", 2: "<H", 4: "<I", 8: "<Q"}
TASK_COMM_LEN = 16

# sample key -> candidate struct rq members, newest name first.
_RQ_FIELDS: dict[str, tuple[str, ...]] = {
    "nr_running": ("nr_running",),
    "rq_clock": ("clock",),
    "clock_task": ("clock_task",),
    "nr_switches": ("nr_switches",),
    # cfs_rq.h_nr_running became h_nr_queued (Linux commit "sched/fair: Rename
    # h_nr_running into h_nr_queued"; Debian's 6.12 already has the new name)
    "cfs_h_nr_queued": ("cfs.h_nr_queued", "cfs.h_nr_running"),
    "scx_nr_running": ("scx.nr_running",),   # sched_ext, v6.12
}
_REQUIRED = ("nr_running", "rq_clock")


@dataclass(frozen=True)
class _Plan:
    fields: tuple[tuple[str, int, str], ...]   # (key, offset, struct format)
    cpu_off: int | None
    curr_off: int
    size: int
    pid_off: int    # task_struct.pid and .comm: looked up once, not per sample
    comm_off: int


def cpu_rq(prog: Program, cpu: int) -> int:
    """Get the runqueue of a CPU.

    >>> hex(cpu_rq(prog, 0))

    :param cpu: CPU number.
    :returns: ``struct rq *``
    """
    return per_cpu_ptr(prog, percpu_symbol(prog, "runqueues"), cpu)


def cpu_curr(prog: Program, cpu: int) -> int:
    """Get the task running on a CPU.

    :param cpu: CPU number.
    :returns: ``struct task_struct *``
    """
    return prog.read_u64(cpu_rq(prog, cpu) + prog.member_offset("rq", "curr"))


def task_pid(prog: Program, task: int) -> int:
    """:param task: ``struct task_struct *``
    :returns: ``task->pid``
    """
    return prog.read_s32(task + prog.member_offset("task_struct", "pid"))


def task_comm(prog: Program, task: int) -> str:
    """:param task: ``struct task_struct *``
    :returns: ``task->comm`` up to its NUL
    """
    return _comm(prog.read(task + prog.member_offset("task_struct", "comm"), TASK_COMM_LEN))


def _comm(raw: bytes) -> str:
    return raw.split(b"\0", 1)[0].decode("utf-8", "replace")


def _plan(prog: Program) -> _Plan:
    plan = prog.cache.get("rq_sample_plan")
    if plan is not None:
        return plan
    rq = prog.struct("rq")
    fields = []
    for key, names in _RQ_FIELDS.items():
        for name in names:
            try:
                m = rq.member(name)
            except MissingMember:
                continue
            if m.bit_size == 0 and m.size in _FMT:
                fields.append((key, m.offset, _FMT[m.size]))
                break
        else:
            if key in _REQUIRED:
                raise MissingMember(f"struct rq has none of {names}")
    cpu_off = rq.member("cpu").offset if rq.has_member("cpu") else None
    plan = _Plan(tuple(fields), cpu_off, rq.member("curr").offset, rq.size,
                 prog.member_offset("task_struct", "pid"), prog.member_offset("task_struct", "comm"))
    prog.cache["rq_sample_plan"] = plan
    return plan


def rq_sample(prog: Program, cpu: int) -> dict[str, int | str]:
    """One cheap snapshot of a CPU's runqueue: a single read of ``struct rq`` plus the
    current task's pid and comm.

    >>> rq_sample(prog, 0)
    {'nr_running': 1, 'rq_clock': 5123456789, 'clock_task': ..., 'nr_switches': 812,
     'cfs_h_nr_queued': 1, 'scx_nr_running': 0, 'curr_pid': 1, 'curr_comm': 'init'}

    :param cpu: CPU number.
    :raises BadDataError: ``rq->cpu`` is not ``cpu`` (run queues not initialised yet).
    """
    plan = _plan(prog)
    rq = cpu_rq(prog, cpu)
    raw = prog.read(rq, plan.size)
    if plan.cpu_off is not None:
        rq_cpu = struct.unpack_from("<i", raw, plan.cpu_off)[0]
        if rq_cpu != cpu:
            raise BadDataError(f"rq of cpu {cpu} at {rq:#x} says cpu {rq_cpu}")
    out: dict[str, int | str] = {
        key: struct.unpack_from(fmt, raw, off)[0] for key, off, fmt in plan.fields}
    curr = struct.unpack_from("<Q", raw, plan.curr_off)[0]
    if curr:
        out["curr_pid"] = prog.read_s32(curr + plan.pid_off)
        out["curr_comm"] = _comm(prog.read(curr + plan.comm_off, TASK_COMM_LEN))
    return out


# include/linux/sched.h: TASK_REPORT states, indexed by fls(state); one past is "idle".
_STATE_CHARS = "RSDTtXZPI"
_TASK_REPORT = 0x7F
_TASK_IDLE = 0x402          # TASK_UNINTERRUPTIBLE | TASK_NOLOAD


def _member_value(prog: Program, task: int, struct_name: str, path: str) -> int:
    m = prog.member(struct_name, path)
    if m.size not in _FMT:
        raise BadDataError(f"{struct_name}.{path} has size {m.size}")
    return struct.unpack(_FMT[m.size], prog.read(task + m.offset, m.size))[0]


def task_cpu(prog: Program, task: int) -> int:
    """Get the CPU a task last ran (or is queued) on.

    :param task: ``struct task_struct *``
    """
    try:
        return _member_value(prog, task, "task_struct", "thread_info.cpu")
    except MissingMember:   # THREAD_INFO_IN_TASK=n, or the field lived in task_struct
        return _member_value(prog, task, "task_struct", "cpu")


def task_state_to_char(prog: Program, task: int) -> str:
    """Get the state of a task as ps shows it (``R``, ``S``, ``D``, ``I``...).

    :param task: ``struct task_struct *``
    """
    try:
        state = _member_value(prog, task, "task_struct", "__state")
    except MissingMember:   # renamed "state" -> "__state" in Linux commit 2f064a59a11f (v5.14)
        state = _member_value(prog, task, "task_struct", "state")
    if state & _TASK_IDLE == _TASK_IDLE:
        return "I"
    report = (state | _member_value(prog, task, "task_struct", "exit_state")) & _TASK_REPORT
    return _STATE_CHARS[report.bit_length()]


def task_sample(prog: Program, task: int) -> dict[str, int | str]:
    """A task's identity, state, CPU and ``se.sum_exec_runtime`` (ns of CPU time).

    :param task: ``struct task_struct *``
    """
    return {"pid": task_pid(prog, task), "comm": task_comm(prog, task),
            "state": task_state_to_char(prog, task), "cpu": task_cpu(prog, task),
            "sum_exec_runtime": _member_value(prog, task, "task_struct",
                                              "se.sum_exec_runtime")}
