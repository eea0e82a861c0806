"""Scheduler run queues (:linux:`kernel/sched/sched.h`).

Fields are looked up by BTF member name; a member missing from this kernel is left out of
the sample (EAFP), never guessed from a version number.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from monitor_proc.btf import MissingMember
from monitor_proc.helpers.percpu import per_cpu_offsets, per_cpu_ptr, percpu_symbol
from monitor_proc.program import BadDataError, Program

__all__ = (
    "cpu_curr",
    "cpu_rq",
    "cpu_samples",
    "rq_sample",
    "sched_domains",
    "task_comm",
    "task_cpu",
    "task_pid",
    "task_sample",
    "task_state_to_char",
)

_FMT = {1: "<B", 2: "<H", 4: "<I", 8: "<Q"}
_Q, _I32 = struct.Struct("<Q"), struct.Struct("<i")
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
    "scx_nr_running": ("scx.nr_running",),  # sched_ext, v6.12
    "scx_flags": ("scx.flags",),
    "local_dsq_nr": ("scx.local_dsq.nr",),
    "scx_clock": ("scx.clock",),  # "sched_ext: Add scx_rq->clock" (v6.14)
    # CONFIG_SCHED_INFO / CONFIG_SCHEDSTATS (schedstat fields of struct rq)
    "run_delay": ("rq_sched_info.run_delay",),
    "pcount": ("rq_sched_info.pcount",),
    "yld_count": ("yld_count",),
    "sched_count": ("sched_count",),
    "sched_goidle": ("sched_goidle",),
    "ttwu_count": ("ttwu_count",),
    "ttwu_local": ("ttwu_local",),
}
_REQUIRED = ("nr_running", "rq_clock")


_U64 = (1 << 64) - 1
MAX_DOMAIN_LEVELS = 16  # SMT, MC, PKG, NUMA levels: far fewer in any real machine
_KERNEL_HALF = 1 << 63  # kernel pointers have the top bit set (x86_64)


@dataclass(frozen=True)
class _Plan:
    fields: tuple[tuple[str, int, str], ...]  # (key, offset, struct format)
    cpu_off: int | None
    curr_off: int
    size: int
    pid_off: int  # task_struct.pid and .comm: looked up once, not per sample
    comm_off: int
    sd_off: int | None
    runqueues: int
    unpack: struct.Struct  # every field of ``fields`` in one unpack, in offset order
    keys: tuple[str, ...]  # the sample keys of ``unpack``'s values
    task_lo: int  # the current task's pid and comm in one read: from this offset...
    task_len: int  # ...this many bytes


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
    sd_off = rq.member("sd").offset if rq.has_member("sd") else None
    pid_off = prog.member_offset("task_struct", "pid")
    comm_off = prog.member_offset("task_struct", "comm")
    task_lo = min(pid_off, comm_off)
    plan = _Plan(
        tuple(fields),
        cpu_off,
        rq.member("curr").offset,
        rq.size,
        pid_off,
        comm_off,
        sd_off,
        percpu_symbol(prog, "runqueues"),
        _one_unpack(fields),
        tuple(k for k, _, _ in sorted(fields, key=lambda e: e[1])),
        task_lo,
        max(pid_off + 4, comm_off + TASK_COMM_LEN) - task_lo,
    )
    prog.cache["rq_sample_plan"] = plan
    return plan


def _one_unpack(fields: list[tuple[str, int, str]]) -> struct.Struct:
    """One ``struct.Struct`` reading every field at its offset (pad bytes between)."""
    fmt, pos = "<", 0
    for _key, off, f in sorted(fields, key=lambda e: e[1]):
        size = struct.calcsize(f)
        if off < pos:
            raise BadDataError(f"rq fields overlap at offset {off}")
        fmt += (f"{off - pos}x" if off > pos else "") + f[1:]
        pos = off + size
    return struct.Struct(fmt)


def _decode_rq(prog: Program, plan: _Plan, cpu: int, rq: int, raw: bytes) -> dict[str, int | str]:
    if plan.cpu_off is not None:
        rq_cpu = _I32.unpack_from(raw, plan.cpu_off)[0]
        if rq_cpu != cpu:
            raise BadDataError(f"rq of cpu {cpu} at {rq:#x} says cpu {rq_cpu}")
    out: dict[str, int | str] = dict(zip(plan.keys, plan.unpack.unpack_from(raw), strict=True))
    curr = _Q.unpack_from(raw, plan.curr_off)[0]
    if curr:
        task = prog.read(curr + plan.task_lo, plan.task_len)  # pid and comm: one read
        out["curr_pid"] = _I32.unpack_from(task, plan.pid_off - plan.task_lo)[0]
        comm = plan.comm_off - plan.task_lo
        out["curr_comm"] = _comm(task[comm : comm + TASK_COMM_LEN])
    return out


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
    return _decode_rq(prog, plan, cpu, rq, prog.read(rq, plan.size))


def cpu_samples(
    prog: Program, offsets: tuple[int, ...] | None = None
) -> list[dict[str, int | str]]:
    """:func:`rq_sample` of every CPU, each with its ``cpu``, reading ``nr_cpu_ids`` and
    ``__per_cpu_offset`` once (or taking ``offsets`` already read) and each ``struct rq``
    in one read (the sampler's hot path).

    >>> [s["nr_running"] for s in cpu_samples(prog)]
    [1, 0]
    """
    plan = _plan(prog)
    out = []
    for cpu, off in enumerate(offsets if offsets is not None else per_cpu_offsets(prog)):
        rq = (plan.runqueues + off) & _U64
        s = _decode_rq(prog, plan, cpu, rq, prog.read(rq, plan.size))
        s["cpu"] = cpu
        out.append(s)
    return out


_SD_FIELDS = (
    "level",
    "flags",
    "span_weight",
    "balance_interval",
    "nr_balance_failed",
    "max_newidle_lb_cost",
)


def sched_domains(prog: Program, cpu: int) -> list[dict[str, int | str]]:
    """The CPU's scheduling domains, innermost first: ``rq->sd`` and each ``->parent``.

    >>> [d["name"] for d in sched_domains(prog, 0)]
    ['SMT', 'MC', 'PKG']

    :param cpu: CPU number.
    :returns: one map per level with the fields of
        :data:`schedlab_shared.monitor_schema.DOMAIN_FIELDS` this kernel has; ``[]``
        without ``CONFIG_SMP`` domains (or before they are built).
    :raises BadDataError: a chain longer than :data:`MAX_DOMAIN_LEVELS`, or a non-kernel
        pointer in it.
    """
    plan = _plan(prog)
    if plan.sd_off is None:
        return []
    sd = prog.read_u64(cpu_rq(prog, cpu) + plan.sd_off)
    sd_t = prog.struct("sched_domain")
    present = [(k, sd_t.member(k)) for k in _SD_FIELDS if sd_t.has_member(k)]
    parent = sd_t.member("parent").offset
    name = sd_t.member("name").offset if sd_t.has_member("name") else None
    out: list[dict[str, int | str]] = []
    for _ in range(MAX_DOMAIN_LEVELS):
        if sd == 0:
            return out
        if sd < _KERNEL_HALF:
            raise BadDataError(f"sched_domain pointer {sd:#x} of cpu {cpu} is not a kernel address")
        raw = prog.read(sd, sd_t.size)
        level: dict[str, int | str] = {}
        for key, m in present:
            if m.bit_size == 0 and m.size in _FMT:
                level[key] = struct.unpack_from(_FMT[m.size], raw, m.offset)[0]
        if name is not None:
            ptr = struct.unpack_from("<Q", raw, name)[0]
            if ptr:
                level["name"] = _comm(prog.read(ptr, TASK_COMM_LEN))
        out.append(level)
        sd = struct.unpack_from("<Q", raw, parent)[0]
    raise BadDataError(f"sched_domain chain of cpu {cpu} longer than {MAX_DOMAIN_LEVELS}")


# include/linux/sched.h: TASK_REPORT states, indexed by fls(state); one past is "idle".
_STATE_CHARS = "RSDTtXZPI"
_TASK_REPORT = 0x7F
_TASK_IDLE = 0x402  # TASK_UNINTERRUPTIBLE | TASK_NOLOAD


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
    except MissingMember:  # THREAD_INFO_IN_TASK=n, or the field lived in task_struct
        return _member_value(prog, task, "task_struct", "cpu")


def task_state_to_char(prog: Program, task: int) -> str:
    """Get the state of a task as ps shows it (``R``, ``S``, ``D``, ``I``...).

    :param task: ``struct task_struct *``
    """
    try:
        state = _member_value(prog, task, "task_struct", "__state")
    except MissingMember:  # renamed "state" -> "__state" in Linux commit 2f064a59a11f (v5.14)
        state = _member_value(prog, task, "task_struct", "state")
    if state & _TASK_IDLE == _TASK_IDLE:
        return "I"
    report = (state | _member_value(prog, task, "task_struct", "exit_state")) & _TASK_REPORT
    return _STATE_CHARS[report.bit_length()]


def task_sample(prog: Program, task: int) -> dict[str, int | str]:
    """A task's identity, state, CPU and ``se.sum_exec_runtime`` (ns of CPU time).

    :param task: ``struct task_struct *``
    """
    return {
        "pid": task_pid(prog, task),
        "comm": task_comm(prog, task),
        "state": task_state_to_char(prog, task),
        "cpu": task_cpu(prog, task),
        "sum_exec_runtime": _member_value(prog, task, "task_struct", "se.sum_exec_runtime"),
    }
