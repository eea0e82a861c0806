"""What the monitors' samples say: a stuck runqueue clock, or a monitor that could not judge.

A monitor that could not read the guest (too few samples, a vmlinux that does not match the
running kernel, a crash loop) makes the run inconclusive; only a CPU that had runnable
tasks while its ``rq_clock`` stood still is a stall. An idle CPU's clock may stand still
legitimately (NO_HZ stops the tick; nothing updates the clock of an empty runqueue).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

from schedlab_shared import run_layout
from schedlab_shared.monitor_schema import check_sample

from .verdict import Finding, Severity, Verdict, one_line

__all__ = (
    "MIN_SAMPLES",
    "ClockCheck",
    "MonitorReport",
    "check_rq_clocks",
    "load_monitor_samples",
    "monitor_findings",
)

MIN_SAMPLES = 2  # a clock can only be seen advancing between two samples
_MAX_LINE = 64 << 10  # a sample line longer than this is not one the monitor wrote


class ClockCheck(NamedTuple):
    """Result of :func:`check_rq_clocks`: PASSED, FAILED (a stall) or ERROR (cannot judge)."""

    verdict: Verdict
    reason: str


@dataclass
class MonitorReport:
    """What the orchestrator learnt about one monitor process besides its samples."""

    restarts: int = 0  # spawns after the first
    gave_up: bool = False  # supervisor stopped restarting it (FATAL)
    status: dict[str, Any] = field(default_factory=dict)  # last MonitorStatusReply fields
    last_log_line: str = ""


def load_monitor_samples(run_dir: Path) -> dict[str, list[dict[str, Any]]]:
    """Valid samples per monitor instance from its samples file.

    A torn last line, or a line that is not a sample (:func:`check_sample`), is skipped.
    """
    out: dict[str, list[dict[str, Any]]] = {}
    for name, path in run_layout.monitor_files(run_dir).items():
        samples = []
        with open(path, "rb") as f:
            for raw in f:
                if len(raw) > _MAX_LINE:
                    continue
                try:
                    samples.append(check_sample(json.loads(raw)))
                except ValueError:  # not JSON, or not a sample (SchemaError)
                    continue
        out[name] = samples
    return out


def check_rq_clocks(samples: list[dict[str, Any]], nr_cpus: int) -> ClockCheck:
    """Judge the runqueue clocks over the window from the first to the last sample.

    A CPU with ``nr_running > 0`` in some sample whose clock did not advance is stuck
    (FAILED). Too few samples, or a CPU missing from every sample, cannot be judged (ERROR).
    """
    if len(samples) < MIN_SAMPLES:
        return ClockCheck(
            Verdict.ERROR, f"monitor: {len(samples)} samples, need at least {MIN_SAMPLES}"
        )
    first: dict[int, int] = {}
    last: dict[int, int] = {}
    busy: set[int] = set()
    for s in samples:
        for c in s["cpus"]:
            cpu, clock = c["cpu"], c["rq_clock"]
            first.setdefault(cpu, clock)
            last[cpu] = clock
            if c["nr_running"] > 0:
                busy.add(cpu)
    window = f"{len(samples)} samples over {(samples[-1]['elapsed_ms'] - samples[0]['elapsed_ms']) / 1000:.1f} s"
    unseen = [cpu for cpu in range(nr_cpus) if cpu not in first]
    if unseen:
        return ClockCheck(
            Verdict.ERROR, f"monitor: CPU(s) {unseen} missing from every sample ({window})"
        )
    still = [cpu for cpu in range(nr_cpus) if last[cpu] <= first[cpu]]
    stuck = [cpu for cpu in still if cpu in busy]
    if stuck:
        return ClockCheck(
            Verdict.FAILED,
            f"monitor: rq_clock did not advance on CPU(s) {stuck} with runnable tasks ({window})",
        )
    idle = f"; idle CPU(s) {still} not judged" if still else ""
    return ClockCheck(
        Verdict.PASSED, f"monitor: rq_clock advanced on every busy CPU ({window}){idle}"
    )


def _no_sample_reason(name: str, rep: MonitorReport) -> str:
    st = rep.status
    if rep.gave_up:
        why = f"it was started {rep.restarts + 1} times, then given up"
        if rep.last_log_line:
            why += f" (last log line: {one_line(rep.last_log_line, 160)})"
    elif st.get("errors"):
        why = (
            f"{st['errors']} reads of guest memory failed, last: {one_line(st.get('last_error', ''), 160)}; "
            "does the vmlinux match the running kernel?"
        )
    elif rep.restarts:
        why = f"it restarted {rep.restarts} time(s)"
    else:
        why = f"state {st.get('state', 'unknown')}"
    return f"monitor {name}: no valid sample; {why}"


def monitor_findings(
    samples: dict[str, list[dict[str, Any]]],
    reports: dict[str, MonitorReport],
    nr_cpus: int,
    primary: str = "monitor",
) -> tuple[ClockCheck, list[Finding], list[str]]:
    """Judge the monitors: the primary's clock check, findings, and notes (restart counts).

    :param samples: valid samples per monitor name (:func:`load_monitor_samples`).
    :param reports: per requested monitor (a name absent here but present in ``samples``
        counts as requested too).
    :return: ``(clock check of the primary, findings, notes)``.
    """
    findings: list[Finding] = []
    notes: list[str] = []
    names = sorted(set(reports) | set(samples), key=lambda n: (n != primary, n))
    empty: set[str] = set()
    for name in names:
        rep = reports.get(name, MonitorReport())
        if rep.restarts:
            notes.append(
                f"monitor {name} restarted {rep.restarts} time(s)"
                + (", then gave up" if rep.gave_up else "")
            )
        if not samples.get(name):
            empty.add(name)
            findings.append(Finding(Severity.INCONCLUSIVE, _no_sample_reason(name, rep)))
    check = check_rq_clocks(samples.get(primary, []), nr_cpus)
    if check.verdict is Verdict.FAILED:
        findings.append(Finding(Severity.FAILED, check.reason))
    elif check.verdict is Verdict.ERROR and primary not in empty:
        findings.append(Finding(Severity.INCONCLUSIVE, check.reason))
    return check, findings, notes
