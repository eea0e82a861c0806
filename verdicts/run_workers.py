"""The workers part of a run's result document, judged from the guest's RESULT facts.

The guest's RESULT carries the workers' reports (``workers``) and, for a scenario, its step
records (``steps``, ``backdrop``: :mod:`guest.scenario.record`), whose segments hold each
worker's figures per step (:data:`guest.workreport.FIGURES` in the record's envelope), the
op records (what took effect, with the cgroups' effective cpusets) and ``fairness_exempt``
(cohorts whose affinities differ by design). Everything is untrusted: what does not fit is
skipped or reported, never raised.

>>> section = workers_section(guest_result, resolve_worker_limits(None, {"max_gap_ms": 500}))
>>> section["passed"], [c["name"] for c in section["verdicts"]]
(True, ['complete', 'ops', 'starvation', 'fairness', 'max_gap'])
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from schedlab_shared.topology import Topology, TopologyError

from .worker_limits import WorkerLimits
from .workers import CgroupExpect, judge_workers

__all__ = ("cpusets_by_step", "expectations", "node_map", "reports_from_steps", "workers_section")

_MAX_CGROUPS = 4096
_MAX_CPU = 4095
_MAX_RECORDS = 1 << 16
# Step-record fields that are figures under another name in guest.workreport.SEGMENT.
_CPUSET_OPS = ("set_cpuset", "clear_cpuset", "swap_cpusets")
_COPY = (
    "cpus", "max_gap_cpu", "wake", "run_delay_ns", "timeslices", "timeline", "numa_pages",
    "numa_pages_migrated", "extra", "cohort", "t0_ns", "phase",
)  # fmt: skip


def _cpuset(v: Any) -> frozenset[int] | None:
    if not isinstance(v, list):
        return None
    return frozenset(c for c in v[: _MAX_CPU + 1] if isinstance(c, int) and 0 <= c <= _MAX_CPU)


def _int(v: Any, default: int = 0) -> int:
    return v if isinstance(v, int) and not isinstance(v, bool) and v >= 0 else default


def _segment(rec: dict[str, Any]) -> dict[str, Any]:
    """A step record's segment as a :data:`guest.workreport.SEGMENT` (checked by the judge)."""
    wall, cpu = _int(rec.get("wall_ns")), _int(rec.get("cpu_ns"))
    start = _int(rec.get("start_ns"))
    gap_ms = rec.get("max_gap_ms", 0.0)
    gap_ns = rec.get("max_gap_ns")
    if not isinstance(gap_ns, int):
        gap_ns = int(gap_ms * 1e6) if isinstance(gap_ms, int | float) and gap_ms >= 0 else 0
    units = _int(rec.get("work_units"))
    out: dict[str, Any] = {
        "step": _int(rec.get("step")),
        "start_ns": start,
        "end_ns": _int(rec.get("end_ns"), start + wall),
        "wall_time_ns": wall,
        "cpu_time_ns": cpu,
        "off_cpu_ns": max(0, wall - cpu),
        "work_units": units,
        "iterations": _int(rec.get("iterations"), units),
        "migrations": _int(rec.get("migrations")),
        "cpus": [],
        "max_gap_ns": gap_ns,
        "max_gap_cpu": -1,
        "max_gap_at_ns": _int(rec.get("max_gap_at_ns"), start),
    }
    out.update({k: rec[k] for k in _COPY if k in rec})
    return out


