"""Judge a monitor's samples against :class:`~verdicts.thresholds.MonitorThresholds`.

Checks apply only to samples taken while a sched_ext scheduler was attached (they carry
``scx``), after the warm-up. Each check must hold for ``sustained_samples`` consecutive
samples to count; every such run is one violation, with the values around it as evidence.

* imbalance (system-wide): max(nr_running) / max(1, min(nr_running)) over the CPUs;
* local_dsq_depth (per CPU): ``local_dsq_nr``;
* stall (per CPU): ``rq_clock`` unchanged since the previous sample while ``nr_running > 0``
  in both; an idle CPU is not a stall, and neither is a vCPU the host did not run (its
  thread's run time, ``vcpu_run_ns``, advanced less than ``vcpu_min_run_ms``);
* fallback_rate / keep_last_rate (system-wide): SCX_EV_SELECT_CPU_FALLBACK and
  SCX_EV_DISPATCH_KEEP_LAST per second between consecutive samples.

The same :class:`MonitorJudge` runs live in the monitor (a sustained violation can ask the
guest for a dump) and afterwards in the orchestrator (:func:`judge_samples`).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from schedlab_shared.monitor_schema import SchemaError, check_sample

from .thresholds import MonitorThresholds

__all__ = ("FALLBACK", "KEEP_LAST", "MonitorJudge", "MonitorVerdict", "judge_samples")

FALLBACK = "SCX_EV_SELECT_CPU_FALLBACK"
KEEP_LAST = "SCX_EV_DISPATCH_KEEP_LAST"
_AROUND = 3  # samples of context kept before and after a violating run
_MAX_RUN_KEPT = 20  # values kept from inside one long run (first ones)
_MAX_VIOLATIONS = 100  # per run of the judge: evidence, not a log


@dataclass
class _Run:
    """One (check, cpu)'s current run of consecutive violating samples."""

    start_ms: float
    last_ms: float
    worst: float
    samples: int = 0
    values: list[dict[str, Any]] = field(default_factory=list)
    before: list[dict[str, Any]] = field(default_factory=list)
    detail: str = ""
    reported: dict[str, Any] | None = None  # the violation, once sustained


@dataclass
class MonitorVerdict:
    """What the judge concluded.

    ``status``: ``passed``, ``failed`` (a sustained violation), ``inconclusive`` (no valid
    sample, or values no real kernel holds) or ``not_applied`` (no sched_ext scheduler was
    attached: the thresholds judge sched_ext schedulers only).
    """

    status: str
    reason: str
    violations: list[dict[str, Any]] = field(default_factory=list)
    events: dict[str, dict[str, float]] = field(default_factory=dict)
    samples: int = 0
    judged: int = 0
    invalid: int = 0


