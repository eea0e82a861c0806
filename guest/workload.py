"""The ``cgroup-spinners`` scenario: W CPU-spinning workers in each of N cgroups.

Workers are forked by the worker parent (:class:`~guest.worker_pool.WorkerPool`), moved into
their cgroup while they wait at its start gate, then started together; each spins on a fixed
unit of arithmetic (:func:`guest.worktypes.spin`) for ``duration`` seconds and reports one
:class:`~guest.verdict.WorkerReport` map. A stalled or starved worker shows as few work units
and a long gap between consecutive checkpoints.

The init side never trusts a worker to finish: it waits for the reports against a deadline,
has the workers sent SIGTERM on a stop request (they then report what they did so far),
SIGKILLs stragglers, waits for every worker to be reaped, and removes the cgroups.
"""

from __future__ import annotations

import signal
import threading
import time
from collections import namedtuple

from guest.cgroups import CgroupTree
from guest.spec import RunSpec
from guest.verdict import Verdict, WorkerReport, judge
from guest.worker_pool import WorkerError, WorkerPool

TYPE_CHECKING = False  # typing and dataclasses cost ~1.5 s of guest startup under TCG
if TYPE_CHECKING:
    from typing import Any

__all__ = ("KIND", "SpinnerOutcome", "run_cgroup_spinners")

KIND = "spin"  # the work type (guest.worktypes.KINDS)
_POLL_S = 0.05
_KILL_WAIT_S = 5.0


class SpinnerOutcome(namedtuple("SpinnerOutcome", "verdict reports stopped cleanup_errors")):
    """Result of :func:`run_cgroup_spinners`.

    :param verdict: the :class:`~guest.verdict.Verdict`.
    :param reports: one :class:`~guest.verdict.WorkerReport` per worker.
    :param stopped: a stop request cut the run short.
    :param cleanup_errors: cgroup directories that could not be removed.
    """

    __slots__ = ()
    verdict: Verdict
    reports: list[WorkerReport]
    stopped: bool
    cleanup_errors: list[str]


def _report(ev: dict[str, Any], cgroup: str) -> WorkerReport:
    """A worker's ``ended`` event as its report; an error report when it brought none."""
    pid = ev["pid"]
    rep, err = ev.get("report"), str(ev.get("error", ""))
    if isinstance(rep, dict):
        try:
            r = WorkerReport.from_map(rep)
        except ValueError as e:
            return WorkerReport(cgroup, pid, 0, 0, 0.0, f"bad report: {e}")
        return r._replace(error=err) if err and not r.error else r
    return WorkerReport(cgroup, pid, 0, 0, 0.0, f"{err or 'no report'} ({ev.get('exit', '?')})")


def _collect(
    pool: WorkerPool,
    pending: dict[int, str],
    reports: list[WorkerReport],
    deadline: float,
    stop: threading.Event,
) -> bool:
    """Take reports until none is pending or the deadline; SIGTERM all once on stop."""
    stopped = False
    while pending and time.monotonic() < deadline:
        if stop.is_set() and not stopped:
            stopped = True
            pool.signal(signal.SIGTERM)
        for ev in pool.wait_ended(_POLL_S):
            cg = pending.pop(ev["pid"], None)
            if cg is not None:
                reports.append(_report(ev, cg))
    return stopped


def _kill_rest(pool: WorkerPool, pending: dict[int, str], reports: list[WorkerReport]) -> None:
    """SIGKILL the workers still pending and take their (report-less) ends, bounded."""
    try:
        pool.signal(signal.SIGKILL)
        _collect(pool, pending, reports, time.monotonic() + _KILL_WAIT_S, threading.Event())
    except WorkerError as e:  # the parent is gone: its workers died with it (PDEATHSIG)
        for pid, cg in pending.items():
            reports.append(WorkerReport(cg, pid, 0, 0, 0.0, f"no report ({e})"))
        pending.clear()


def run_cgroup_spinners(
    spec: RunSpec,
    tree: CgroupTree,
    pool: WorkerPool,
    stop: threading.Event | None = None,
    grace_s: float | None = None,
) -> SpinnerOutcome:
    """Run the scenario and judge it.

    :param spec: the run spec (cgroups, workers, duration, thresholds).
    :param tree: where to create the cgroups.
    :param pool: the worker parent that forks the workers.
    :param stop: set to stop the workers early (they report partial work).
    :param grace_s: time allowed beyond ``duration`` before workers are killed;
        default ``max(5, duration)`` (TCG is slow).
    :raises CgroupError: cgroup setup failed (workers killed, cgroups removed first).
    :raises WorkerError: the worker parent failed (cgroups removed first).
    """
    stop = stop or threading.Event()
    grace = max(5.0, spec.duration) if grace_s is None else grace_s
    pending: dict[int, str] = {}  # pid -> cgroup of the workers not ended yet
    reports: list[WorkerReport] = []
    names: list[str] = []
    try:
        names = tree.create(spec.cgroups)
        for cg in names:
            for _ in range(spec.workers):
                pid = pool.spawn(KIND, {"cgroup": cg, "duration_s": spec.duration})
                pending[pid] = cg
                tree.move(cg, pid)  # it waits at the start gate until every worker is placed
        pool.start()
        stopped = _collect(pool, pending, reports, time.monotonic() + spec.duration + grace, stop)
    finally:
        if pending:
            _kill_rest(pool, pending, reports)
        cleanup = tree.remove()
    expected = {n: spec.workers for n in names}
    verdict = judge(reports, expected, spec.fairness, spec.max_gap_ms)
    return SpinnerOutcome(verdict, reports, stopped, cleanup)
