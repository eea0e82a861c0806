"""How a worker runs: scheduling class, nice, CPU affinity (set from outside, on a pid) and
memory policy (set_mempolicy(2), which only acts on the calling thread: the worker calls it).
"""

from __future__ import annotations

import os

TYPE_CHECKING = False  # typing costs ~0.4 s of guest startup under TCG
if TYPE_CHECKING:
    from typing import Any

__all__ = (
    "POLICY_NUMBERS",
    "SCHED_EXT",
    "Rng",
    "affinity_cpus",
    "apply_policy",
    "set_mempolicy",
)

SCHED_EXT = 7  # include/uapi/linux/sched.h: SCHED_EXT (sched_ext, partial switch)
POLICY_NUMBERS = {
    "normal": os.SCHED_OTHER,
    "batch": os.SCHED_BATCH,
    "idle": os.SCHED_IDLE,
    "fifo": os.SCHED_FIFO,
    "rr": os.SCHED_RR,
    "ext": SCHED_EXT,
}
# include/uapi/linux/mempolicy.h
_MPOL_MODES = {
    "default": 0,
    "preferred": 1,
    "bind": 2,
    "interleave": 3,
    "local": 4,
    "preferred_many": 5,
    "weighted_interleave": 6,
}
_MPOL_FLAGS = {"static_nodes": 1 << 15, "relative_nodes": 1 << 14, "numa_balancing": 1 << 13}
_SYS_SET_MEMPOLICY = 238  # x86_64 (arch/x86/entry/syscalls/syscall_64.tbl)
_NODE_BITS = 64  # one unsigned long of nodemask covers the document's bound


def apply_policy(pid: int, policy: dict[str, Any], nice: int) -> None:
    """Scheduling class then nice (sched_setscheduler(2) leaves the nice value alone).

    :raises OSError: the kernel refused (e.g. SCHED_EXT without sched_ext built in).
    """
    cls = policy["class"]
    if cls != "normal" or policy["priority"]:
        os.sched_setscheduler(pid, POLICY_NUMBERS[cls], os.sched_param(policy["priority"]))
    if nice:
        os.setpriority(os.PRIO_PROCESS, pid, nice)


class Rng:
    """A tiny deterministic generator (xorshift64*): the ``random`` module costs startup."""

    def __init__(self, seed: int) -> None:
        self.state = (seed * 0x9E3779B97F4A7C15 + 1) & 0xFFFFFFFFFFFFFFFF or 1

    def below(self, n: int) -> int:
        x = self.state
        x ^= x >> 12
        x ^= (x << 25) & 0xFFFFFFFFFFFFFFFF
        x ^= x >> 27
        self.state = x
        return ((x * 0x2545F4914F6CDD1D) & 0xFFFFFFFFFFFFFFFF) % n

    def sample(self, items: list[int], k: int) -> list[int]:
        pool = list(items)
        out = []
        for _ in range(min(k, len(pool))):
            out.append(pool.pop(self.below(len(pool))))
        return sorted(out)


def affinity_cpus(
    affinity: dict[str, Any],
    index: int,
    cpuset: list[int],
    topology: dict[str, Any],
    rng: Rng,
) -> list[int] | None:
    """The CPUs worker ``index`` of a cgroup gets, or None to leave it alone.

    :param cpuset: the cgroup's effective CPUs now ([]: all usable CPUs).
    :param topology: the document's topology (usable CPUs, LLC lists).
    """
    kind = affinity["kind"]
    base = cpuset or topology["usable"]
    if kind == "inherit":
        return None
    if kind == "exact":
        return list(affinity["cpus"])
    if kind == "cross_cgroup":
        return list(topology["usable"])
    if kind == "single_cpu":
        return [base[index % len(base)]]
    if kind == "random_subset":
        return rng.sample(base, affinity["count"])
    # llc_aligned: the LLCs the cpuset touches, one per worker in turn
    llcs = [sorted(set(g) & set(base)) for g in topology["llcs"]]
    llcs = [g for g in llcs if g]
    return llcs[index % len(llcs)]


def set_mempolicy(mempolicy: dict[str, Any]) -> None:
    """set_mempolicy(2) for the calling thread (a worker, before it starts its work).

    :raises OSError: the kernel refused (e.g. a node without memory).
    """
    mode = _MPOL_MODES[mempolicy["mode"]]
    if mode == 0 and not mempolicy["flags"]:
        return  # the default already
    import ctypes  # loaded by the worker parent already (prctl)

    for f in mempolicy["flags"]:
        mode |= _MPOL_FLAGS[f]
    mask = 0
    for n in mempolicy["nodes"]:
        mask |= 1 << n
    nodes = ctypes.c_ulong(mask)
    libc = ctypes.CDLL(None, use_errno=True)
    ptr = ctypes.byref(nodes) if mempolicy["nodes"] else None
    ret = libc.syscall(
        ctypes.c_long(_SYS_SET_MEMPOLICY),
        ctypes.c_int(mode),
        ptr,
        ctypes.c_ulong(_NODE_BITS + 1 if ptr is not None else 0),
    )
    if ret != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"set_mempolicy({mempolicy['mode']}): {os.strerror(err)}")
