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

__all__ = ("WorkerLimits", "WorkerLimitError", "resolve_worker_limits")


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
    :param min_window_ms: below this common window, shares are taken over each worker's
        whole segment instead.
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
    min_window_ms: float = 200.0

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


def resolve_worker_limits(
    scheduler: Mapping[str, Any] | None = None, test: Mapping[str, Any] | None = None
) -> WorkerLimits:
    """The defaults, then the scheduler's overrides, then the test's."""
    return WorkerLimits().with_overrides(scheduler).with_overrides(test)
