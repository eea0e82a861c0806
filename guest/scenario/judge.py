"""A scenario's end: each worker's report, its per-step segments into the step records, and
the guest's verdict over them.

The verdict keeps the checks of the cgroup-spinners verdict (:mod:`guest.verdict`), over
*cohorts* (the workers one definition or spawn op made: same start, same placement, so
their CPU times compare), plus ``ops``: every op took effect. Cohorts whose workers run on
different CPUs by design (``single_cpu``, ``llc_aligned``, ``random_subset`` affinities, or
an affinity op) are left out of the fairness check.
"""

from __future__ import annotations

from guest.scenario import record
from guest.schema import SchemaError
from guest.verdict import Check, Verdict, WorkerReport, judge

TYPE_CHECKING = False  # typing costs ~0.4 s of guest startup under TCG
if TYPE_CHECKING:
    from typing import Any

    from guest.scenario.apply import Tracked
    from guest.scenario.runner import Runner

__all__ = ("collect_reports", "judge_scenario")


def _report(ev: dict[str, Any] | None, t: Tracked) -> WorkerReport:
    """A worker's end as its report; an error report when it brought none."""
    if ev is None:
        return WorkerReport(t.home, t.pid, 0, 0, 0.0, "never ended")
    rep, err = ev.get("report"), str(ev.get("error", ""))
    if isinstance(rep, dict):
        try:
            r = WorkerReport.from_map(rep)
        except ValueError as e:
            return WorkerReport(t.home, t.pid, 0, 0, 0.0, f"bad report: {e}")
        return r._replace(cgroup=t.home, error=r.error or err)
    return WorkerReport(t.home, t.pid, 0, 0, 0.0, f"{err or 'no report'} ({ev.get('exit', '?')})")


def _segments(runner: Runner, t: Tracked, rep: Any, budget: list[int]) -> None:
    segs = rep.get("segments") if isinstance(rep, dict) else None
    if not isinstance(segs, list):
        return
    for seg in segs[: record.MAX_SEGMENTS]:
        step = seg.get("step") if isinstance(seg, dict) else None
        if not isinstance(step, int) or not 0 <= step < len(runner.steps):
            continue
        rec = runner.steps[step]
        out = dict(seg, pid=t.pid, cgroup=t.where.get(step, t.cgroup), cohort=t.cohort)
        out["work"] = str(rep.get("work", ""))[:64]
        try:
            record.check_segment(out)
        except SchemaError:
            rec["dropped"] += 1
            continue
        if budget[0] <= 0:
            rec["dropped"] += 1
            continue
        budget[0] -= 1
        rec["workers"].append(out)


def collect_reports(runner: Runner) -> list[WorkerReport]:
    """Every worker's report (payloads excluded), its segments put into the step records."""
    reports = []
    budget = [record.MAX_SEGMENTS]
    for t in runner.tracked.values():
        if t.payload is not None:
            continue
        ev = runner.ended.get(t.pid)
        reports.append(_report(ev, t))
        if ev is not None:
            _segments(runner, t, ev.get("report"), budget)
    return reports


def judge_scenario(
    runner: Runner, reports: list[WorkerReport], fairness: float, max_gap_ms: float
) -> Verdict:
    """The guest's verdict over cohorts (see the module docstring)."""
    workers = [t for t in runner.tracked.values() if t.payload is None]
    by_pid = {t.pid: t.cohort for t in workers}
    labelled = [r._replace(cgroup=by_pid.get(r.pid, r.cgroup)) for r in reports]
    expected: dict[str, int] = {}
    for t in workers:
        expected[t.cohort] = expected.get(t.cohort, 0) + 1
    base = judge(labelled, expected, fairness, max_gap_ms)
    fair_set = set(expected) - runner._fairness_exempt
    fair = judge(
        [r for r in labelled if r.cgroup in fair_set], {c: expected[c] for c in fair_set}, fairness
    )
    checks = [c for c in base.checks if c.name != "fairness"]
    fairness_check = next(c for c in fair.checks if c.name == "fairness")
    if not fair_set:
        fairness_check = Check(
            "fairness", True, "no cohort to compare (affinities differ by design)"
        )
    elif runner._fairness_exempt & set(expected):
        skipped = ", ".join(sorted(runner._fairness_exempt & set(expected)))
        fairness_check = fairness_check._replace(
            detail=f"{fairness_check.detail} (not compared: {skipped})"
        )
    checks.insert(2, fairness_check)
    done = runner._ops_done
    checks.append(
        Check("ops", not runner.failed, runner.failed or f"{done} ops and setups took effect")
    )
    failed = [c for c in checks if not c.passed]
    reason = "; ".join(f"{c.name}: {c.detail}" for c in failed) or "all checks passed"
    return Verdict(not failed, reason, checks, base.cgroups)
