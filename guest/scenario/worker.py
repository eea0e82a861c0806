"""The worker side of a scenario: one wrapper around every work type (kind ``scenario``).

The runner spawns kind ``scenario`` with these args: ``cgroup`` (where it was placed),
``work`` (``{"type", "params"}``), ``mempolicy``, ``step_file`` and ``slot`` (the
:class:`~guest.scenario.stepclock.StepClock` and its slot there), ``bound_s`` (a worker ends by itself after
that long, whatever happens to the runner). The wrapper applies the memory policy, then calls
the work type's function (:data:`guest.worktypes.KINDS`, under the type's name) once per step
phase (:mod:`guest.scenario.stepclock`: setup, then hold): its ``stopped()`` turns true when
the host stops the worker *or* the phase changes, and what it returns becomes that phase's
segment, with the kernel's own figures added (:func:`kernel_figures`, :func:`snapshot`).

So a work type stays simple: ``fn(args, stopped) -> figures`` runs until ``stopped()`` and
reports what it did since it was called (``work_units``, ``max_gap_ms``, ``max_gap_at_ns``,
``cpus``, ...; :data:`guest.scenario.record.SEGMENT` lists the known ones). ``args`` holds
the type's params, ``cgroup``, ``duration_s`` (the bound left) and ``state``, a map that
survives from one step's call to the next (pipes, partners, buffers).
"""

from __future__ import annotations

import os
import resource
import time

from guest.cgroups import BASE_NAME
from guest.scenario.placement import set_mempolicy
from guest.scenario.stepclock import StepReader, phase_of
from guest.workreport import figures_of

TYPE_CHECKING = False  # typing costs ~0.4 s of guest startup under TCG
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

    Kind = Callable[[dict[str, Any], Callable[[], bool]], dict[str, Any]]

__all__ = ("ENVELOPE", "KIND", "exec_payload", "kernel_figures", "run", "snapshot")

KIND = "scenario"
#: Report fields of the whole worker (each segment has its own figures).
ENVELOPE = ("cgroup", "pid", "work", "work_units", "cpu_time_ns", "max_gap_ms", "error", "segments")
_MAX_SEGMENTS = 128  # a setup and a hold phase for each of guest.scenario.document.MAX_STEPS
_CLOCK = time.CLOCK_BOOTTIME


def _boot_ns() -> int:
    return time.clock_gettime_ns(_CLOCK)


def kernel_figures() -> dict[str, int]:
    """What the kernel counts for this process: on-CPU and run-queue wait time and
    timeslices (``/proc/self/schedstat``), migrations (``/proc/self/sched``), context switches."""
    out = {"cpu_ns": 0, "run_delay_ns": 0, "timeslices": 0, "migrations": 0}
    try:
        with open("/proc/self/schedstat") as f:
            on, wait, slices = (int(x) for x in f.read().split()[:3])
        out.update(cpu_ns=on, run_delay_ns=wait, timeslices=slices)
    except (OSError, ValueError):
        out["cpu_ns"] = time.process_time_ns()
    try:
        with open("/proc/self/sched") as f:
            for line in f:
                if line.startswith("se.nr_migrations"):
                    out["migrations"] = int(line.rsplit(":", 1)[1])
                    break
    except (OSError, ValueError, IndexError):
        pass
    ru = resource.getrusage(resource.RUSAGE_SELF)
    out["nvcsw"], out["nivcsw"] = ru.ru_nvcsw, ru.ru_nivcsw
    return out


def snapshot() -> dict[str, Any]:
    """How the kernel has this process placed at a segment's end: its CPU mask (``allowed``),
    scheduling ``policy`` number, ``nice``, and cgroup (``seen_cgroup``, below the run's base)."""
    out: dict[str, Any] = {
        "allowed": sorted(os.sched_getaffinity(0))[:64],
        "policy": os.sched_getscheduler(0),
        "nice": os.getpriority(os.PRIO_PROCESS, 0),
    }
    try:
        with open("/proc/self/cgroup") as f:
            line = f.read(4096).strip().splitlines()[0]
        path = line.split("::", 1)[1] if "::" in line else line
        out["seen_cgroup"] = path.removeprefix("/" + BASE_NAME).lstrip("/")[:200]
    except (OSError, IndexError):
        pass
    return out


