"""Play a scenario document in the guest: backdrop, steps, holds, ops, then the records.

The order is the document's contract (:mod:`guest.scenario.document`): the backdrop's ops,
its cgroups (their workers started together); then per step: the step counter moves on
(workers cut their reports there), its ops run (each op's workers start when it is done),
its cgroups are made and started together, it holds (a loop step re-applies its ops), and
what it started is stopped and removed. Every op, and every cgroup a step or the backdrop
sets up, leaves an op record with its start and effect times (CLOCK_BOOTTIME ns).

An op that fails ends the scenario (the rest is skipped, the verdict names the op): a
kernel or scheduler that refuses a cgroup move is a finding, not noise. The runner never
trusts a worker to end: stops are SIGTERM, then SIGKILL, each bounded, and everything left
is stopped and its cgroup removed on the way out, whatever happened.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from collections import namedtuple

from guest.scenario import record
from guest.scenario.apply import OpError, Ops
from guest.scenario.cgroupfs import CgroupError, Cgroups
from guest.scenario.document import planned_s
from guest.scenario.judge import collect_reports, judge_scenario
from guest.scenario.placement import Rng
from guest.scenario.stepclock import SLOTS, StepClock
from guest.worker_pool import WorkerError

TYPE_CHECKING = False  # typing costs ~0.4 s of guest startup under TCG
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

    from guest.worker_pool import WorkerPool

__all__ = ("BACKDROP", "WORK_DIR", "Runner", "ScenarioOutcome", "planned_s", "run_scenario")

BACKDROP = -1  #: the owner of what the backdrop sets up
WORK_DIR = "/run/schedlab/scenario"  #: the step counter and payload outputs
_POLL_S = 0.05
_STOP_WAIT_S = 5.0  # SIGTERM -> report; a worker checks its stop flag every work unit
_KILL_WAIT_S = 5.0
_BOUND_GRACE_S = 60.0  # a worker ends by itself this long after the planned end
_SYNC_S = 2.0  # for every worker to see a new step; a starved one may take long under TCG
#: For every worker's hold meter to begin: under a slow guest a worker's way from the new
#: step to its loop took 4-5 s (scx_simple, nested KVM); a starved one is let go after this.
_BEGIN_S = 10.0

ScenarioOutcome = namedtuple(
    "ScenarioOutcome",
    "verdict reports steps backdrop stopped failed cleanup_errors setup_error fairness_exempt",
    defaults=("", ()),
)
ScenarioOutcome.__doc__ = """What :func:`run_scenario` returns: the guest's ``verdict``
(:class:`guest.verdict.Verdict`), one :class:`~guest.verdict.WorkerReport` per worker,
the step records and the backdrop's (:mod:`guest.scenario.record`), whether a stop request
cut it short, the first failed op ("" if none), cgroup directories left behind, and the
first cgroup error ("" if none): the harness could not set the scenario up, so the run
cannot judge the scheduler (the guest exits SETUP_FAILED, not TEST_FAILED), and the
cohorts whose workers run on different CPUs by design (the host compares no shares there)."""


def _boot_ns() -> int:
    return time.clock_gettime_ns(time.CLOCK_BOOTTIME)


class Runner(Ops):
    """One scenario run (see the module docstring).

    :param plan: a validated scenario document.
    :param cgroups: where its cgroups go (a temp tree in tests).
    :param pool: the worker parent's handle.
    :param stop: set it to stop early: workers report what they did so far.
    :param work_dir: the step counter file and payload outputs (tmpfs in the guest).
    :param fairness: the verdict's largest CPU-time spread within a cohort.
    :param max_gap_ms: the verdict's longest allowed checkpoint gap (0: no check).
    """

    def __init__(
        self,
        plan: dict[str, Any],
        cgroups: Cgroups,
        pool: WorkerPool,
        stop: threading.Event | None = None,
        work_dir: str = WORK_DIR,
        now: Callable[[], int] = _boot_ns,
        fairness: float = 0.35,
        max_gap_ms: float = 0.0,
    ) -> None:
        self.plan, self.cgroups, self.pool = plan, cgroups, pool
        self.fairness, self.max_gap_ms = fairness, max_gap_ms
        self.reports: list[Any] = []
        self.stop = stop or threading.Event()
        self.work_dir, self.now = work_dir, now
        self.step_file = os.path.join(work_dir, "step")
        self.rng = Rng(plan["seed"])
        self.tracked: dict[int, Any] = {}
        self.ended: dict[int, dict[str, Any]] = {}
        self.live_cgroups: dict[str, list[Any]] = {}
        self.payloads: dict[str, int] = {}
        self.bound_s = planned_s(plan) + max(5.0, plan["duration_s"]) + _BOUND_GRACE_S
        self._cohorts: set[str] = set()
        self._fairness_exempt: set[str] = set()
        self.steps: list[dict[str, Any]] = []
        self.backdrop: dict[str, Any] = {"started_ns": 0, "ops": [], "dropped": 0}
        self.failed = ""
        self.setup_error = ""
        self.stopped = False
        self.cleanup_errors: list[str] = []
        self._current = self.backdrop
        self._ops_done = 0
        self._free_slots = list(range(SLOTS - 1, -1, -1))

    # -- the run -------------------------------------------------------------------------

    def run(self) -> ScenarioOutcome:
        """Play the whole plan; everything it started is gone when this returns.

        :raises CgroupError: the base cgroup or its controllers could not be set up.
        :raises WorkerError: the worker parent is gone (after the cleanup).
        """
        self.cgroups.setup()
        clock = StepClock(self.step_file)
        self._clock = clock
        try:
            self.backdrop["started_ns"] = self.now()
            self._scope(BACKDROP, self.plan["backdrop"])
            t0 = time.monotonic()
            for i, step in enumerate(self.plan["steps"]):
                if self.failed or self._stopping():
                    break
                self._step(i, step, t0)
        finally:
            self._finish()
            clock.close()
        self.reports = collect_reports(self)
        verdict = judge_scenario(self, self.reports, self.fairness, self.max_gap_ms)
        return ScenarioOutcome(
            verdict,
            self.reports,
            self.steps,
            self.backdrop,
            self.stopped,
            self.failed,
            self.cleanup_errors,
            self.setup_error,
            tuple(sorted(self._fairness_exempt)),
        )

    def _stopping(self) -> bool:
        if self.stop.is_set():
            self.stopped = True
        return self.stopped

    def _scope(self, owner: int, scope: dict[str, Any]) -> None:
        """A scope's ops, then its cgroups (started together)."""
        where = "backdrop" if owner == BACKDROP else f"step {owner}"
        for j, op in enumerate(scope["ops"]):
            if self.failed:
                return
            self._op(op, owner, f"{where} op {j}")
        started = False
        for cg in scope["cgroups"]:
            if self.failed:
                break
            detail = self._record(
                "add_cgroup",
                cg["name"],
                lambda cg=cg: dict(self.create(cg, owner), setup=True),  # type: ignore[misc]
                where,
            )
            started = started or bool(detail.get("pids"))
        if started:
            self.start()

    def _step(self, i: int, step: dict[str, Any], t0: float) -> None:
        rec: dict[str, Any] = {
            "index": i,
            "name": step["name"],
            "hold": dict(step["hold"]),
            "started_ns": self.now(),  # before the counter moves: no segment starts earlier
            "hold_ns": 0,
            "ended_ns": 0,
            "loops": 0,
            "ops": [],
            "workers": [],
            "dropped": 0,
            "sync_ns": 0,
            "late": 0,
        }
        self.steps.append(rec)
        self._current = rec
        if i:  # workers cut a segment here (step 0's setup began with the backdrop's)
            self._move_clock(i, False, rec)
        self._scope(i, step)
        rec["hold_ns"] = self.now()  # before the counter moves: no hold segment starts earlier
        self._move_clock(i, True, rec)  # every op of the step took effect: its steady state
        self._await_meters(rec)  # the hold's time is the workers' time at work
        hold, d = step["hold"], self.plan["duration_s"]
        if hold["kind"] == "loop":
            self._loop(i, step, t0 + d, hold["value"])
        elif not self.failed:
            secs = hold["value"] * d if hold["kind"] == "frac" else hold["value"]
            self._wait_until(time.monotonic() + secs)
        self._end_step(i)
        rec["ended_ns"] = self.now()

    def _move_clock(self, i: int, hold: bool, rec: dict[str, Any]) -> None:
        """Move the step counter on and wait until every running worker closed its segment,
        so the next op cannot land in it (bounded: a worker may be starved; it is counted)."""
        t0 = self.now()
        self._clock.set(i, hold)
        late = self._clock.wait(self._running_slots, _SYNC_S, self._poll)
        rec["sync_ns"] += self.now() - t0
        rec["late"] += len(late)

    def _await_meters(self, rec: dict[str, Any]) -> None:
        """Wait (bounded: a starved worker must not hold the run) until every running worker
        began measuring the hold; counted in the step's ``sync_ns`` and ``late``."""
        t0 = self.now()
        late = self._clock.wait(self._running_slots, _BEGIN_S, self._poll, began=True)
        rec["sync_ns"] += self.now() - t0
        rec["late"] += len(late)

    def _running_slots(self) -> list[int]:
        return [
            t.slot
            for t in self.tracked.values()
            if t.payload is None and t.started and self.alive(t.pid)
        ]

    def _new_slot(self) -> int:
        if not self._free_slots:
            raise OpError(f"more than {SLOTS} workers at once")
        slot = self._free_slots.pop()
        self._clock.clear(slot)
        return slot

    def _loop(self, i: int, step: dict[str, Any], end: float, interval: float) -> None:
        nxt = time.monotonic() + interval
        while not self.failed and not self._stopping():
            self._wait_until(min(nxt, end))
            if time.monotonic() >= end or self.failed or self.stopped:
                return
            self._current["loops"] += 1
            for j, op in enumerate(step["ops"]):
                self._op(op, i, f"step {i} loop {self._current['loops']} op {j}")
            nxt = max(nxt + interval, time.monotonic())

    def _wait_until(self, deadline: float) -> None:
        while not self._stopping():
            left = deadline - time.monotonic()
            if left <= 0:
                return
            self._poll(min(_POLL_S, left))

    def _end_step(self, i: int) -> None:
        """Stop what step ``i`` started, remove its cgroups, note where workers are."""
        for t in self.tracked.values():
            if self.alive(t.pid):
                t.where[i] = t.cgroup
        self._stop([t.pid for t in self.tracked.values() if t.owner == i and self.alive(t.pid)])
        mine = [n for n, (owner, _) in self.live_cgroups.items() if owner == i]
        for name in sorted(mine, key=len, reverse=True):
            err = self.cgroups.remove(name)
            if err:
                self.cleanup_errors.append(err)
            self.live_cgroups.pop(name, None)
        self.payloads = {n: p for n, p in self.payloads.items() if self.alive(p)}

    def _finish(self) -> None:
        """Stop everything still running and remove every cgroup (never raises past here)."""
        last = len(self.steps) - 1
        for t in self.tracked.values():
            if self.alive(t.pid):
                t.where.setdefault(max(last, 0), t.cgroup)
        try:
            self._stop([t.pid for t in self.tracked.values() if self.alive(t.pid)])
        except WorkerError as e:
            self._lost(str(e))
        self.cleanup_errors += self.cgroups.remove_all()
        self.live_cgroups.clear()

    # -- ops and their records -------------------------------------------------------------

    def _op(self, op: dict[str, Any], owner: int, where: str) -> None:
        target = op.get("name", op.get("cgroup", ""))  # a payload's name, else the cgroup
        if isinstance(target, dict):
            target = target["name"]
        if op["op"] == "move_all_tasks":
            target = f"{op['from']} -> {op['to']}"
        elif op["op"] == "swap_cpusets":
            target = f"{op['a']} <-> {op['b']}"
        handler = getattr(self, f"op_{op['op']}")
        self._record(
            op["op"], target or "host", lambda: handler(op, owner, where.replace(" ", "")), where
        )

    def _record(
        self, name: str, target: str, fn: Callable[[], dict[str, Any]], where: str
    ) -> dict[str, Any]:
        rec: dict[str, Any] = {
            "op": name,
            "target": target[:200],
            "started_ns": self.now(),
            "effect_ns": 0,
            "ok": True,
            "error": "",
        }
        detail: dict[str, Any] = {}
        try:
            detail = fn() or {}
            rec["detail"] = detail
        except (OpError, CgroupError, OSError, WorkerError, KeyError) as e:
            rec.update(ok=False, error=str(e)[:1024])
            if isinstance(e, CgroupError) and not self.setup_error:
                self.setup_error = str(e)[:1024]
            self.failed = self.failed or f"{where}: {name} {target}: {e}"[:1024]
        rec["effect_ns"] = self.now()
        self._ops_done += 1
        ops = self._current["ops"]
        if len(ops) < record.MAX_OP_RECORDS:
            ops.append(rec)
        else:
            self._current["dropped"] += 1
        return detail

    # -- workers ending ------------------------------------------------------------------

    def _poll(self, timeout_s: float) -> None:
        for ev in self.pool.wait_ended(timeout_s):
            t = self.tracked.get(ev.get("pid"))  # type: ignore[arg-type]
            if t is not None and t.pid not in self.ended:
                self.ended[t.pid] = ev
                if t.slot >= 0:
                    self._free_slots.append(t.slot)

    def _wait_ended(self, pids: list[int], timeout_s: float) -> list[int]:
        """Take ends until every one of ``pids`` ended or ``timeout_s``; the pids left."""
        end = time.monotonic() + timeout_s
        left = [p for p in pids if self.alive(p)]
        while left and time.monotonic() < end:
            self._poll(min(_POLL_S, max(0.0, end - time.monotonic())))
            left = [p for p in left if self.alive(p)]
        return left

    def _stop(self, pids: list[int]) -> None:
        """SIGTERM (workers report) or SIGKILL (payloads); then SIGKILL what is left."""
        pids = [p for p in pids if self.alive(p)]
        if not pids:
            return
        workers = [p for p in pids if self.tracked[p].payload is None]
        programs = [p for p in pids if self.tracked[p].payload is not None]
        if workers:
            self.pool.signal(signal.SIGTERM, workers)
        if programs:
            self.pool.signal(signal.SIGKILL, programs)
        left = self._wait_ended(pids, _STOP_WAIT_S)
        if left:
            self.pool.signal(signal.SIGKILL, left)
            left = self._wait_ended(left, _KILL_WAIT_S)
        for pid in left:
            self.ended[pid] = {
                "pid": pid,
                "exit": "not reaped",
                "report": None,
                "error": "did not end after SIGKILL",
            }

    def _lost(self, why: str) -> None:
        """The worker parent is gone: its workers died with it (PDEATHSIG)."""
        for pid in [p for p in self.tracked if self.alive(p)]:
            self.ended[pid] = {
                "pid": pid,
                "exit": "lost",
                "report": None,
                "error": f"no report ({why})",
            }