def reports_from_steps(guest_result: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The workers' reports with their segments from the step records (a scenario's RESULT),
    or the reports as sent when they carry their own segments."""
    reports = guest_result.get("workers")
    reports = (
        [r for r in reports[:_MAX_RECORDS] if isinstance(r, dict)]
        if isinstance(reports, list)
        else []
    )
    steps = guest_result.get("steps")
    if not isinstance(steps, list) or any("segments" in r for r in reports):
        return reports
    by_pid: dict[int, list[dict[str, Any]]] = {}
    kind: dict[int, str] = {}
    for st in steps[:_MAX_RECORDS]:
        for rec in (st.get("workers") or [])[:_MAX_RECORDS] if isinstance(st, dict) else []:
            if isinstance(rec, dict) and isinstance(rec.get("pid"), int):
                by_pid.setdefault(rec["pid"], []).append(_segment(rec))
                kind[rec["pid"]] = str(rec.get("work", ""))[:64]
    out = []
    for r in reports:
        pid = r.get("pid")
        segs = by_pid.get(pid, []) if isinstance(pid, int) else []
        extra = {"kind": kind[pid]} if isinstance(pid, int) and pid in kind else {}
        out.append({**r, **extra, "segments": segs[:64]} if segs else {**r, **extra})
    return out


def _ancestor(state: dict[str, frozenset[int] | None], name: str) -> frozenset[int] | None:
    """A cgroup's effective cpuset: its own, else its nearest ancestor's (cgroup v2)."""
    while name:
        if state.get(name) is not None:
            return state[name]
        name = name.rpartition("/")[0]
    return None


def _apply(rec: Any, state: dict[str, frozenset[int] | None]) -> set[str]:
    """One op record's effect on the cgroups' cpusets; returns the cgroups it changed."""
    if not isinstance(rec, dict) or not rec.get("ok"):
        return set()
    op, target = rec.get("op"), str(rec.get("target", ""))
    d = rec.get("detail")
    detail: dict[str, Any] = d if isinstance(d, dict) else {}
    if op == "add_cgroup":
        state[target] = _cpuset(detail.get("effective"))
    elif op in ("set_cpuset", "clear_cpuset"):
        state[target] = _cpuset(detail.get("effective"))
        return {target}
    elif op == "swap_cpusets":
        a, _, b = target.partition(" <-> ")
        state[a], state[b] = _cpuset(detail.get("a")), _cpuset(detail.get("b"))
        return {a, b}
    elif op == "remove_cgroup":
        state.pop(target, None)
    return set()


def cpusets_by_step(guest_result: Mapping[str, Any]) -> dict[str, CgroupExpect]:
    """Each cgroup's cpuset per step, from the op records' effective CPUs. In a step whose
    ops changed a cgroup's cpuset, both the old and the new CPUs are its cpuset (its workers
    moved while the op took effect)."""
    state: dict[str, frozenset[int] | None] = {}
    backdrop = guest_result.get("backdrop")
    for rec in (backdrop.get("ops") or []) if isinstance(backdrop, dict) else []:
        _apply(rec, state)
    per: dict[str, dict[int, frozenset[int] | None]] = {}
    steps = guest_result.get("steps")
    for i, st in enumerate(steps[:_MAX_RECORDS] if isinstance(steps, list) else []):
        before = {n: _ancestor(state, n) for n in state}
        changed: set[str] = set()
        for rec in (st.get("ops") or []) if isinstance(st, dict) else []:
            changed |= _apply(rec, state)
        for name in list(state)[:_MAX_CGROUPS]:
            now = _ancestor(state, name)
            old = before.get(name)
            moved = any(name == c or name.startswith(c + "/") for c in changed)
            allowed = now | old if moved and now is not None and old is not None else now
            per.setdefault(name, {})[i] = None if moved and old is None else allowed
    return {n: CgroupExpect(0, None, steps_) for n, steps_ in per.items()}


def expectations(
    guest_result: Mapping[str, Any], reports: list[dict[str, Any]]
) -> dict[str, CgroupExpect]:
    """Each cgroup's worker count and cpusets: from the facts' ``cgroups`` list (the
    cgroup-spinners shape), else the reports themselves and the op records."""
    out: dict[str, CgroupExpect] = {}
    for cg in (guest_result.get("cgroups") or [])[:_MAX_CGROUPS]:
        if isinstance(cg, dict) and isinstance(cg.get("cgroup"), str):
            n = _int(cg.get("workers"))
            out[cg["cgroup"]] = CgroupExpect(n, _cpuset(cg.get("cpus")))
    if out:
        return out
    sets = cpusets_by_step(guest_result)
    counts: dict[str, int] = {}
    for r in reports:
        if isinstance(r.get("cgroup"), str):
            counts[r["cgroup"]] = counts.get(r["cgroup"], 0) + 1
    for name in set(counts) | set(sets):
        e = sets.get(name)
        out[name] = CgroupExpect(counts.get(name, 0), None, dict(e.step_cpus) if e else {})
    return out


def node_map(topology: Mapping[str, Any]) -> dict[int, int] | None:
    """CPU -> NUMA node of a result's topology, None for a single node or no topology."""
    try:
        topo = Topology(**{k: int(topology[k]) for k in ("nodes", "llcs", "cores", "threads")})
    except (KeyError, TypeError, ValueError, TopologyError):
        return None
    if topo.nodes < 2:
        return None
    return {c.index: c.node for c in topo.cpus()}


def _ops(guest_result: Mapping[str, Any]) -> list[dict[str, Any]] | None:
    steps, backdrop = guest_result.get("steps"), guest_result.get("backdrop")
    if not isinstance(steps, list):
        return None
    recs = list((backdrop.get("ops") or []) if isinstance(backdrop, dict) else [])
    for st in steps[:_MAX_RECORDS]:
        recs += (st.get("ops") or []) if isinstance(st, dict) else []
    return [r for r in recs[:_MAX_RECORDS] if isinstance(r, dict)]


def _holds(guest_result: Mapping[str, Any]) -> dict[int, int]:
    steps = guest_result.get("steps")
    return {
        i: _int(st.get("hold_ns"))
        for i, st in enumerate(steps[:_MAX_RECORDS] if isinstance(steps, list) else [])
        if isinstance(st, dict)
    }


def workers_section(
    guest_result: Mapping[str, Any] | None,
    limits: WorkerLimits | None = None,
    topology: Mapping[str, Any] | None = None,
    expect_error: str | None = None,
    host_pauses: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """``passed``, ``reason``, ``verdicts``, ``cgroups``, ``limits`` of the workers.

    :param host_pauses: when the host did not run the vCPUs (``result.json``'s
        ``host_pauses.pauses``, :mod:`schedlab_shared.host_pauses`): not judged against the
        scheduler.

    Without a RESULT there is nothing to judge: ``passed`` is False and ``reason`` says so.
    """
    lim = limits or WorkerLimits()
    if not isinstance(guest_result, Mapping):
        return {
            "passed": False, "reason": "no worker reports (the guest sent no result)",
            "verdicts": [], "cgroups": [], "limits": lim.to_dict(), "expected_error": expect_error,
        }  # fmt: skip
    reports = reports_from_steps(guest_result)
    exempt = guest_result.get("fairness_exempt")
    verdict = judge_workers(
        reports,
        expectations(guest_result, reports),
        lim,
        node_map(topology or {}),
        expect_error,
        exempt=frozenset(str(x) for x in exempt[:_MAX_CGROUPS])
        if isinstance(exempt, list)
        else frozenset(),
        hold_ns=_holds(guest_result),
        ops=_ops(guest_result),
        host_pauses=host_pauses or (),
    )
    return {**verdict.as_map(), "limits": lim.to_dict()}
