"""How a cgroup's workers run: work type, scheduling policy, affinity, memory policy; holds.

Each is a small frozen value built with class methods (``SchedPolicy.fifo(10)``,
``Affinity.random_subset(2)``, ``MemPolicy.bind([0])``, ``Hold.frac(0.5)``) and checked when
built. :meth:`to_doc` gives the scenario document's form (:mod:`guest.scenario.document`).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, ClassVar

from guest.scenario import document as doc
from guest.scenario import work as work_contract
from guest.spec import SpecError

from .errors import ScenarioError

__all__ = ("Affinity", "Hold", "MemPolicy", "SchedPolicy", "WorkType")


def _spec_error(e: SpecError, prefix: str) -> ScenarioError:
    """A contract check's error as the model's (its path made relative to ``prefix``)."""
    key = e.key.removeprefix(prefix).lstrip(".")
    return ScenarioError(key, str(e)[len(e.key) + 2 :] if e.key else str(e))


@dataclass(frozen=True)
class WorkType:
    """What each worker runs: a work type of :data:`guest.scenario.work.WORK_TYPES` by
    ``name``, with its ``params`` (checked, defaults filled in, when built).

    >>> WorkType("spin").params["unit_iters"]
    50
    """

    name: str = "spin"
    params: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        try:
            _, checked = work_contract.check_work(self.name, dict(self.params), "work")
        except SpecError as e:
            raise _spec_error(e, "work") from None
        object.__setattr__(self, "params", MappingProxyType(checked))

    @property
    def group(self) -> int:
        """Workers that act together; a worker count must be a multiple of it."""
        return work_contract.group_size(self.name, dict(self.params))

    def to_doc(self) -> dict[str, Any]:
        return {"type": self.name, "params": dict(self.params)}

    def __repr__(self) -> str:
        defaults = work_contract.WORK_TYPES[self.name].check({}, "") if self.name else {}
        given = {k: v for k, v in self.params.items() if defaults.get(k) != v}
        return f"WorkType({self.name!r}{', ' if given else ''}{', '.join(f'{k}={v!r}' for k, v in given.items())})"


@dataclass(frozen=True)
class SchedPolicy:
    """A scheduling class: ``normal`` (SCHED_OTHER), ``batch``, ``idle``, ``fifo``/``rr`` with a
    real-time ``priority`` 1..99, or ``ext`` (SCHED_EXT = 7: the task goes to a sched_ext
    scheduler that runs in partial-switch mode; with none loaded it runs as normal)."""

    cls: str = "normal"
    priority: int = 0

    def __post_init__(self) -> None:
        if self.cls not in doc.POLICY_CLASSES:
            raise ScenarioError(
                "cls", f"{self.cls!r} is not one of {', '.join(doc.POLICY_CLASSES)}"
            )
        rt = self.cls in ("fifo", "rr")
        if rt and not 1 <= self.priority <= 99:
            raise ScenarioError(
                "priority", f"{self.cls} needs a priority in 1..99, got {self.priority}"
            )
        if not rt and self.priority:
            raise ScenarioError("priority", f"{self.cls} takes no priority, got {self.priority}")

    @classmethod
    def normal(cls) -> SchedPolicy:
        return cls("normal")

    @classmethod
    def batch(cls) -> SchedPolicy:
        return cls("batch")

    @classmethod
    def idle(cls) -> SchedPolicy:
        return cls("idle")

    @classmethod
    def fifo(cls, priority: int) -> SchedPolicy:
        return cls("fifo", priority)

    @classmethod
    def rr(cls, priority: int) -> SchedPolicy:
        return cls("rr", priority)

    @classmethod
    def ext(cls) -> SchedPolicy:
        return cls("ext")

    def to_doc(self) -> dict[str, Any]:
        return {"class": self.cls, "priority": self.priority}


def _cpu_list(cpus: Iterable[int], what: str) -> tuple[int, ...]:
    out = tuple(sorted(set(cpus)))
    if any(not isinstance(c, int) or isinstance(c, bool) or c < 0 for c in out):
        raise ScenarioError(what, f"{out!r} holds something not an index")
    return out


@dataclass(frozen=True)
class Affinity:
    """Each worker's CPU affinity (sched_setaffinity), worked out in the guest against its
    cgroup's cpuset at the moment it is applied (all usable CPUs when it has none):

    ``inherit``: left alone; ``random_subset(count)``: ``count`` CPUs drawn for each worker
    (from the scenario's seed); ``llc_aligned``: worker i gets the CPUs of the i-th LLC that
    the cpuset touches; ``cross_cgroup``: every usable CPU, crossing the cpuset (the kernel
    narrows it to the cpuset while one is set); ``single_cpu``: worker i gets the i-th CPU;
    ``exact(cpus)``: these CPUs for every worker.
    """

    kind: str = "inherit"
    cpus: tuple[int, ...] = ()
    count: int = 0

    def __post_init__(self) -> None:
        if self.kind not in doc.AFFINITY_KINDS:
            raise ScenarioError(
                "kind", f"{self.kind!r} is not one of {', '.join(doc.AFFINITY_KINDS)}"
            )
        object.__setattr__(self, "cpus", _cpu_list(self.cpus, "cpus"))
        if self.kind == "exact" and not self.cpus:
            raise ScenarioError("cpus", "an exact affinity needs at least one CPU")
        if self.kind != "exact" and self.cpus:
            raise ScenarioError("cpus", f"only an exact affinity lists CPUs, not {self.kind}")
        if self.kind == "random_subset" and not 1 <= self.count <= doc.MAX_CPUS:
            raise ScenarioError(
                "count", f"random_subset needs 1..{doc.MAX_CPUS} CPUs, got {self.count}"
            )
        if self.kind != "random_subset" and self.count:
            raise ScenarioError("count", f"only random_subset takes a count, not {self.kind}")

    @classmethod
    def inherit(cls) -> Affinity:
        return cls("inherit")

    @classmethod
    def random_subset(cls, count: int) -> Affinity:
        return cls("random_subset", count=count)

    @classmethod
    def llc_aligned(cls) -> Affinity:
        return cls("llc_aligned")

    @classmethod
    def cross_cgroup(cls) -> Affinity:
        return cls("cross_cgroup")

    @classmethod
    def single_cpu(cls) -> Affinity:
        return cls("single_cpu")

    @classmethod
    def exact(cls, cpus: Iterable[int]) -> Affinity:
        return cls("exact", cpus=tuple(cpus))

    def check(self, nr_cpus: int) -> None:
        bad = [c for c in self.cpus if c >= nr_cpus]
        if bad:
            raise ScenarioError("cpus", f"CPU {bad[0]} is outside the topology ({nr_cpus} CPUs)")

    def to_doc(self) -> dict[str, Any]:
        return {"kind": self.kind, "cpus": list(self.cpus), "count": self.count}


@dataclass(frozen=True)
class MemPolicy:
    """The workers' NUMA memory policy (set_mempolicy(2), applied by each worker itself):
    ``default``, ``local``, ``preferred(node)``, or ``bind``/``interleave``/``preferred_many``/
    ``weighted_interleave`` over ``nodes``; ``flags`` from ``static_nodes``,
    ``relative_nodes``, ``numa_balancing``."""

    mode: str = "default"
    nodes: tuple[int, ...] = ()
    flags: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.mode not in doc.MEMPOLICY_MODES:
            raise ScenarioError(
                "mode", f"{self.mode!r} is not one of {', '.join(doc.MEMPOLICY_MODES)}"
            )
        object.__setattr__(self, "nodes", _cpu_list(self.nodes, "nodes"))
        object.__setattr__(self, "flags", tuple(self.flags))
        try:
            doc._mempolicy(self.to_doc(), "mempolicy", {"nodes": [[0]] * doc.MAX_CPUS})
        except SpecError as e:
            raise _spec_error(e, "mempolicy") from None

    @classmethod
    def default(cls) -> MemPolicy:
        return cls("default")

    @classmethod
    def local(cls) -> MemPolicy:
        return cls("local")

    @classmethod
    def preferred(cls, node: int, flags: Iterable[str] = ()) -> MemPolicy:
        return cls("preferred", (node,), tuple(flags))

    @classmethod
    def bind(cls, nodes: Iterable[int], flags: Iterable[str] = ()) -> MemPolicy:
        return cls("bind", tuple(nodes), tuple(flags))

    @classmethod
    def interleave(cls, nodes: Iterable[int], flags: Iterable[str] = ()) -> MemPolicy:
        return cls("interleave", tuple(nodes), tuple(flags))

    @classmethod
    def preferred_many(cls, nodes: Iterable[int], flags: Iterable[str] = ()) -> MemPolicy:
        return cls("preferred_many", tuple(nodes), tuple(flags))

    @classmethod
    def weighted_interleave(cls, nodes: Iterable[int], flags: Iterable[str] = ()) -> MemPolicy:
        return cls("weighted_interleave", tuple(nodes), tuple(flags))

    def check(self, nr_nodes: int) -> None:
        bad = [n for n in self.nodes if n >= nr_nodes]
        if bad:
            raise ScenarioError(
                "nodes", f"node {bad[0]} is outside the topology ({nr_nodes} nodes)"
            )

    def to_doc(self) -> dict[str, Any]:
        return {"mode": self.mode, "nodes": list(self.nodes), "flags": list(self.flags)}


@dataclass(frozen=True)
class Hold:
    """How long a step lasts once its ops are applied: ``frac(f)`` of the scenario's
    duration, ``fixed(seconds)``, or ``loop(interval_s)``: re-apply the step's ops every
    interval until the scenario's duration (counted from its start) is used up."""

    kind: str
    value: float
    FULL: ClassVar[Hold]  #: the whole duration, ``Hold.frac(1.0)``

    def __post_init__(self) -> None:
        v = self.value
        if self.kind not in doc.HOLD_KINDS:
            raise ScenarioError("kind", f"{self.kind!r} is not one of {', '.join(doc.HOLD_KINDS)}")
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
            raise ScenarioError("value", f"{v!r} is not a finite number")
        if self.kind == "frac" and not 0 < v <= 100:
            raise ScenarioError("value", f"fraction {v!r} is outside (0, 100]")
        if self.kind == "fixed" and not 0 <= v <= doc.MAX_DURATION_S:
            raise ScenarioError("value", f"{v!r} s is outside [0, {doc.MAX_DURATION_S:g}]")
        if self.kind == "loop" and not 0 < v <= doc.MAX_DURATION_S:
            raise ScenarioError("value", f"interval {v!r} s is outside (0, {doc.MAX_DURATION_S:g}]")
        object.__setattr__(self, "value", float(v))

    @classmethod
    def frac(cls, f: float) -> Hold:
        return cls("frac", f)

    @classmethod
    def fixed(cls, seconds: float) -> Hold:
        return cls("fixed", seconds)

    @classmethod
    def loop(cls, interval_s: float) -> Hold:
        return cls("loop", interval_s)

    def planned_s(self, duration_s: float, elapsed_s: float) -> float:
        """Seconds this hold lasts when the scenario has run ``elapsed_s`` already."""
        if self.kind == "frac":
            return self.value * duration_s
        if self.kind == "fixed":
            return self.value
        return max(0.0, duration_s - elapsed_s)

    def to_doc(self) -> dict[str, Any]:
        return {"kind": self.kind, "value": self.value}


Hold.FULL = Hold.frac(1.0)
