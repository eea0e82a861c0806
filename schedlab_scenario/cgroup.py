"""A cgroup definition: name, cpuset, workers and how they run."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from guest.scenario import document as doc
from guest.spec import SpecError
from schedlab_shared.topology import Topology

from .cpuset import Cpuset
from .errors import ScenarioError
from .placement import Affinity, MemPolicy, SchedPolicy, WorkType

__all__ = ("CgroupDef", "Resolver", "WorkerSpec", "check_type", "cgroup_name")


@dataclass(frozen=True)
class Resolver:
    """What a scenario is resolved against: the VM's ``topology`` and the run's default
    ``workers`` per cgroup (a :class:`CgroupDef` or spawn with ``workers=None`` takes it)."""

    topology: Topology
    workers: int = 2


def check_type(value: Any, want: type, name: str, hint: str = "") -> None:
    if not isinstance(value, want):
        extra = f" ({hint})" if hint else ""
        raise ScenarioError(name, f"is {type(value).__name__}, want {want.__name__}{extra}")


def cgroup_name(name: Any, field_name: str = "name") -> str:
    try:
        return doc.check_cgroup_name(name, field_name)
    except SpecError as e:
        raise ScenarioError(field_name, str(e)[len(e.key) + 2 :]) from None


@dataclass(frozen=True)
class WorkerSpec:
    """Workers and how they run: the part a :class:`CgroupDef` and ``Op.spawn`` share.

    :param workers: how many; None takes the run's workers per cgroup (default 2).
    """

    workers: int | None = None
    work: WorkType = field(default_factory=WorkType)
    policy: SchedPolicy = field(default_factory=SchedPolicy)
    nice: int = 0
    affinity: Affinity = field(default_factory=Affinity)
    mempolicy: MemPolicy = field(default_factory=MemPolicy)

    def __post_init__(self) -> None:
        check_type(self.work, WorkType, "work", "e.g. WorkType('spin')")
        check_type(self.policy, SchedPolicy, "policy", "e.g. SchedPolicy.fifo(10)")
        check_type(self.affinity, Affinity, "affinity", "e.g. Affinity.single_cpu()")
        check_type(self.mempolicy, MemPolicy, "mempolicy", "e.g. MemPolicy.bind([0])")
        if self.workers is not None:
            if isinstance(self.workers, bool) or not isinstance(self.workers, int):
                raise ScenarioError("workers", f"is {type(self.workers).__name__}, want an integer")
            self._check_workers(self.workers)
        if (
            isinstance(self.nice, bool)
            or not isinstance(self.nice, int)
            or not -20 <= self.nice <= 19
        ):
            raise ScenarioError("nice", f"{self.nice!r} is outside -20..19")
        if self.nice and self.policy.cls in ("fifo", "rr"):
            raise ScenarioError("nice", f"a {self.policy.cls} policy takes no nice value")

    def _check_workers(self, n: int) -> None:
        if n < 1:
            raise ScenarioError("workers", f"{n} workers; at least 1 is needed")
        if n > doc.MAX_WORKERS:
            raise ScenarioError("workers", f"{n} workers > {doc.MAX_WORKERS}")
        group = self.work.group
        if n % group:
            raise ScenarioError(
                "workers", f"{n} is not a multiple of {self.work.name}'s group of {group} workers"
            )

    def workers_doc(self, res: Resolver) -> dict[str, Any]:
        n = self.workers if self.workers is not None else res.workers
        self._check_workers(n)
        self.affinity.check(res.topology.nr_cpus)
        self.mempolicy.check(res.topology.nodes)
        return {
            "workers": n,
            "work": self.work.to_doc(),
            "policy": self.policy.to_doc(),
            "nice": self.nice,
            "affinity": self.affinity.to_doc(),
            "mempolicy": self.mempolicy.to_doc(),
        }


@dataclass(frozen=True)
class CgroupDef(WorkerSpec):
    """A cgroup under ``/sys/fs/cgroup/schedlab`` and the workers it runs.

    >>> CgroupDef("cg_0", cpuset=Cpuset.llc(0), workers=4).name
    'cg_0'

    :param name: ``cg_0``, or a nested path ``cg_0/sub`` (its parent must exist first).
    :param cpuset: a :class:`~schedlab_scenario.cpuset.Cpuset` spec, or None for all CPUs.
    """

    name: str = ""
    cpuset: Cpuset | None = None

    def __init__(
        self,
        name: str,
        cpuset: Cpuset | None = None,
        workers: int | None = None,
        work: WorkType | None = None,
        policy: SchedPolicy | None = None,
        nice: int = 0,
        affinity: Affinity | None = None,
        mempolicy: MemPolicy | None = None,
    ) -> None:
        # Written out so the name comes first positionally; the checks stay in __post_init__.
        set_ = object.__setattr__
        set_(self, "name", name)
        set_(self, "cpuset", cpuset)
        set_(self, "workers", workers)
        set_(self, "work", work if work is not None else WorkType())
        set_(self, "policy", policy if policy is not None else SchedPolicy())
        set_(self, "nice", nice)
        set_(self, "affinity", affinity if affinity is not None else Affinity())
        set_(self, "mempolicy", mempolicy if mempolicy is not None else MemPolicy())
        self.__post_init__()

    def __post_init__(self) -> None:
        cgroup_name(self.name)
        if self.cpuset is not None:
            check_type(self.cpuset, Cpuset, "cpuset", "e.g. Cpuset.exact([0, 1])")
        if self.workers == 0:
            raise ScenarioError(
                "workers",
                f"0 workers; at least 1 is needed (Op.add_cgroup({self.name!r}) makes an empty cgroup)",
            )
        super().__post_init__()

    def __repr__(self) -> str:
        parts = [repr(self.name)]
        blank = WorkerSpec()
        for key in ("cpuset", "workers", "work", "policy", "nice", "affinity", "mempolicy"):
            value = getattr(self, key)
            if value != getattr(blank, key, None):
                parts.append(f"{key}={value!r}")
        return f"CgroupDef({', '.join(parts)})"

    def to_doc(self, res: Resolver) -> dict[str, Any]:
        """This definition in the scenario document, resolved against ``res``."""
        try:
            cpus = None if self.cpuset is None else list(self.cpuset.resolve(res.topology))
        except ScenarioError as e:
            raise e.under("cpuset") from None
        return {"name": self.name, "cpuset": cpus, **self.workers_doc(res)}
