"""Judge the workers' reports of a run: the guest reports facts, the host decides.

Checks (each with its figures and, when it fails, its evidence), per cgroup and step:

``complete``
    every expected worker reported, with a valid report and no error.
``ops``
    (a scenario) every op and cgroup setup took effect.
``starvation``
    no worker finished with zero work units.
``fairness``
    the spread (max - min) of the workers' off-CPU shares, over the window every worker of
    the cgroup (the cohort, in a scenario: workers started together) ran in the step, after
    the step's ops took effect and a warm-up (from the reports' timelines), is at most
    ``max_spread``. Types whose workers play different roles, and cohorts whose affinities
    differ by design, are not judged.
``max_gap``
    no worker went longer than ``max_gap_ms`` between two checkpoints; the evidence reads
    ``stuck 2301 ms on cpu1 at +1.2 s`` (time since the first worker started).
``isolation``
    every CPU a worker was seen on is in its cgroup's cpuset.

Time the host did not run the guest's vCPUs (``host_pauses``:
:mod:`schedlab_shared.host_pauses`) is not the scheduler's: a gap is judged less the time
its CPU's vCPU was paused, a fairness window without the paused spans (not judged if too
little is left), a starved worker whose whole run was paused is not counted; each such case
is listed in its check's ``excused`` with the pause as evidence, and named in the reason.
``throughput_cv``, ``work_rate``, ``iteration_rate``, ``wake_latency_p99``,
``wake_latency_cv``, ``migration_ratio``, ``page_locality``, ``cross_node_migration``
    the optional limits of :class:`~verdicts.worker_limits.WorkerLimits`.

A check whose limit is off is not listed. With ``expect_error`` naming a check, the verdict
passes only when that check fails (a test that must catch a failure).

>>> v = judge_workers(reports, {"cg0": CgroupExpect(2)}, WorkerLimits())
>>> v.passed, [c.name for c in v.checks]
(True, ['complete', 'starvation', 'fairness', 'max_gap'])
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from guest.schema import SchemaError
from guest.workreport import check_report
from guest.workspec import ASYMMETRIC
from schedlab_shared.host_pauses import describe, not_run_ns

from .worker_limits import WorkerLimits

__all__ = (
    "CHECKS",
    "CgroupExpect",
    "Check",
    "WorkerVerdict",
    "cpu_in_window",
    "cv",
    "judge_workers",
)

#: Every check's name, in report order.
CHECKS = (
    "complete",
    "ops",
    "starvation",
    "fairness",
    "max_gap",
    "isolation",
    "throughput_cv",
    "work_rate",
    "iteration_rate",
    "wake_latency_p99",
    "wake_latency_cv",
    "migration_ratio",
    "page_locality",
    "cross_node_migration",
)
_EVIDENCE = 8  # lines of evidence kept per check


@dataclass(frozen=True)
class CgroupExpect:
    """What a cgroup was set up with.

    :param workers: workers spawned in it.
    :param cpus: its cpuset (None: not restricted).
    :param step_cpus: a cpuset per step index where it differs from ``cpus``.
    """

    workers: int
    cpus: frozenset[int] | None = None
    step_cpus: Mapping[int, frozenset[int] | None] = field(default_factory=dict)

    def cpuset(self, step: int) -> frozenset[int] | None:
        return self.step_cpus.get(step, self.cpus)


@dataclass(frozen=True)
class Check:
    """One check's outcome: ``detail`` says what was measured, ``evidence`` what failed."""

    name: str
    passed: bool
    detail: str
    evidence: tuple[str, ...] = ()
    excused: tuple[str, ...] = ()  # what was not judged because the host did not run vCPUs

    def as_map(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "passed": self.passed,
            "detail": self.detail,
            "evidence": list(self.evidence),
            **({"excused": list(self.excused)} if self.excused else {}),
        }