def _segment(
    value: int, t0: int, t1: int, k0: dict[str, int], k1: dict[str, int], figures: Any
) -> dict[str, Any]:
    step, phase = phase_of(value)
    seg: dict[str, Any] = {"step": step, "phase": phase, "start_ns": t0, "end_ns": t1}
    seg["wall_ns"] = t1 - t0
    for key in k0:
        seg[key] = max(0, k1[key] - k0[key])
    seg.update(snapshot())
    if isinstance(figures, dict):
        for key, v in figures.items():
            if key not in seg and key not in ("cgroup", "pid", "error", "cpu_time_ns"):
                seg[key] = v
    return seg


def run(
    args: dict[str, Any], stopped: Callable[[], bool], kinds: dict[str, Kind]
) -> dict[str, Any]:
    """The ``scenario`` kind: see the module docstring. Returns the worker's report."""
    work = args["work"]
    fn = kinds[work["type"]]
    report: dict[str, Any] = {
        "cgroup": args["cgroup"],
        "pid": os.getpid(),
        "work": work["type"],
        "error": "",
        "segments": [],
    }
    end = time.monotonic() + float(args["bound_s"])
    try:
        set_mempolicy(args["mempolicy"])
        clock = StepReader(args["step_file"], args["slot"])
        state: dict[str, Any] = {}
        while not stopped() and len(report["segments"]) < _MAX_SEGMENTS:
            value = clock.read()  # step and phase (stepclock.phase_of)
            clock.ack(value)  # the previous segment is closed: the runner may go on
            left = end - time.monotonic()
            if left <= 0:
                break
            fn_args = dict(work["params"], cgroup=args["cgroup"], duration_s=left, state=state)
            # The native loops watch the counter themselves (a short setup phase is not
            # missed); a grouped type finds its rank and its group's shared state.
            fn_args.update(watch=(clock.buffer, value), index=args.get("index", 0))
            fn_args["on_begin"] = lambda value=value: clock.began(value)  # type: ignore[misc]
            if "_group" in args:
                fn_args["_group"] = args["_group"]
            t0, k0 = _boot_ns(), kernel_figures()
            figures = fn(fn_args, lambda value=value: stopped() or clock.read() != value)  # type: ignore[misc]
            if isinstance(figures, dict) and "segments" in figures:  # a guest.workreport REPORT
                figures = figures_of(figures)
            report["segments"].append(
                _segment(value, t0, _boot_ns(), k0, kernel_figures(), figures)
            )
            if isinstance(figures, dict) and figures.get("error"):
                report["error"] = str(figures["error"])[:1024]
                break
    except Exception as e:  # the report must go out with what was done
        report["error"] = f"{type(e).__name__}: {e}"[:1024]
    segs = report["segments"]
    report["work_units"] = sum(int(s.get("work_units", 0)) for s in segs)
    report["cpu_time_ns"] = sum(s["cpu_ns"] for s in segs)
    report["max_gap_ms"] = max((float(s.get("max_gap_ms", 0.0)) for s in segs), default=0.0)
    return report


def exec_payload(args: dict[str, Any], stopped: Callable[[], bool]) -> dict[str, Any]:
    """Kind ``exec``: become program ``path`` with ``args``, output to ``out`` (a payload).

    Runs after the start gate, so the runner placed it (cgroup, policy) first; the report
    pipe is close-on-exec, so the parent sees the exit status and no report.
    """
    fd = os.open(args["out"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    os.close(fd)
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    os.close(null)
    os.execv(args["path"], [args["path"], *args["args"]])