class MonitorJudge:
    """Feed samples in order; :meth:`feed` returns the violations that just became
    sustained (for a live reaction), :meth:`finish` the verdict."""

    def __init__(self, thresholds: MonitorThresholds | None = None) -> None:
        self.t = thresholds or MonitorThresholds()
        self.samples = 0
        self.invalid = 0
        self.judged = 0
        self.attached = 0
        self.violations: list[dict[str, Any]] = []
        self.insane = ""
        self._attach_ms: float | None = None
        self._prev: dict[str, Any] | None = None
        self._runs: dict[tuple[str, int | None], _Run] = {}
        # ended runs' violations still collecting the samples after them: [key, around, left]
        self._closing: list[list[Any]] = []
        self._history: deque[tuple[dict[str, Any], dict[tuple[str, int | None], dict[str, Any]]]]
        self._history = deque(maxlen=_AROUND)
        self._vcpu_last: dict[int, int] = {}  # cpu -> its thread's last run-time reading
        self._vcpu_ran: dict[int, bool] = {}  # cpu -> ran between its last two readings
        self._first_events: tuple[float, dict[str, int]] | None = None
        self._last_events: tuple[float, dict[str, int]] | None = None

    # -- feeding ------------------------------------------------------------------------

    def feed(self, sample: Any, trusted: bool = False) -> list[dict[str, Any]]:
        """Judge one sample line; returns violations that reached ``sustained_samples``.

        :param trusted: the caller made the sample itself (the live monitor): skip the
            schema check that lines read back from a file get.
        """
        try:
            s = sample if trusted else check_sample(sample)
        except SchemaError:
            self.invalid += 1
            return []
        self.samples += 1
        if "scx" not in s:  # detached (or EEVDF): nothing to judge, runs end here
            self._end_all()
            self._attach_ms, self._prev = None, None
            return []
        self.attached += 1
        now = float(s["elapsed_ms"])
        if self._attach_ms is None:
            self._attach_ms = now
        self._sanity(s)
        self._note_vcpu_runs(s)
        prev, self._prev = self._prev, s
        if now - self._attach_ms < self.t.warmup_s * 1000 or prev is None:
            return []
        self.judged += 1
        self._note_events(prev, s)
        return self._track(s, self._checks(prev, s))

    def _sanity(self, s: dict[str, Any]) -> None:
        for c in s["cpus"]:
            if c.get("local_dsq_nr", 0) > self.t.max_sane_dsq_depth:
                self.insane = (
                    f"CPU {c['cpu']} local DSQ depth {c['local_dsq_nr']} at "
                    f"{s['elapsed_ms']:.0f} ms: no real kernel queues that many; "
                    "does the vmlinux match the running kernel?"
                )
        for q in s["scx"].get("dsqs", []):
            if q["nr"] > self.t.max_sane_dsq_depth:
                self.insane = (
                    f"DSQ {q['id']:#x} depth {q['nr']}: does the vmlinux match the running kernel?"
                )

    def _note_events(self, prev: dict[str, Any], s: dict[str, Any]) -> None:
        ev = s["scx"].get("events")
        if ev:
            if self._first_events is None and prev["scx"].get("events"):
                self._first_events = (prev["elapsed_ms"], prev["scx"]["events"])
            self._last_events = (s["elapsed_ms"], ev)

    # -- the checks ------------------------------------------------------------------------

    def _checks(
        self, prev: dict[str, Any], s: dict[str, Any]
    ) -> dict[tuple[str, int | None], dict[str, Any]]:
        """(check, cpu) -> {value, limit, ...context} of every check this sample violates."""
        t = self.t
        hits: dict[tuple[str, int | None], dict[str, Any]] = {}
        cpus = s["cpus"]
        nr = [c["nr_running"] for c in cpus]
        if nr:
            ratio = max(nr) / max(1, min(nr))
            if ratio > t.max_imbalance_ratio:
                hits[("imbalance", None)] = {
                    "value": ratio,
                    "limit": t.max_imbalance_ratio,
                    "nr_running": nr,
                    "detail": f"nr_running {max(nr)} on CPU {nr.index(max(nr))} against "
                    f"{min(nr)} on CPU {nr.index(min(nr))}",
                }
        for c in cpus:
            depth = c.get("local_dsq_nr")
            if depth is not None and depth > t.max_local_dsq_depth:
                hits[("local_dsq_depth", c["cpu"])] = {
                    "value": depth,
                    "limit": t.max_local_dsq_depth,
                    "detail": f"local DSQ of CPU {c['cpu']} held {depth} tasks",
                }
        if t.fail_on_stall:
            hits.update(self._stalls(prev, s))
        dt = (s["elapsed_ms"] - prev["elapsed_ms"]) / 1000.0
        ev, pev = s["scx"].get("events", {}), prev["scx"].get("events", {})
        for check, name, limit in (
            ("fallback_rate", FALLBACK, t.max_fallback_rate),
            ("keep_last_rate", KEEP_LAST, t.max_keep_last_rate),
        ):
            if dt > 0 and name in ev and name in pev:
                rate = (ev[name] - pev[name]) / dt
                if rate > limit:
                    hits[(check, None)] = {
                        "value": rate,
                        "limit": limit,
                        "detail": f"{name} at {rate:.0f}/s",
                    }
        return hits

    def _stalls(
        self, prev: dict[str, Any], s: dict[str, Any]
    ) -> dict[tuple[str, int | None], dict[str, Any]]:
        out = {}
        before = {c["cpu"]: c for c in prev["cpus"]}
        for c in s["cpus"]:
            p = before.get(c["cpu"])
            if p is None or c["rq_clock"] != p["rq_clock"]:
                continue
            if c["nr_running"] == 0 or p["nr_running"] == 0:
                continue  # idle: NO_HZ stops the tick and nothing updates the clock
            if not self._vcpu_ran.get(c["cpu"], True):
                continue  # the host did not run this vCPU: the guest could not advance
            out[("stall", c["cpu"])] = {
                "value": (s["elapsed_ms"] - prev["elapsed_ms"]),
                "limit": 0,
                "nr_running": c["nr_running"],
                "rq_clock": c["rq_clock"],
                "detail": f"rq_clock of CPU {c['cpu']} stood at {c['rq_clock']} with "
                f"{c['nr_running']} runnable",
            }
        return out

    def _note_vcpu_runs(self, s: dict[str, Any]) -> None:
        """Whether the host ran each vCPU between its last two run-time readings (samples
        between readings keep the last answer; unknown counts as ran)."""
        min_run_ns = self.t.vcpu_min_run_ms * 1e6
        for c in s["cpus"]:
            ns = c.get("vcpu_run_ns")
            if ns is None:
                continue
            last = self._vcpu_last.get(c["cpu"])
            if last is not None:
                self._vcpu_ran[c["cpu"]] = ns - last >= min_run_ns
            self._vcpu_last[c["cpu"]] = ns

    def _min_span_ms(self, key: tuple[str, int | None], s_shared: int) -> float:
        if key[0] == "stall" and s_shared > 1:
            return s_shared * self.t.tcg_rr_slice_ms
        return 0.0

    # -- sustained runs ---------------------------------------------------------------------

    def _track(
        self, s: dict[str, Any], hits: dict[tuple[str, int | None], dict[str, Any]]
    ) -> list[dict[str, Any]]:
        now = float(s["elapsed_ms"])
        shared = int(s.get("vcpus", {}).get("shared", 1) or 1)
        for key in [k for k in self._runs if k not in hits]:
            self._end(key)
        for c in self._closing:  # ended runs' evidence: the samples right after them
            c[1].append(self._point(c[0], s, hits.get(c[0])))
            c[2] -= 1
        self._closing = [c for c in self._closing if c[2] > 0]
        fresh = []
        for key, h in hits.items():
            run = self._runs.get(key)
            if run is None:
                run = self._runs[key] = _Run(
                    now,
                    now,
                    h["value"],
                    before=[
                        self._point(key, past, past_hits.get(key))
                        for past, past_hits in self._history
                    ],
                )
            run.samples += 1
            run.last_ms = now
            run.worst = max(run.worst, h["value"]) if key[0] != "stall" else now - run.start_ms
            run.detail = h["detail"]
            if len(run.values) < _MAX_RUN_KEPT:
                run.values.append(self._point(key, s, h))
            span_ok = run.last_ms - run.start_ms >= self._min_span_ms(key, shared)
            if run.samples >= self.t.sustained_samples and span_ok and run.reported is None:
                run.reported = self._violation(key, run)
                fresh.append(run.reported)
        self._history.append((s, hits))
        return fresh

    @staticmethod
    def _point(
        key: tuple[str, int | None], s: dict[str, Any], hit: dict[str, Any] | None
    ) -> dict[str, Any]:
        """The values one sample held for ``key``'s check (evidence around a violation)."""
        check, cpu = key
        p: dict[str, Any] = {"at_ms": round(float(s["elapsed_ms"]), 1)}
        if cpu is not None:
            c: dict[str, Any] = next((c for c in s["cpus"] if c["cpu"] == cpu), {})
            p.update(
                {
                    k: c[k]
                    for k in ("nr_running", "rq_clock", "local_dsq_nr", "vcpu_run_ns")
                    if k in c
                }
            )
        elif check == "imbalance":
            p["nr_running"] = [c["nr_running"] for c in s["cpus"]]
        else:
            name = FALLBACK if check == "fallback_rate" else KEEP_LAST
            if name in s.get("scx", {}).get("events", {}):
                p[name] = s["scx"]["events"][name]
        if hit is not None:
            p["value"] = round(hit["value"], 3)
        return p

    def _violation(self, key: tuple[str, int | None], run: _Run) -> dict[str, Any]:
        check, cpu = key
        v = {
            "check": check,
            "cpu": cpu,
            "at_ms": round(run.start_ms, 1),
            "until_ms": round(run.last_ms, 1),
            "samples": run.samples,
            "value": round(run.worst, 3),
            "limit": self._limit(check),
            "around": run.before + run.values,
            "detail": run.detail,
        }
        if len(self.violations) < _MAX_VIOLATIONS:
            self.violations.append(v)
        return v

    def _limit(self, check: str) -> float:
        t = self.t
        return {
            "imbalance": t.max_imbalance_ratio,
            "local_dsq_depth": t.max_local_dsq_depth,
            "stall": 0,
            "fallback_rate": t.max_fallback_rate,
            "keep_last_rate": t.max_keep_last_rate,
        }[check]

    def _end(self, key: tuple[str, int | None]) -> None:
        run = self._runs.pop(key)
        v = run.reported
        if v is not None:  # the whole run is the evidence, and the samples after it
            v.update(
                until_ms=round(run.last_ms, 1),
                samples=run.samples,
                value=round(run.worst, 3),
                around=run.before + run.values,
            )
            self._closing.append([key, v["around"], _AROUND])

    def _end_all(self) -> None:
        for key in list(self._runs):
            self._end(key)

    # -- the verdict -------------------------------------------------------------------------

    def events_summary(self) -> dict[str, dict[str, float]]:
        """Each counter's total (at the last judged sample) and rate over the judged window."""
        if self._last_events is None:
            return {}
        t1, last = self._last_events
        t0, first = self._first_events or self._last_events
        dt = (t1 - t0) / 1000.0
        return {
            name: {
                "total": total,
                "rate": round((total - first.get(name, total)) / dt, 3) if dt > 0 else 0.0,
            }
            for name, total in last.items()
        }

    def finish(self) -> MonitorVerdict:
        self._end_all()
        base: dict[str, Any] = dict(
            samples=self.samples,
            invalid=self.invalid,
            judged=self.judged,
            events=self.events_summary(),
        )
        if self.samples == 0:
            why = f" ({self.invalid} malformed lines)" if self.invalid else ""
            return MonitorVerdict("inconclusive", f"monitor: no valid sample{why}", **base)
        if self.insane:
            return MonitorVerdict("inconclusive", f"monitor: {self.insane}", **base)
        if self.attached == 0:
            return MonitorVerdict(
                "not_applied",
                "monitor: no sched_ext scheduler attached; thresholds not applied",
                **base,
            )
        if self.violations:
            v = self.violations[0]
            where = f" on CPU {v['cpu']}" if v["cpu"] is not None else ""
            reason = (
                f"monitor: {v['check']}{where} from {v['at_ms'] / 1000:.1f} s for "
                f"{v['samples']} samples: {v['detail']} (limit {v['limit']:g})"
            )
            more = len(self.violations) - 1
            if more:
                reason += f"; {more} more violation(s)"
            return MonitorVerdict("failed", reason, list(self.violations), **base)
        if self.judged == 0:
            return MonitorVerdict(
                "passed",
                "monitor: scheduler attached, nothing judged after "
                f"the {self.t.warmup_s:g} s warm-up",
                **base,
            )
        return MonitorVerdict(
            "passed", f"monitor: {self.judged} sched_ext samples within thresholds", **base
        )


def judge_samples(
    samples: Iterable[Any], thresholds: MonitorThresholds | None = None
) -> MonitorVerdict:
    """Judge a finished run's samples (one monitor's, in order)."""
    judge = MonitorJudge(thresholds)
    for s in samples:
        judge.feed(s)
    return judge.finish()