@dataclass(frozen=True)
class WorkerVerdict:
    """The workers' verdict: ``passed`` iff every listed check passed (or, with
    ``expected_error``, iff that one failed)."""

    passed: bool
    reason: str
    checks: tuple[Check, ...]
    cgroups: tuple[dict[str, Any], ...]
    expected_error: str | None = None

    def as_map(self) -> dict[str, Any]:
        """The result document's fields: passed, reason, verdicts, cgroups."""
        return {
            "passed": self.passed,
            "reason": self.reason,
            "verdicts": [c.as_map() for c in self.checks],
            "cgroups": list(self.cgroups),
            "expected_error": self.expected_error,
        }


@dataclass(frozen=True)
class _Seg:
    """One segment with the worker it belongs to."""

    cgroup: str
    pid: int
    kind: str
    seg: dict[str, Any]

    @property
    def who(self) -> str:
        return f"{self.cgroup}/pid {self.pid}"

    @property
    def cohort(self) -> str:
        """The workers started with it (a scenario's definition or op), else its cgroup."""
        return str(self.seg.get("cohort") or self.cgroup)


def _fmt_cpus(cpus: frozenset[int] | set[int]) -> str:
    """``{0, 1, 2, 5}`` -> ``0-2,5``."""
    out: list[str] = []
    run: list[int] = []
    for c in sorted(cpus):
        if run and c == run[-1] + 1:
            run.append(c)
            continue
        if run:
            out.append(f"{run[0]}-{run[-1]}" if len(run) > 1 else str(run[0]))
        run = [c]
    if run:
        out.append(f"{run[0]}-{run[-1]}" if len(run) > 1 else str(run[0]))
    return ",".join(out)


def cpu_in_window(seg: dict[str, Any], lo_ns: int, hi_ns: int) -> float | None:
    """CPU nanoseconds a segment's worker used in ``[lo_ns, hi_ns]``, interpolated on its
    timeline; None without one."""
    tl = seg.get("timeline") or []
    if len(tl) < 2:
        return None
    start = seg.get("t0_ns", seg["start_ns"])  # the meter's start, where a wrapper kept its own
    pts = [(start + t * 1000, cpu * 1000) for t, cpu, _ in tl]

    def at(t: int) -> float:
        if t <= pts[0][0]:
            return float(pts[0][1])
        for (t0, c0), (t1, c1) in zip(pts, pts[1:], strict=False):
            if t <= t1:
                return c0 + (c1 - c0) * ((t - t0) / (t1 - t0) if t1 > t0 else 1.0)
        return float(pts[-1][1])

    return max(0.0, at(hi_ns) - at(lo_ns))


def _window(segs: list[_Seg], lim: WorkerLimits, hold_ns: int = 0) -> tuple[int, int]:
    """The common window of a cgroup's workers in one step: from when all of them ran (and
    the step's ops took effect, ``hold_ns``) plus the warm-up, to when the first ended."""
    lo = max([s.seg["start_ns"] for s in segs] + [hold_ns]) + int(lim.warmup_ms * 1e6)
    return lo, min(s.seg["end_ns"] for s in segs)


