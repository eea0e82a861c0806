"""What a worker reports: one map per worker, one segment per step it ran (a contract module).

The guest's workers build these maps (:mod:`guest.workmeter`), the RESULT frame carries them
(:data:`guest.wire.SCHEMAS` uses :data:`REPORT`), and the host judges them
(:mod:`verdicts.workers`). They are facts, never verdicts. Standard library and
:mod:`guest.schema` only.

A report::

    {"cgroup": "cg0", "pid": 123, "kind": "spin", "index": 0, "error": "",
     "work_units": 5120, "cpu_time_ns": 498000000, "max_gap_ms": 12.5,   # totals
     "segments": [SEGMENT, ...]}

A segment is the worker's figures over one step (``step`` is its index; a run without steps
has one segment, step 0). Times are ``CLOCK_BOOTTIME`` nanoseconds of the guest, as in the
scenario's step records, so segments of different workers compare directly. Inside a
scenario, the step record's segment (:data:`guest.scenario.record.SEGMENT`) is its envelope
plus these figures (:data:`FIGURES`, :func:`figures_of`):

``start_ns``, ``end_ns``, ``wall_time_ns``
    when the segment began and ended, and the difference.
``cpu_time_ns``, ``off_cpu_ns``
    the worker's CPU time in the segment (``CLOCK_PROCESS_CPUTIME_ID``) and
    ``wall - cpu`` (clamped at 0): the off-CPU share is ``off_cpu_ns / wall_time_ns``.
``work_units``, ``iterations``
    work units done (the work type defines one) and outer-loop iterations.
``migrations``, ``cpus``
    CPU changes seen between checkpoints, and every CPU the worker was seen on.
``max_gap_ns``, ``max_gap_cpu``, ``max_gap_at_ns``
    the longest time between two consecutive checkpoints outside voluntary waits, the CPU
    the worker was on when it began (-1: none seen) and when it began.
``wake`` (only when the work type wakes: pipes, futexes, timers, forks)
    ``n``, ``p50_ns``, ``p99_ns``, ``max_ns``, ``mean_ns``, ``cv`` (stddev / mean) of the
    latencies from a wake's cause (the waker's stamp, a timer's expiry, a fork) to the
    woken worker running.
``run_delay_ns``, ``timeslices``
    ``/proc/self/schedstat`` deltas: time spent runnable but waiting, and runs on a CPU.
``timeline``
    up to :data:`MAX_TIMELINE` points ``[t_us, cpu_us, units]`` since ``start_ns``, about
    evenly spaced: the host measures shares over a common window with it.
``numa_pages``, ``numa_pages_migrated``
    (multi-node guests) resident pages per node from ``/proc/self/numa_maps`` at the end of
    the segment, and the ``/proc/vmstat`` ``numa_pages_migrated`` delta (system-wide).
``extra``
    the work type's own metrics (a payload's exit code and parsed figures, a custom
    callable's map).
``cohort``, ``phase``, ``t0_ns``
    (inside a scenario) the workers started together with this one; ``setup`` while the
    step's ops were applied, ``hold`` once all took effect; the meter's own start where the
    step record's ``start_ns`` is the wrapper's.

>>> check_report({"cgroup": "cg0", "pid": 1, "work_units": 0, "cpu_time_ns": 0, "max_gap_ms": 0.0})
"""

from __future__ import annotations

import msgpack

from guest.schema import Int, ListOf, OneOf, Opt, Str, spec

TYPE_CHECKING = False  # typing costs ~0.4 s of guest startup under TCG
if TYPE_CHECKING:
    from typing import Any

__all__ = (
    "MAX_CPU",
    "MAX_SEGMENTS",
    "MAX_TIMELINE",
    "REPORT",
    "SEGMENT",
    "WAKE",
    "FIGURES",
    "check_report",
    "figures_of",
    "fit_reports",
    "off_cpu_share",
    "segments",
)

MAX_SEGMENTS = 64  #: steps one worker reports (later steps merge into the last)
MAX_TIMELINE = 32  #: timeline points per segment
MAX_CPU = 4095  #: highest CPU number a report may name
_MAX_EXTRA_STR = 16 * 1024

#: Wake-latency summary of one segment.
WAKE = {
    "n": Int(1),
    "p50_ns": Int(0),
    "p99_ns": Int(0),
    "max_ns": Int(0),
    "mean_ns": float,
    "cv": float,
}

