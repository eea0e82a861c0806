"""What a scenario run reports per step (a contract: the RESULT frame's ``steps`` and
``backdrop``, checked by the collector on read, copied into ``result.json`` by the host).

A step record::

    {"index": 1, "name": "disjoint", "hold": {"kind": "frac", "value": 0.5},
     "started_ns": ..., "hold_ns": ..., "ended_ns": ...,   # CLOCK_BOOTTIME: before its ops,
                                                            # when the hold began, its end
     "loops": 0,                                            # extra passes of a loop step
     "sync_ns": ..., "late": 0,      # waiting for the workers to close their segments at
                                     # the step's start and hold, and how many did not in time
     "ops": [OP, ...], "workers": [SEGMENT, ...], "dropped": 0}
    OP      = {"op": "set_cpuset", "target": "cg_0", "started_ns": ..., "effect_ns": ...,
               "ok": True, "error": "", "detail": {"cpus": [0], "effective": [0]}}
    SEGMENT = {"pid", "cgroup", "cohort", "work", "step", "phase", "start_ns", "end_ns", "wall_ns",
               "cpu_ns", "run_delay_ns", "timeslices", "migrations", "nvcsw", "nivcsw",
               "allowed", "policy", "nice", "seen_cgroup",   # the kernel's view at its end
               + what the work type measured: work_units, max_gap_ms, max_gap_at_ns, cpus, ...}

``effect_ns`` is when the op had taken effect: its writes returned and, where the kernel
shows it, the result was read back (``cpuset.cpus.effective``, the affinity mask, the
cgroup's ``cgroup.procs``). A worker reports up to two segments per step it ran in:
``setup`` (while the step's ops and cgroups were applied; step 0's also holds the
backdrop's) and ``hold``, which begins once all of them took effect, so it shows the step's
steady state. ``cgroup`` is where the worker was at the step's end; ``cohort`` names the
definition or spawn op that made it (workers of one cohort start together and run alike).
The backdrop's record
has ``started_ns``, ``ops`` and ``dropped``. ``dropped`` counts records left out to keep
the frame within its bounds.
"""

from __future__ import annotations

from guest.scenario.document import HOLD_KINDS, MAX_STEPS, OPS
from guest.schema import Int, ListOf, OneOf, Opt, Str, spec
from guest.workreport import FIGURES

TYPE_CHECKING = False  # typing costs ~0.4 s of guest startup under TCG
if TYPE_CHECKING:
    from typing import Any

__all__ = (
    "BACKDROP",
    "MAX_STEPS",
    "MAX_OP_RECORDS",
    "MAX_SEGMENTS",
    "OP",
    "SEGMENT",
    "STEP",
    "check_backdrop",
    "check_segment",
    "check_steps",
    "off_cpu_share",
)

MAX_OP_RECORDS = 256  # per step (a loop step repeats its ops)
MAX_SEGMENTS = 2048  # in all steps and phases: a RESULT payload holds at most 8192 maps and lists
_NS = Int(0)

_ENVELOPE = (
    "pid", "cgroup", "cohort", "work", "step", "phase", "start_ns", "end_ns", "wall_ns", "cpu_ns",
    "run_delay_ns", "timeslices", "migrations", "nvcsw", "nivcsw", "allowed", "policy", "nice",
    "seen_cgroup",
)  # fmt: skip
#: One worker's figures over one step. Work types may add fields (JSON values).
SEGMENT = {
    "pid": Int(0),
    "cgroup": Str(160),
    "cohort": Str(200),
    "work": Str(64),
    "step": Int(0, MAX_STEPS - 1),
    "phase": OneOf("setup", "hold"),
    "start_ns": _NS,
    "end_ns": _NS,
    "wall_ns": _NS,
    "cpu_ns": _NS,
    "run_delay_ns": _NS,
    "timeslices": _NS,
    "migrations": _NS,
    "nvcsw": _NS,
    "nivcsw": _NS,
    "allowed": Opt(ListOf(Int(0, 4095), 64)),
    "policy": Opt(Int(0, 64)),
    "nice": Opt(Int(-20, 19)),
    "seen_cgroup": Opt(Str(256)),
    # + what the work type measured: guest.workreport's figures
    **{k: v for k, v in FIGURES.items() if k not in _ENVELOPE},
}
#: One op as it ran.
OP = {
    "op": OneOf(*OPS),
    "target": Str(200),
    "started_ns": _NS,
    "effect_ns": _NS,
    "ok": bool,
    "error": Str(1024),
    "detail": Opt(dict),
}
STEP = {
    "index": Int(0, MAX_STEPS - 1),
    "name": Str(64),
    "hold": {"kind": OneOf(*HOLD_KINDS), "value": float},
    "started_ns": _NS,
    "hold_ns": _NS,
    "ended_ns": _NS,
    "loops": _NS,
    "ops": ListOf(OP, MAX_OP_RECORDS),
    "workers": ListOf(SEGMENT, MAX_SEGMENTS),
    "dropped": _NS,
    "sync_ns": Opt(_NS),
    "late": Opt(_NS),
}
BACKDROP = {"started_ns": _NS, "ops": ListOf(OP, MAX_OP_RECORDS), "dropped": _NS}

_STEPS = spec(ListOf(STEP, MAX_STEPS))
_SEGMENT = spec(SEGMENT)
_BACKDROP = spec(BACKDROP)


def check_steps(value: Any) -> list[dict[str, Any]]:
    """The host's check of a RESULT's ``steps`` (what the collector already let through).

    :raises guest.schema.SchemaError: the first bad field (``[1].ops[0].effect_ns``).
    """
    _STEPS.check(value, 0)
    return list(value)


def check_segment(value: Any) -> None:
    """The guest's check of one segment before it goes into a RESULT (a work type's bug
    must not cost the frame).

    :raises guest.schema.SchemaError: the first bad field.
    """
    _SEGMENT.check(value, 0)


def check_backdrop(value: Any) -> dict[str, Any]:
    """The host's check of a RESULT's ``backdrop``.

    :raises guest.schema.SchemaError: the first bad field.
    """
    _BACKDROP.check(value, 0)
    return dict(value)


def off_cpu_share(seg: dict[str, Any]) -> float:
    """The fraction of its wall time a worker spent off the CPU in a segment (0..1)."""
    wall = seg["wall_ns"]
    return 0.0 if wall <= 0 else max(0.0, min(1.0, 1.0 - seg["cpu_ns"] / wall))