def _pieces(lo: int, hi: int, cut: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """``[lo, hi]`` without the spans of ``cut``."""
    out, at = [], lo
    for a, b in sorted(cut):
        if a > at:
            out.append((at, min(a, hi)))
        at = max(at, b)
        if at >= hi:
            break
    if at < hi:
        out.append((at, hi))
    return [(a, b) for a, b in out if b > a]


def _shares(
    segs: list[_Seg],
    lim: WorkerLimits,
    hold_ns: int = 0,
    cut: list[tuple[int, int]] = (),  # type: ignore[assignment]
) -> tuple[list[float] | None, float, str]:
    """Off-CPU shares of a cgroup's workers in one step over their common window
    (:func:`_window`) less the spans of ``cut`` (the host did not run their vCPUs), the
    window (ms) and how. No shares (``"short"``) when what is left is under
    ``min_window_ms``; over whole segments (``"whole"``) for reports without timelines
    (``"host"``: not judged, a cut needs timelines)."""
    lo, hi = _window(segs, lim, hold_ns)
    parts = _pieces(lo, hi, list(cut)) if hi > lo else []
    wall = sum(b - a for a, b in parts)
    window_ms = wall / 1e6
    if window_ms < lim.min_window_ms:
        return None, window_ms, "short"
    cpu = [
        sum(c for c in (cpu_in_window(s.seg, a, b) for a, b in parts) if c is not None)
        if all(cpu_in_window(s.seg, a, b) is not None for a, b in parts)
        else None
        for s in segs
    ]
    if all(c is not None for c in cpu):
        return (
            [min(1.0, max(0.0, 1 - c / wall)) for c in cpu if c is not None],
            window_ms,
            "window",
        )
    if cut:
        return None, window_ms, "host"
    shares = [
        min(1.0, s.seg["off_cpu_ns"] / s.seg["wall_time_ns"]) if s.seg["wall_time_ns"] else 0.0
        for s in segs
    ]
    return shares, window_ms, "whole"


def _check(
    name: str,
    bad: list[str],
    ok_detail: str,
    bad_detail: str,
    excused: list[str] = (),  # type: ignore[assignment]
) -> Check:
    ex = tuple(excused[:_EVIDENCE])
    if bad:
        more = f" (+{len(bad) - _EVIDENCE} more)" if len(bad) > _EVIDENCE else ""
        return Check(name, False, bad_detail + more, tuple(bad[:_EVIDENCE]), ex)
    if excused:
        ok_detail += f"; host time left out of {len(excused)} (the host did not run the vCPUs)"
    return Check(name, True, ok_detail, (), ex)


class _Judge:
    def __init__(
        self,
        reports: Sequence[Any],
        expected: Mapping[str, CgroupExpect],
        lim: WorkerLimits,
        node_of_cpu: Mapping[int, int] | None,
        exempt: frozenset[str] = frozenset(),
        hold_ns: Mapping[int, int] | None = None,
        host_pauses: Sequence[Mapping[str, Any]] = (),
    ) -> None:
        self.lim, self.expected, self.node_of_cpu = lim, expected, node_of_cpu
        self.pauses = [p for p in host_pauses if p.get("guest_from_ns") is not None]
        self.exempt, self.hold_ns = exempt, dict(hold_ns or {})
        self.invalid: list[str] = []
        self.reports: list[dict[str, Any]] = []
        for i, r in enumerate(reports):
            try:
                check_report(r)
            except SchemaError as e:
                self.invalid.append(f"report {i}: {e}")
                continue
            self.reports.append(r)
        self.segs = [
            _Seg(r["cgroup"], r["pid"], r.get("kind", ""), s)
            for r in self.reports
            for s in r.get("segments") or ()
        ]
        starts = [s.seg["start_ns"] for s in self.segs]
        self.t0 = min(starts) if starts else 0
        self.all_cpus = {c for s in self.segs for c in s.seg["cpus"]}
        self.groups: dict[tuple[str, int], list[_Seg]] = {}
        for s in self.segs:
            # Shares compare within a cgroup and step, between workers of one work type, once
            # the step's ops took effect, leaving out cohorts placed apart by design.
            if s.seg.get("phase") != "setup" and s.cohort not in self.exempt:
                key = f"{s.cgroup}:{s.kind}" if s.kind else s.cgroup
                self.groups.setdefault((key, s.seg["step"]), []).append(s)

    def complete(self) -> Check:
        problems = list(self.invalid)
        for cg, exp in sorted(self.expected.items()):
            got = sum(1 for r in self.reports if r["cgroup"] == cg)
            if got < exp.workers:
                problems.append(
                    f"{cg}: {exp.workers - got} of {exp.workers} workers did not report"
                )
        problems += [
            f"{r['cgroup']}/pid {r['pid']}: {r['error']}" for r in self.reports if r.get("error")
        ]
        total = sum(e.workers for e in self.expected.values())
        return _check(
            "complete",
            problems,
            f"{len(self.reports)} of {total} workers reported",
            "; ".join(problems[:3]),
        )

    def _paused(self, lo: int, hi: int, cpus: set[int] | None) -> tuple[int, list[str]]:
        """Nanoseconds of ``[lo, hi]`` the host did not run the vCPUs of ``cpus`` (None: a
        CPU not known, so only a pause of every vCPU counts), and the pauses, described."""
        total, why, spans = 0, [], []
        for p in self.pauses:
            vc = set(p["vcpus"])
            if (cpus is None and not self.all_cpus <= vc) or (cpus is not None and not cpus & vc):
                continue
            ns = not_run_ns(p, lo, hi)
            if ns > 0:
                total += ns
                why.append(describe(p, self.t0))
                spans.append((max(lo, p["guest_from_ns"]), min(hi, p["guest_to_ns"])))
        union = (hi - lo) - sum(b - a for a, b in _pieces(lo, hi, spans))  # overlaps once
        return min(total, union), why

    def _cuts(self, segs: list[_Seg], lo: int, hi: int) -> tuple[list[tuple[int, int]], list[str]]:
        """The paused spans within ``[lo, hi]`` of the vCPUs a cgroup's workers ran on."""
        cpus = {c for s in segs for c in s.seg["cpus"]} or None
        cut, why = [], []
        for p in self.pauses:
            vc = set(p["vcpus"])
            if (cpus is None and not self.all_cpus <= vc) or (cpus is not None and not cpus & vc):
                continue
            if p["guest_to_ns"] <= lo or p["guest_from_ns"] >= hi:
                continue
            cut.append((p["guest_from_ns"], p["guest_to_ns"]))
            why.append(describe(p, self.t0))
        return cut, why

    def starvation(self) -> Check:
        starved, excused = [], []
        for r in self.reports:
            if r["work_units"] != 0:
                continue
            who = f"{r['cgroup']}/pid {r['pid']} ({r.get('kind') or 'worker'}): 0 work units"
            segs = r.get("segments") or []
            span = sum(max(0, s["end_ns"] - s["start_ns"]) for s in segs)
            paused, why = 0, list[str]()
            for s in segs:
                ns, w = self._paused(s["start_ns"], s["end_ns"], set(s["cpus"]) or None)
                paused, why = paused + ns, why + w
            if span and paused >= 0.9 * span:  # it had (almost) no time to run
                excused.append(f"{who}, {paused / 1e6:.0f} of {span / 1e6:.0f} ms: {why[0]}")
            else:
                starved.append(who)
        least = min((r["work_units"] for r in self.reports), default=0)
        return _check(
            "starvation",
            starved,
            f"every worker progressed (min {least} work units)",
            f"{len(starved)} worker(s) starved",
            excused,
        )

    def fairness(self, stats: list[dict[str, Any]]) -> Check:
        bad, seen, short, excused = [], [], [], []
        for (_key, step), segs in sorted(self.groups.items()):
            if len(segs) < 2 or any(s.kind in ASYMMETRIC for s in segs):
                continue
            hold = self.hold_ns.get(step, 0)
            lo, hi = _window(segs, self.lim, hold)
            cut, why = self._cuts(segs, lo, hi)
            shares, window_ms, how = _shares(segs, self.lim, hold, cut)
            cg = segs[0].cgroup
            cpu = [s.seg["cpu_time_ns"] for s in segs]
            row: dict[str, Any] = {
                "cgroup": cg, "kind": segs[0].kind, "step": step, "workers": len(segs),
                "min_cpu_ns": min(cpu), "max_cpu_ns": max(cpu), "window_ms": round(window_ms, 1),
                "window": how, "work_units": sum(s.seg["work_units"] for s in segs),
            }  # fmt: skip
            if cut:
                row["host_cut_ms"] = round((hi - lo) / 1e6 - window_ms, 1)
            stats.append(row)
            if cut:
                left = "judged on the rest" if shares is not None else "not judged"
                excused.append(
                    f"{cg} step {step}: {row['host_cut_ms']:.0f} ms of its "
                    f"{(hi - lo) / 1e9:.2f} s window cut, {left} ({window_ms / 1000:.2f} s): "
                    + "; ".join(sorted(set(why)))
                )
            if shares is None:
                short.append(f"{cg}/{step} ({window_ms / 1000:.2f} s)")
                continue
            spread = max(shares) - min(shares)
            limit = self.lim.spread_limit(window_ms / 1000)
            assert limit is not None
            row.update(spread=round(spread, 4), limit=round(limit, 4),
                       off_cpu_min=round(min(shares), 4), off_cpu_max=round(max(shares), 4))  # fmt: skip
            seen.append(f"{cg}/{step} {spread * 100:.1f} <= {limit * 100:.1f}")
            if spread > limit:
                each = ", ".join(
                    f"pid {s.pid} {v * 100:.1f}%" for s, v in zip(segs, shares, strict=True)
                )
                bad.append(
                    f"{cg} step {step}: off-CPU share {min(shares) * 100:.1f}%.."
                    f"{max(shares) * 100:.1f}% (spread {spread * 100:.1f} > "
                    f"{limit * 100:.1f} points) over {window_ms / 1000:.2f} s: {each}"
                )
        skipped = (
            f"; not judged, windows under {self.lim.min_window_ms / 1000:g} s: {', '.join(short)}"
            if short
            else ""
        )
        return _check(
            "fairness",
            bad,
            f"off-CPU share spread within its limit (points): "
            f"{', '.join(seen) or 'no cgroup with 2+ comparable workers'}{skipped}",
            f"spread over its limit in {len(bad)} cgroup step(s)",
            excused,
        )

    def max_gap(self) -> Check:
        limit = self.lim.max_gap_ms
        assert limit is not None
        bad: list[str] = []
        excused: list[str] = []
        top = 0.0
        for s in self.segs:
            gap = s.seg["max_gap_ns"] / 1e6
            if gap <= limit:
                top = max(top, gap)
                continue
            cpu = s.seg["max_gap_cpu"]
            at_ns = s.seg["max_gap_at_ns"]  # where it stopped progressing
            paused, why = self._paused(
                at_ns, at_ns + s.seg["max_gap_ns"], {cpu} if cpu >= 0 else None
            )
            rest = gap - paused / 1e6
            top = max(top, rest)
            line = (
                f"{s.who} ({s.kind or 'worker'}): stuck {gap:.0f} ms on "
                f"{'cpu' + str(cpu) if cpu >= 0 else 'an unknown cpu'} at +{(at_ns - self.t0) / 1e9:.1f} s"
            )
            if paused:
                line += f", {paused / 1e6:.0f} ms of it the host's: {'; '.join(why)}"
            (excused if rest <= limit else bad).append(line)
        bad += [
            f"{r['cgroup']}/pid {r['pid']}: stuck {r['max_gap_ms']:.0f} ms"
            for r in self.reports
            if not r.get("segments") and r["max_gap_ms"] > limit
        ]
        top = max([top] + [r["max_gap_ms"] for r in self.reports if not r.get("segments")])
        return _check(
            "max_gap",
            bad,
            f"longest gap {top:.1f} ms <= {limit:g} ms",
            f"{len(bad)} gap(s) > {limit:g} ms",
            excused,
        )

    def isolation(self) -> Check:
        bad, judged = [], 0
        for s in self.segs:
            if s.seg.get("phase") == "setup":  # its cpuset may be changing under it
                continue
            exp = self.expected.get(s.cgroup)
            allowed = exp.cpuset(s.seg["step"]) if exp else None
            if allowed is None:
                continue
            judged += 1
            out = set(s.seg["cpus"]) - allowed
            if out:
                bad.append(
                    f"{s.who} step {s.seg['step']}: ran on cpu {_fmt_cpus(out)} outside "
                    f"its cpuset {_fmt_cpus(allowed)}"
                )
        return _check(
            "isolation",
            bad,
            f"{judged} worker step(s) stayed in their cpusets",
            f"{len(bad)} escape(s)",
        )

    def _per_seg(self, name: str, value: Any, ok: Any, what: str, unit: str = "") -> Check:
        """A per-segment limit: ``value(seg) -> float | None`` (None: not applicable)."""
        bad, vals = [], []
        for s in self.segs:
            v = value(s.seg)
            if v is None:
                continue
            vals.append(v)
            if not ok(v):
                bad.append(f"{s.who} step {s.seg['step']}: {what} {v:.4g}{unit}")
        if not vals:
            return Check(name, True, f"no worker reported a {what}")
        return _check(
            name,
            bad,
            f"{what} {min(vals):.4g}..{max(vals):.4g}{unit} over {len(vals)} worker step(s)",
            f"{len(bad)} worker step(s) out of bounds",
        )

    def throughput_cv(self) -> Check:
        limit = self.lim.max_throughput_cv
        bad, seen = [], []
        for (_key, step), segs in sorted(self.groups.items()):
            if any(s.kind in ASYMMETRIC for s in segs):
                continue
            rates = [
                s.seg["work_units"] / (s.seg["cpu_time_ns"] / 1e9)
                for s in segs
                if s.seg["cpu_time_ns"] > 0
            ]
            if len(rates) < 2:
                continue
            c = cv(rates)
            seen.append(f"{segs[0].cgroup}/{step} {c:.3f}")
            if limit is not None and c > limit:
                bad.append(
                    f"{segs[0].cgroup} step {step}: work units per CPU-second CV {c:.3f} > {limit}"
                )
        return _check(
            "throughput_cv",
            bad,
            f"CV <= {limit}: {', '.join(seen) or 'none judged'}",
            f"{len(bad)} cgroup step(s) over",
        )

    def page_locality(self) -> Check:
        limit = self.lim.min_page_locality
        if not self.node_of_cpu:
            return Check("page_locality", True, "not judged: no NUMA topology")

        def locality(seg: dict[str, Any]) -> float | None:
            pages = seg.get("numa_pages") or {}
            total = sum(v for v in pages.values() if isinstance(v, int))
            if total <= 0:
                return None
            assert self.node_of_cpu is not None
            nodes = {self.node_of_cpu.get(c) for c in seg["cpus"]}
            local = sum(
                v
                for k, v in pages.items()
                if isinstance(v, int) and k.isdigit() and int(k) in nodes
            )
            return local / total

        return self._per_seg("page_locality", locality, lambda v: v >= limit, "page locality")

    def cross_node(self) -> Check:
        limit = self.lim.max_cross_node_migration_ratio

        def ratio(seg: dict[str, Any]) -> float | None:
            pages = sum(v for v in (seg.get("numa_pages") or {}).values() if isinstance(v, int))
            moved = seg.get("numa_pages_migrated")
            return moved / pages if moved is not None and pages > 0 else None

        return self._per_seg(
            "cross_node_migration",
            ratio,
            lambda v: v <= limit,
            "cross-node migrated pages per page",
        )


def _ops(ops: Sequence[Mapping[str, Any]]) -> Check:
    bad = [
        f"{o.get('op')} {o.get('target')}: {o.get('error') or 'failed'}"
        for o in ops
        if not o.get("ok")
    ]
    return _check(
        "ops", bad, f"{len(ops)} ops and setups took effect", f"{len(bad)} of {len(ops)} ops failed"
    )


def _rate(seg: dict[str, Any], num: str, den: str) -> float | None:
    return seg[num] / (seg[den] / 1e9) if seg[den] > 0 else None


def judge_workers(
    reports: Sequence[Any],
    expected: Mapping[str, CgroupExpect],
    limits: WorkerLimits | None = None,
    node_of_cpu: Mapping[int, int] | None = None,
    expect_error: str | None = None,
    *,
    exempt: frozenset[str] = frozenset(),
    hold_ns: Mapping[int, int] | None = None,
    ops: Sequence[Mapping[str, Any]] | None = None,
    host_pauses: Sequence[Mapping[str, Any]] = (),
) -> WorkerVerdict:
    """Judge workers' reports (each checked against :data:`guest.workreport.REPORT` first).

    :param reports: the reports as received (untrusted).
    :param expected: what each cgroup was set up with.
    :param node_of_cpu: NUMA node of each CPU (for page locality).
    :param expect_error: a name of :data:`CHECKS` that must fail for the verdict to pass.
    :param exempt: cohorts (or cgroups) whose workers run differently by design (affinities):
        their shares and rates are not compared.
    :param hold_ns: per step, when its ops had taken effect (shares are taken after it).
    :param ops: the op records of a scenario (``ok``, ``op``, ``target``, ``error``): the
        ``ops`` check says every one took effect.
    :param host_pauses: when the host did not run the vCPUs (checked
        :mod:`schedlab_shared.host_pauses` records, with guest times): not the scheduler's.
    :raises ValueError: ``expect_error`` is not a check's name.
    """
    lim = limits or WorkerLimits()
    if expect_error is not None and expect_error not in CHECKS:
        raise ValueError(f"expected error {expect_error!r} is not one of {', '.join(CHECKS)}")
    j = _Judge(reports, expected, lim, node_of_cpu, exempt, hold_ns, host_pauses)
    stats: list[dict[str, Any]] = []
    checks = [j.complete()]
    if ops is not None:
        checks.append(_ops(ops))
    if lim.not_starved:
        checks.append(j.starvation())
    if lim.max_spread is not None:
        checks.append(j.fairness(stats))
    if lim.max_gap_ms is not None:
        checks.append(j.max_gap())
    if lim.isolation:
        checks.append(j.isolation())
    if lim.max_throughput_cv is not None:
        checks.append(j.throughput_cv())
    if lim.min_work_rate is not None:
        m = lim.min_work_rate
        checks.append(
            j._per_seg(
                "work_rate",
                lambda s: _rate(s, "work_units", "cpu_time_ns"),
                lambda v: v >= m,
                "work units per CPU-second",
            )
        )
    if lim.min_iteration_rate is not None:
        m2 = lim.min_iteration_rate
        checks.append(
            j._per_seg(
                "iteration_rate",
                lambda s: _rate(s, "iterations", "wall_time_ns"),
                lambda v: v >= m2,
                "iterations per second",
            )
        )
    if lim.max_p99_wake_latency_ns is not None:
        m3 = lim.max_p99_wake_latency_ns
        checks.append(
            j._per_seg(
                "wake_latency_p99",
                lambda s: s["wake"]["p99_ns"] / 1e3 if s.get("wake") else None,
                lambda v: v * 1e3 <= m3,
                "p99 wake latency",
                " us",
            )
        )
    if lim.max_wake_latency_cv is not None:
        m4 = lim.max_wake_latency_cv
        checks.append(
            j._per_seg(
                "wake_latency_cv",
                lambda s: s["wake"]["cv"] if s.get("wake") else None,
                lambda v: v <= m4,
                "wake latency CV",
            )
        )
    if lim.max_migration_ratio is not None:
        m5 = lim.max_migration_ratio
        checks.append(
            j._per_seg(
                "migration_ratio",
                lambda s: s["migrations"] / max(1, s["iterations"]),
                lambda v: v <= m5,
                "migrations per iteration",
            )
        )
    if lim.min_page_locality is not None:
        checks.append(j.page_locality())
    if lim.max_cross_node_migration_ratio is not None:
        checks.append(j.cross_node())
    return _verdict(checks, stats, expect_error)


def _verdict(checks: list[Check], stats: list[dict[str, Any]], expect: str | None) -> WorkerVerdict:
    failed = [c for c in checks if not c.passed]
    reason = (
        "; ".join(
            f"{c.name}: {c.detail}" + (f" [{c.evidence[0]}]" if c.evidence else "") for c in failed
        )
        or "all checks passed"
    )
    excused = [f"{c.name}: {c.excused[0]}" for c in checks if c.excused and c.passed]
    if excused:
        reason += "; not the scheduler's (host): " + "; ".join(excused)
    if expect is None:
        return WorkerVerdict(not failed, reason, tuple(checks), tuple(stats))
    hit = next((c for c in failed if c.name == expect), None)
    if hit is None:
        listed = any(c.name == expect for c in checks)
        why = "it passed" if listed else "its limit is off"
        return WorkerVerdict(
            False,
            f"expected {expect} to fail, but {why}; {reason}",
            tuple(checks),
            tuple(stats),
            expect,
        )
    others = [c.name for c in failed if c is not hit]
    also = f" (also failed: {', '.join(others)})" if others else ""
    return WorkerVerdict(
        True,
        f"expected failure happened: {expect}: {hit.detail}{also}",
        tuple(checks),
        tuple(stats),
        expect,
    )


def cv(values: Sequence[float]) -> float:
    """Coefficient of variation (0.0 for fewer than two values or a zero mean)."""
    if len(values) < 2:
        return 0.0
    mean = statistics.fmean(values)
    return statistics.pstdev(values) / mean if mean > 0 and math.isfinite(mean) else 0.0