#: One step's figures (see the module docstring).
SEGMENT = {
    "step": Int(0, 1 << 16),
    "start_ns": Int(0),
    "end_ns": Int(0),
    "wall_time_ns": Int(0),
    "cpu_time_ns": Int(0),
    "off_cpu_ns": Int(0),
    "work_units": Int(0),
    "iterations": Int(0),
    "migrations": Int(0),
    "cpus": ListOf(Int(0, MAX_CPU), MAX_CPU + 1),
    "max_gap_ns": Int(0),
    "max_gap_cpu": Int(-1, MAX_CPU),
    "max_gap_at_ns": Int(0),
    "wake": Opt(WAKE),
    "run_delay_ns": Opt(Int(0)),
    "timeslices": Opt(Int(0)),
    "timeline": Opt(ListOf(ListOf(Int(0), 3), MAX_TIMELINE)),
    "numa_pages": Opt({}),
    "numa_pages_migrated": Opt(Int(0)),
    "extra": Opt({}),
    "cohort": Opt(Str(200)),  # the workers started together (a scenario's definition or op)
    "phase": Opt(OneOf("setup", "hold")),  # a scenario step's ops being applied, or after
    "t0_ns": Opt(Int(0)),  # the meter's own start, the timeline's origin, where it differs
}

#: The segment's fields as the figures a scenario's step record adds to its own envelope
#: (all optional: a work type outside this package may report fewer).
FIGURES = {k: v if isinstance(v, Opt) else Opt(v) for k, v in SEGMENT.items()}
FIGURES["max_gap_ms"] = Opt(float)

#: One worker's report; the totals come first for readers that need no segments.
REPORT = {
    "cgroup": Str(256),
    "pid": Int(0),
    "kind": Opt(Str(64)),
    "index": Opt(Int(0, 1 << 20)),
    "work_units": Int(0),
    "cpu_time_ns": Int(0),
    "max_gap_ms": float,
    "error": Opt(Str(4096)),
    "native": Opt(OneOf(True, False)),
    "segments": Opt(ListOf(SEGMENT, MAX_SEGMENTS)),
}

_compiled: list[Any] = []


def check_report(report: Any) -> None:
    """Check one report against :data:`REPORT`.

    :raises guest.schema.SchemaError: the first violation, with its field path.
    """
    if not _compiled:
        _compiled.append(spec(REPORT))
    _compiled[0].check(report, 0)


def figures_of(report: dict[str, Any]) -> dict[str, Any]:
    """A one-segment report (a work type called for one step) as that step's figures, with
    ``max_gap_ms`` and the report's ``error``."""
    segs = report.get("segments") or [{}]
    out = dict(segs[-1])
    out["max_gap_ms"] = float(report.get("max_gap_ms", 0.0))
    if "start_ns" in out:
        out["t0_ns"] = out["start_ns"]  # the envelope keeps its own start_ns
    if report.get("error"):
        out["error"] = report["error"]
    return out


def segments(report: dict[str, Any]) -> list[dict[str, Any]]:
    """A checked report's segments (an old-style report without any: none)."""
    return list(report.get("segments") or ())


def off_cpu_share(seg: dict[str, Any]) -> float:
    """``off_cpu_ns / wall_time_ns`` of a segment (0.0 for an empty one)."""
    wall = seg["wall_time_ns"]
    return seg["off_cpu_ns"] / wall if wall > 0 else 0.0


def fit_reports(reports: list[dict[str, Any]], max_bytes: int) -> list[dict[str, Any]]:
    """``reports`` packed within ``max_bytes`` of msgpack: when they do not fit, segments lose
    their timelines, then their extras (the host then takes shares over whole segments)."""
    for drop in ((), ("timeline",), ("timeline", "extra")):
        out = [_without(r, drop) for r in reports] if drop else reports
        if len(msgpack.packb(out)) <= max_bytes:
            return out
    return [
        {k: v for k, v in _without(r, ("timeline", "extra")).items() if k != "segments"}
        for r in reports
    ]


def _without(report: dict[str, Any], keys: tuple[str, ...]) -> dict[str, Any]:
    segs = [{k: v for k, v in s.items() if k not in keys} for s in report.get("segments") or ()]
    return {**report, "segments": segs} if "segments" in report else dict(report)
