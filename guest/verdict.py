"""A guest-side pass/fail verdict over workers' reports (the old cgroup-spinners judge).

The host judges runs now (:mod:`verdicts.workers`, from the reports of
:mod:`guest.workreport`); the cgroup-spinners run no longer uses this module. It stays while
the scenario runner's end-of-run judge (``guest.scenario.judge``) still calls it.

Checks, each reported with its numbers:

``complete``
    every spawned worker reported, without error.
``starvation``
    no worker finished with ``work_units == 0``.
``fairness``
    within each cgroup, ``(max - min) / max`` of the workers' ``cpu_time_ns`` is at most
    the spec's ``fairness``.
``max_gap``
    (only when the spec's ``max_gap_ms > 0``) no worker saw a longer wall-clock gap between
    two consecutive work checkpoints.
"""

from __future__ import annotations

from collections import namedtuple

TYPE_CHECKING = False  # typing and dataclasses cost ~1.5 s of guest startup under TCG
if TYPE_CHECKING:
    from collections.abc import Mapping
    from typing import Any

__all__ = ("CgroupStats", "Check", "Verdict", "WorkerReport", "judge", "spread")


class WorkerReport(
    namedtuple("WorkerReport", "cgroup pid work_units cpu_time_ns max_gap_ms error", defaults=("",))
):
    """What one worker reports at its end (immutable).

    :param cgroup: cgroup name (``cg0`` ...).
    :param pid: worker pid.
    :param work_units: fixed work units completed.
    :param cpu_time_ns: the worker's own CPU time over the run.
    :param max_gap_ms: longest wall-clock gap between consecutive checkpoints.
    :param error: non-empty when the worker failed (then the numbers are partial).
    """

    __slots__ = ()
    cgroup: str
    pid: int
    work_units: int
    cpu_time_ns: int
    max_gap_ms: float
    error: str

    @classmethod
    def from_map(cls, m: Any) -> WorkerReport:
        """Build from a decoded msgpack map, checking field types.

        :raises ValueError: not a map, a missing field or a mistyped one.
        """
        if not isinstance(m, dict):
            raise ValueError(f"worker report is {type(m).__name__}, not a map")
        want = {"cgroup": str, "pid": int, "work_units": int, "cpu_time_ns": int}
        for name, typ in want.items():
            if not isinstance(m.get(name), typ) or isinstance(m.get(name), bool):
                raise ValueError(f"worker report field {name!r} is {m.get(name)!r}")
        gap, err = m.get("max_gap_ms"), m.get("error", "")
        if not isinstance(gap, (int, float)) or isinstance(gap, bool) or not isinstance(err, str):
            raise ValueError(f"worker report max_gap_ms/error: {gap!r}/{err!r}")
        return cls(m["cgroup"], m["pid"], m["work_units"], m["cpu_time_ns"], float(gap), err)

    def as_map(self) -> dict[str, Any]:
        """Plain map (the pipe and RESULT frame format)."""
        return dict(self._asdict())


#: One named check and its outcome: ``name: str``, ``passed: bool``, ``detail: str``.
Check = namedtuple("Check", "name passed detail")

#: CPU-time figures of one cgroup's workers.
CgroupStats = namedtuple("CgroupStats", "cgroup workers min_cpu_ns max_cpu_ns spread work_units")


class Verdict(namedtuple("Verdict", "passed reason checks cgroups")):
    """The scenario's outcome: ``passed`` is true iff every check passed.

    :param checks: list of :data:`Check`.
    :param cgroups: list of :data:`CgroupStats`.
    """

    __slots__ = ()

    def as_payload(self) -> dict[str, Any]:
        """Fields for the RESULT frame: passed, reason, verdicts, cgroups."""
        return {
            "passed": self.passed,
            "reason": self.reason,
            "verdicts": [dict(c._asdict()) for c in self.checks],
            "cgroups": [dict(c._asdict()) for c in self.cgroups],
        }


def spread(values: list[int]) -> float:
    """Relative spread ``(max - min) / max``; 0.0 for no values or an all-zero max.

    >>> spread([50, 100])
    0.5
    """
    if not values or max(values) <= 0:
        return 0.0
    return (max(values) - min(values)) / max(values)


def _complete(expected: Mapping[str, int], reports: list[WorkerReport]) -> Check:
    problems = []
    for cg, n in sorted(expected.items()):
        got = sum(1 for r in reports if r.cgroup == cg)
        if got < n:
            problems.append(f"{cg}: {n - got} of {n} workers did not report")
    problems += [f"{r.cgroup}/pid {r.pid}: {r.error}" for r in reports if r.error]
    total = sum(expected.values())
    if problems:
        return Check("complete", False, "; ".join(problems))
    return Check("complete", True, f"{len(reports)} of {total} workers reported")


def _starvation(reports: list[WorkerReport]) -> Check:
    starved = [f"{r.cgroup}/pid {r.pid}" for r in reports if r.work_units == 0]
    if starved:
        return Check("starvation", False, f"starved (0 work units): {', '.join(starved)}")
    least = min((r.work_units for r in reports), default=0)
    return Check("starvation", True, f"every worker progressed (min {least} work units)")


def _cgroup_stats(reports: list[WorkerReport]) -> list[CgroupStats]:
    out = []
    for cg in sorted({r.cgroup for r in reports}):
        cpu = [r.cpu_time_ns for r in reports if r.cgroup == cg]
        units = sum(r.work_units for r in reports if r.cgroup == cg)
        out.append(CgroupStats(cg, len(cpu), min(cpu), max(cpu), spread(cpu), units))
    return out


def _fairness(stats: list[CgroupStats], limit: float) -> Check:
    bad = [s for s in stats if s.spread > limit]
    figures = ", ".join(f"{s.cgroup} {s.spread:.3f}" for s in stats)
    if bad:
        worst = ", ".join(
            f"{s.cgroup} spread {s.spread:.3f} (cpu {s.min_cpu_ns}..{s.max_cpu_ns} ns)" for s in bad
        )
        return Check("fairness", False, f"spread > {limit}: {worst}")
    return Check("fairness", True, f"spread <= {limit}: {figures}")


def _max_gap(reports: list[WorkerReport], limit_ms: float) -> Check:
    bad = [r for r in reports if r.max_gap_ms > limit_ms]
    if bad:
        worst = ", ".join(f"{r.cgroup}/pid {r.pid} {r.max_gap_ms:.1f} ms" for r in bad)
        return Check("max_gap", False, f"gap > {limit_ms} ms: {worst}")
    top = max((r.max_gap_ms for r in reports), default=0.0)
    return Check("max_gap", True, f"largest gap {top:.1f} ms <= {limit_ms} ms")


def judge(
    reports: list[WorkerReport],
    expected: Mapping[str, int],
    fairness: float,
    max_gap_ms: float = 0.0,
) -> Verdict:
    """Judge a run.

    :param reports: one report per worker that reported.
    :param expected: workers spawned per cgroup name.
    :param fairness: largest allowed per-cgroup CPU-time spread.
    :param max_gap_ms: largest allowed checkpoint gap; 0 disables the check.
    :return: the verdict; ``reason`` joins the details of the failed checks.
    """
    stats = _cgroup_stats(reports)
    checks = [_complete(expected, reports), _starvation(reports), _fairness(stats, fairness)]
    if max_gap_ms > 0:
        checks.append(_max_gap(reports, max_gap_ms))
    failed = [c for c in checks if not c.passed]
    reason = "; ".join(f"{c.name}: {c.detail}" for c in failed) or "all checks passed"
    return Verdict(not failed, reason, checks, stats)
