"""Definitions of the kernel's example schedulers (``tools/sched_ext`` of linux-source).

Flags and constraints were read in the 7.2 sources (FACTS §7): each scheduler's getopt
string and help text, its ``SCX_OPS_DEFINE`` (``.name``, ``.timeout_ms``; 0 means the
kernel's 30 s), and the checks its ``main()`` makes. Counts in fault flags are starting
points a test can override with ``--sched-args``.

>>> EXAMPLES["scx_qmap"].argv_tail(["stall-user"])
('-t', '20')
"""

from __future__ import annotations

from orchestrator.scheduler.definition import (
    EEVDF,
    SchedFlag,
    SchedulerDef,
    Sysctl,
    TopologyConstraints,
)

__all__ = ("EXAMPLES", "EXAMPLE_NAMES", "builtin", "builtin_names")

_DEFAULT_TIMEOUT_S = 30.0  # timeout_ms = 0 in SCX_OPS_DEFINE
_VERBOSE = SchedFlag("verbose", ("-v",), help="print libbpf debug messages")
_FIFO = SchedFlag("fifo", ("-f",), help="FIFO instead of weighted vtime scheduling")

_QMAP_FLAGS = (
    SchedFlag("bpf-error", ("-e", "100"), help="scx_bpf_error() after 100 enqueues"),
    SchedFlag("stall-user", ("-t", "20"), help="drop every 20th enqueue of a user task (stall)"),
    SchedFlag("stall-kthread", ("-T", "20"), help="drop every 20th enqueue of a kthread (stall)"),
    SchedFlag("dispatch-loop", ("-l", "1000"), help="dispatch live-lock after 1000 dispatches"),
    SchedFlag("partial", ("-p",), help="switch only SCHED_EXT tasks, not all"),
    SchedFlag("batch", ("-b", "8"), help="dispatch up to 8 tasks together"),
    SchedFlag("boost-nice", ("-H",), ("batch",), help="boost nice -20 tasks (needs -b)"),
    SchedFlag("always-immed", ("-I",), help="SCX_OPS_ALWAYS_ENQ_IMMED"),
    SchedFlag(
        "immed-stress",
        ("-F", "8"),
        ("always-immed",),
        help="force every 8th enqueue to a busy local DSQ (needs -I)",
    ),
    SchedFlag("print-dsqs", ("-P",), help="DSQ contents and events to trace_pipe every second"),
    SchedFlag("debug-trace", ("-M",), help="debug messages to trace_pipe"),
    SchedFlag("no-dump", ("-S",), help="suppress qmap's own debug dump"),
    SchedFlag("cid-shuffle", ("-C", "shuffle"), help="cid-override test (valid)"),
    SchedFlag("cid-bad-dup", ("-C", "bad-dup"), help="cid-override test the load must refuse"),
    SchedFlag("cid-bad-range", ("-C", "bad-range"), help="cid-override test the load must refuse"),
    _VERBOSE,
)

_DEFS = (
    SchedulerDef(
        name="scx_simple",
        binary="scx_simple",
        ops="simple",
        flags=(_FIFO, _VERBOSE),
        watchdog_timeout_s=_DEFAULT_TIMEOUT_S,
        description="global weighted vtime (or FIFO) queue",
    ),
    SchedulerDef(
        name="scx_qmap",
        binary="scx_qmap",
        ops="qmap",
        flags=_QMAP_FLAGS,
        watchdog_timeout_s=5.0,
        description="five-level FIFO queues, fault options",
    ),
    # One CPU schedules the others: it must not be the only one.
    SchedulerDef(
        name="scx_central",
        binary="scx_central",
        ops="central",
        flags=(_VERBOSE,),
        topology=TopologyConstraints(min_cpus=2),
        watchdog_timeout_s=_DEFAULT_TIMEOUT_S,
        description="central CPU makes every scheduling decision",
    ),
    SchedulerDef(
        name="scx_flatcg",
        binary="scx_flatcg",
        ops="flatcg",
        flags=(_FIFO, _VERBOSE),
        watchdog_timeout_s=_DEFAULT_TIMEOUT_S,
        description="flattened cgroup hierarchy, weighted vtime",
    ),
    # main() refuses an odd nr_cpu_ids ("scx_pair requires an even CPU count").
    SchedulerDef(
        name="scx_pair",
        binary="scx_pair",
        ops="pair",
        flags=(_VERBOSE,),
        topology=TopologyConstraints(min_cpus=2, cpus_multiple_of=2),
        watchdog_timeout_s=_DEFAULT_TIMEOUT_S,
        description="sibling CPU pairs run the same cgroup (core scheduling demo)",
    ),
    # Its task array is sized by pid_max; the help text asks to keep it small to avoid OOM.
    SchedulerDef(
        name="scx_userland",
        binary="scx_userland",
        ops="userland",
        flags=(_VERBOSE,),
        sysctls=(Sysctl("kernel.pid_max", "32768"),),
        watchdog_timeout_s=_DEFAULT_TIMEOUT_S,
        description="scheduling decisions made in user space",
    ),
    SchedulerDef(
        name="scx_sdt",
        binary="scx_sdt",
        ops="sdt",
        flags=(_VERBOSE,),
        watchdog_timeout_s=_DEFAULT_TIMEOUT_S,
        description="scx_simple on arena-based data structures",
    ),
    SchedulerDef(
        name="scx_cpu0",
        binary="scx_cpu0",
        ops="cpu0",
        flags=(_VERBOSE,),
        watchdog_timeout_s=_DEFAULT_TIMEOUT_S,
        description="every task on CPU 0",
    ),
)

#: The example schedulers by name, in build order.
EXAMPLES: dict[str, SchedulerDef] = {d.name: d for d in _DEFS}
EXAMPLE_NAMES: tuple[str, ...] = tuple(EXAMPLES)


def builtin(name: str) -> SchedulerDef | None:
    """The shipped definition called ``name`` (``eevdf`` included), or None."""
    if name.lower() == EEVDF.name:
        return EEVDF
    return EXAMPLES.get(name)


def builtin_names() -> tuple[str, ...]:
    """Every name ``--scheduler`` knows without a path."""
    return (EEVDF.name, *EXAMPLE_NAMES)
