"""What workers' reports must meet (ktstr's checks, KTSTR.md 1.5) and how it is overridden.

The chain is the defaults, then the scheduler's overrides, then the test's; the last one set
wins, and ``None`` turns a check off (or keeps the value below it, in an override map).

>>> resolve_worker_limits({"max_gap_ms": 3000.0}, {"max_spread": 0.25}).max_spread
0.25
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

__all__ = ("TCG", "WorkerLimits", "WorkerLimitError", "resolve_worker_limits")


class WorkerLimitError(ValueError):
    """An override names no limit, or gives it a value of the wrong kind or range."""


@dataclass(frozen=True)
class WorkerLimits:
    """Limits on the workers of a run; a ``None`` check is off.

    :param not_starved: fail a worker that finished with no work unit.
    :param max_spread: within one cgroup and step, the largest allowed difference between
        the workers' off-CPU shares (ktstr's fairness; 0.15 is 15 percentage points).
    :param max_gap_ms: the longest allowed time between a worker's two checkpoints.
    :param isolation: fail a worker seen on a CPU outside its cgroup's cpuset.
    :param max_throughput_cv: coefficient of variation of work units per CPU-second across
        a cgroup's workers.
    :param min_work_rate: work units per CPU-second every worker must reach.
    :param max_p99_wake_latency_ns: p99 wake latency of any worker.
    :param max_wake_latency_cv: coefficient of variation of one worker's wake latencies.
    :param min_iteration_rate: iterations per wall-clock second every worker must reach.
    :param max_migration_ratio: CPU migrations per iteration.
    :param min_page_locality: share of a worker's resident pages on the NUMA nodes of the
        CPUs it ran on.
    :param max_cross_node_migration_ratio: pages migrated between nodes (``numa_pages_migrated``)
        per resident page.
    :param warmup_ms: the start of each step not used for the shares and rates (workers
        start, fault in and spread over the CPUs).
    :param min_window_ms: a shorter common window (after the warm-up) is too short to judge
        shares: fairness and throughput skip it, saying so.
    :param spread_noise: how much the share spread of a correct scheduler wanders over a
        one-second window on this machine: the fairness limit of a window of ``w`` seconds is
        ``max_spread + spread_noise / sqrt(w)`` (0 on hardware; see :data:`TCG`).
    """

    not_starved: bool = True
    max_spread: float | None = 0.15
    max_gap_ms: float | None = 2000.0
    isolation: bool = False
    max_throughput_cv: float | None = None
    min_work_rate: float | None = None
    max_p99_wake_latency_ns: float | None = None
    max_wake_latency_cv: float | None = None
    min_iteration_rate: float | None = None
    max_migration_ratio: float | None = None
    min_page_locality: float | None = None
    max_cross_node_migration_ratio: float | None = None
    warmup_ms: float = 250.0
    min_window_ms: float = 500.0
    spread_noise: float = 0.0

    def spread_limit(self, window_s: float) -> float | None:
        """The fairness limit over a common window of ``window_s`` seconds."""
        if self.max_spread is None:
            return None
        return self.max_spread + self.spread_noise / max(window_s, 1e-3) ** 0.5

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            v = getattr(self, f.name)
            if f.type == "bool":
                if not isinstance(v, bool):
                    raise WorkerLimitError(f"limit {f.name}: {v!r} is not true/false")
            elif v is None and "None" in str(f.type):
                continue
            elif isinstance(v, bool) or not isinstance(v, int | float) or not v >= 0:
                raise WorkerLimitError(f"limit {f.name}: {v!r} is not a number >= 0")

    def with_overrides(self, overrides: Mapping[str, Any] | None) -> WorkerLimits:
        """A copy with ``overrides`` applied; a value ``None`` turns that check off.

        :raises WorkerLimitError: an unknown name or a bad value.
        """
        if not overrides:
            return self
        names = {f.name for f in dataclasses.fields(self)}
        unknown = sorted(set(overrides) - names)
        if unknown:
            raise WorkerLimitError(
                f"unknown worker limit(s) {', '.join(unknown)}; known: {', '.join(sorted(names))}"
            )
        try:
            return dataclasses.replace(self, **dict(overrides))
        except TypeError as e:  # None for a limit that cannot be off (a bool, warmup_ms)
            raise WorkerLimitError(str(e)) from None

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


#: The defaults' changes for a guest under QEMU's TCG (instructions emulated, vCPU threads
#: sharing a loaded 2-core host). Measured on EEVDF, steady 2x2 spinners on 2 vCPUs: within a
#: cgroup the off-CPU shares of two spinners wander by up to 22 points over a 0.7 s window
#: (1 s runs; the old whole-run CPU-time spread failed 1 run in 5 there) and up to 8 over
#: 1.7 s (2 s runs): the load balancer moves spinners back and forth between 2 CPUs. So the
#: limit widens as ``0.2 / sqrt(window)``: 39 points at 0.7 s, 30 at 1.75 s, 24 at 4.75 s,
#: while a nice-19 worker beside a nice-0 one is ~95 points apart.
#: False failures at the CI settings (``schedlab run --engine qemu --duration 1``, EEVDF,
#: 1,1,2,1, 2026-12-02): 1 in 50 runs (run 43: both cgroups 55-60 points apart over 1.76 s
#: with a 1085 ms gap, the loaded 2-core host). Since the time the host did not run the vCPU
#: threads is left out (schedlab_shared.host_pauses): 0 in 30 runs, spreads median 2.4, max
#: 27.6 points against limits of 31.8-40 (smallest margin 9.6), longest gaps 23-560 ms; 2 of
#: the 30 had a host pause (321 and 326 ms of QEMU's TCG thread not run), one mid-workload,
#: cut from both cgroups' windows and named in the verdict. Under single-threaded TCG one
#: thread runs both vCPUs, so a vCPU its thread ran but QEMU did not (run 43's one-sided
#: spread suggests that) does not show in the thread's run time and is not excused.
TCG: dict[str, Any] = {"spread_noise": 0.2}


def resolve_worker_limits(
    scheduler: Mapping[str, Any] | None = None,
    test: Mapping[str, Any] | None = None,
    *,
    tcg: bool = False,
) -> WorkerLimits:
    """The defaults (with :data:`TCG`'s under TCG), then the scheduler's overrides, then the
    test's."""
    base = WorkerLimits().with_overrides(TCG if tcg else None)
    return base.with_overrides(scheduler).with_overrides(test)
