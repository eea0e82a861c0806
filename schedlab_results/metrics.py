"""The metrics a sidecar carries (ktstr's list, KTSTR.md §1.7), derived from ``result.json``.

Each metric has ktstr's default gates: a change is significant only when it clears both
the absolute gate (in the metric's unit) and the relative one (a fraction of the baseline).
A metric the run could not measure (no wake-latency work type, no NUMA) is ``None``.

Sources: ``workers`` (work_units, max_gap_ms), ``guest.result.cgroups`` (spread), the
scenario's hold-phase segments (migrations, run delay, wake latency), ``monitor.samples``
after the warm-up (nr_running, local DSQ depth), ``monitor.violations`` (stalls) and
``monitor.events`` (fallback, keep-last totals).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

__all__ = ("METRICS", "Metric", "derive")


@dataclass(frozen=True)
class Metric:
    name: str
    abs_gate: float
    rel_gate: float
    higher_better: bool = False
    unit: str = ""
    doc: str = ""


METRICS: dict[str, Metric] = {
    m.name: m
    for m in (
        Metric("worst_spread", 5, 0.25, unit="%", doc="largest CPU-time spread of a cgroup"),
        Metric("worst_gap_ms", 500, 0.5, unit="ms", doc="longest scheduling gap of a worker"),
        Metric("total_migrations", 10, 0.3, doc="migrations of all workers (hold phases)"),
        Metric("worst_migration_ratio", 0.05, 0.2, doc="most migrations per work unit"),
        Metric("max_imbalance_ratio", 1, 0.25, doc="max(nr_running)/max(1,min) over samples"),
        Metric("max_dsq_depth", 10, 0.5, doc="deepest local DSQ seen"),
        Metric("stall_count", 1, 0.5, doc="sustained rq_clock stalls the monitor found"),
        Metric("total_fallback", 5, 0.3, doc="SCX_EV_SELECT_CPU_FALLBACK total"),
        Metric("total_keep_last", 5, 0.3, doc="SCX_EV_DISPATCH_KEEP_LAST total"),
        Metric("worst_p99_wake_latency_us", 50, 0.25, unit="us", doc="highest wake p99"),
        Metric("worst_median_wake_latency_us", 20, 0.25, unit="us", doc="highest wake p50"),
        Metric("worst_wake_latency_cv", 0.1, 0.25, doc="highest wake-latency CV"),
        Metric("total_iterations", 100, 0.1, True, doc="work units of all workers"),
        Metric("worst_mean_run_delay_us", 50, 0.25, unit="us", doc="run delay per timeslice"),
        Metric("worst_run_delay_us", 100, 0.5, unit="us", doc="a worker's total run delay"),
        Metric("worst_wake_latency_tail_ratio", 0.5, 0.25, doc="highest wake p99/p50"),
        Metric("worst_iterations_per_worker", 10, 0.1, True, doc="fewest work units of a worker"),
        Metric("worst_page_locality", 0.05, 0.1, True, doc="NUMA page locality (not measured)"),
        Metric("worst_cross_node_migration_ratio", 0.05, 0.2, doc="NUMA (not measured)"),
    )
}

_DEFAULT_WARMUP_S = 2.0  # verdicts.thresholds' default, when the result does not say


def _max(values: Iterable[float | None]) -> float | None:
    vs = [v for v in values if v is not None]
    return max(vs) if vs else None


def _min(values: Iterable[float | None]) -> float | None:
    vs = [v for v in values if v is not None]
    return min(vs) if vs else None


def _segments(doc: dict[str, Any]) -> list[dict[str, Any]]:
    """Hold-phase segments (the steady state); every segment when no step reached hold."""
    steps = (doc.get("scenario") or {}).get("steps") or []
    segs = [s for st in steps for s in st.get("workers", [])]
    hold = [s for s in segs if s.get("phase") == "hold"]
    return hold or segs


def _judged_samples(doc: dict[str, Any]) -> list[dict[str, Any]]:
    mon = doc.get("monitor") or {}
    samples = [s for s in mon.get("samples") or [] if s.get("cpus")]
    if not samples:
        return []
    thr = (mon.get("checks") or {}).get("thresholds") or {}
    warmup_ms = float(thr.get("warmup_s", _DEFAULT_WARMUP_S)) * 1000
    start = samples[0]["elapsed_ms"]
    kept = [s for s in samples if s["elapsed_ms"] - start >= warmup_ms]
    return kept or samples  # a run shorter than the warm-up: judge what there is


def _per_pid(segs: list[dict[str, Any]], key: str) -> dict[int, float]:
    out: dict[int, float] = defaultdict(float)
    for s in segs:
        if s.get(key) is not None:
            out[s["pid"]] += s[key]
    return out


def _migration_ratio(segs: list[dict[str, Any]]) -> float | None:
    migs, units = _per_pid(segs, "migrations"), _per_pid(segs, "work_units")
    iters = _per_pid(segs, "iterations")
    ratios = []
    for pid, m in migs.items():
        n = iters.get(pid) or units.get(pid)
        if n:
            ratios.append(m / n)
    return _max(ratios)


def _imbalance(samples: list[dict[str, Any]]) -> float | None:
    ratios = []
    for s in samples:
        nr = [c["nr_running"] for c in s["cpus"]]
        ratios.append(max(nr) / max(1, min(nr)))
    return _max(ratios)


def _event_total(doc: dict[str, Any], name: str) -> float | None:
    ev = ((doc.get("monitor") or {}).get("events") or {}).get(name)
    return float(ev["total"]) if isinstance(ev, dict) and "total" in ev else None


def _us(ns: float | None) -> float | None:
    return None if ns is None else ns / 1000.0


def _tail_ratio(s: dict[str, Any]) -> float | None:
    p50, p99 = s.get("wake_p50_ns"), s.get("wake_p99_ns")
    return p99 / p50 if p50 and p99 is not None else None


def derive(doc: dict[str, Any]) -> dict[str, float | None]:
    """Every metric of :data:`METRICS` from a checked result document (None: not measured)."""
    workers = doc.get("workers") or []
    units = [w.get("work_units") for w in workers]
    cgroups = ((doc.get("guest") or {}).get("result") or {}).get("cgroups") or []
    segs = _segments(doc)
    samples = _judged_samples(doc)
    violations = (doc.get("monitor") or {}).get("violations") or []
    seg = lambda key: [s.get(key) for s in segs]  # noqa: E731
    has_monitor = bool(samples)
    rules: dict[str, Callable[[], float | None]] = {
        "worst_spread": lambda: _max(c.get("spread", 0) * 100 for c in cgroups),
        "worst_gap_ms": lambda: _max(w.get("max_gap_ms") for w in workers),
        "total_migrations": lambda: sum(m for m in seg("migrations") if m) if segs else None,
        "worst_migration_ratio": lambda: _migration_ratio(segs),
        "max_imbalance_ratio": lambda: _imbalance(samples),
        "max_dsq_depth": lambda: _max(c.get("local_dsq_nr") for s in samples for c in s["cpus"]),
        "stall_count": lambda: (
            float(sum(1 for v in violations if v.get("check") == "stall")) if has_monitor else None
        ),
        "total_fallback": lambda: _event_total(doc, "SCX_EV_SELECT_CPU_FALLBACK"),
        "total_keep_last": lambda: _event_total(doc, "SCX_EV_DISPATCH_KEEP_LAST"),
        "worst_p99_wake_latency_us": lambda: _us(_max(seg("wake_p99_ns"))),
        "worst_median_wake_latency_us": lambda: _us(_max(seg("wake_p50_ns"))),
        "worst_wake_latency_cv": lambda: _max(seg("wake_cv")),
        "total_iterations": lambda: float(sum(u for u in units if u)) if workers else None,
        "worst_mean_run_delay_us": lambda: _us(
            _max(s["run_delay_ns"] / max(1, s.get("timeslices", 0)) for s in segs)
        ),
        "worst_run_delay_us": lambda: _us(_max(_per_pid(segs, "run_delay_ns").values())),
        "worst_wake_latency_tail_ratio": lambda: _max(_tail_ratio(s) for s in segs),
        "worst_iterations_per_worker": lambda: _min(units),
        "worst_page_locality": lambda: None,
        "worst_cross_node_migration_ratio": lambda: None,
    }
    assert rules.keys() == METRICS.keys(), "a metric without a rule"
    out: dict[str, float | None] = {}
    for name, rule in rules.items():
        v = rule()
        out[name] = None if v is None else round(float(v), 6)
    return out