def run_scenario(
    plan: dict[str, Any],
    cgroups: Cgroups,
    pool: WorkerPool,
    stop: threading.Event | None = None,
    work_dir: str = WORK_DIR,
    fairness: float = 0.35,
    max_gap_ms: float = 0.0,
) -> ScenarioOutcome:
    """Play ``plan`` (see :class:`Runner`)."""
    runner = Runner(plan, cgroups, pool, stop, work_dir, fairness=fairness, max_gap_ms=max_gap_ms)
    return runner.run()


def spinners_plan(cgroups: int, workers: int, duration_s: float, nr_cpus: int) -> dict[str, Any]:
    """The ``steady`` document of a run spec from the kernel command line (cgroup-spinners,
    which carries no document): ``cgroups`` cgroups ``cg_0..`` of ``workers`` spinners."""
    from guest.scenario import document

    n = max(1, nr_cpus)
    idle = {"kind": "inherit", "cpus": [], "count": 0}
    cgs = [
        {
            "name": f"cg_{i}",
            "cpuset": None,
            "workers": workers,
            "work": {"type": "spin", "params": {}},
            "policy": {"class": "normal", "priority": 0},
            "nice": 0,
            "affinity": idle,
            "mempolicy": {"mode": "default", "nodes": [], "flags": []},
        }
        for i in range(cgroups)
    ]
    return document.validate(
        {
            "version": document.VERSION,
            "name": "steady",
            "duration_s": float(duration_s),
            "seed": 0,
            "topology": {
                "cpus": n,
                "usable": list(range(n - 1 if n > 2 else n)),
                "llcs": [list(range(n))],
                "nodes": [list(range(n))],
            },
            "backdrop": {"cgroups": [], "ops": []},
            "steps": [
                {"name": "", "cgroups": cgs, "ops": [], "hold": {"kind": "frac", "value": 1.0}}
            ],
        }
    )
