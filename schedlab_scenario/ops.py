"""Ops: what a step does to the running scenario before it holds. Build them with :class:`Op`.

>>> Op.set_cpuset("cg_0", Cpuset.disjoint(0, 2)).op
'set_cpuset'
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

from .cgroup import CgroupDef, Resolver, WorkerSpec, cgroup_name, check_type
from .cpuset import Cpuset
from .errors import ScenarioError
from .placement import Affinity, MemPolicy, SchedPolicy, WorkType

__all__ = (
    "AddCgroup",
    "ClearCpuset",
    "KillPayload",
    "MoveAllTasks",
    "Op",
    "OpBase",
    "RemoveCgroup",
    "RunPayload",
    "SetAffinity",
    "SetCpuset",
    "Spawn",
    "StopCgroup",
    "SwapCpusets",
    "WaitPayload",
)

_PAYLOAD_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-.")


class OpBase:
    """What every op has: its document name ``op`` and :meth:`to_doc`."""

    op: ClassVar[str]

    def to_doc(self, res: Resolver) -> dict[str, Any]:
        raise NotImplementedError


def _payload_name(name: Any) -> str:
    if not isinstance(name, str) or not 1 <= len(name) <= 64 or set(name) - _PAYLOAD_CHARS:
        raise ScenarioError("name", f"{name!r} is not 1..64 of [A-Za-z0-9_.-]")
    return name


@dataclass(frozen=True)
class AddCgroup(OpBase):
    """Create a cgroup: a full definition (its workers start with the step), or, with only
    ``name``, an empty one (a move target)."""

    op: ClassVar[str] = "add_cgroup"
    cgroup: CgroupDef | None = None
    name: str = ""
    cpuset: Cpuset | None = None

    def __post_init__(self) -> None:
        if self.cgroup is not None:
            check_type(self.cgroup, CgroupDef, "cgroup")
            object.__setattr__(self, "name", self.cgroup.name)
        else:
            cgroup_name(self.name)
            if self.cpuset is not None:
                check_type(self.cpuset, Cpuset, "cpuset")

    def to_doc(self, res: Resolver) -> dict[str, Any]:
        if self.cgroup is not None:
            try:
                return {"op": self.op, "cgroup": self.cgroup.to_doc(res)}
            except ScenarioError as e:
                raise e.under("cgroup") from None
        try:
            cpus = None if self.cpuset is None else list(self.cpuset.resolve(res.topology))
        except ScenarioError as e:
            raise e.under("cpuset") from None
        empty = WorkerSpec().workers_doc(res) | {"workers": 0}
        return {"op": self.op, "cgroup": {"name": self.name, "cpuset": cpus, **empty}}


@dataclass(frozen=True)
class _OnCgroup(OpBase):
    cgroup: str

    def __post_init__(self) -> None:
        cgroup_name(self.cgroup, "cgroup")

    def to_doc(self, res: Resolver) -> dict[str, Any]:
        return {"op": self.op, "cgroup": self.cgroup}


@dataclass(frozen=True)
class RemoveCgroup(_OnCgroup):
    """Stop the cgroup's workers and payloads, then remove it and the cgroups below it."""

    op: ClassVar[str] = "remove_cgroup"


@dataclass(frozen=True)
class ClearCpuset(_OnCgroup):
    """Empty the cgroup's ``cpuset.cpus``: its tasks may use every CPU again."""

    op: ClassVar[str] = "clear_cpuset"


@dataclass(frozen=True)
class StopCgroup(_OnCgroup):
    """Stop the cgroup's workers (they report); the cgroup stays."""

    op: ClassVar[str] = "stop_cgroup"


@dataclass(frozen=True)
class SetCpuset(OpBase):
    """Write the resolved ``cpus`` to the cgroup's ``cpuset.cpus``."""

    op: ClassVar[str] = "set_cpuset"
    cgroup: str
    cpus: Cpuset

    def __post_init__(self) -> None:
        cgroup_name(self.cgroup, "cgroup")
        check_type(self.cpus, Cpuset, "cpus", "e.g. Cpuset.llc(0)")

    def to_doc(self, res: Resolver) -> dict[str, Any]:
        try:
            cpus = list(self.cpus.resolve(res.topology))
        except ScenarioError as e:
            raise e.under("cpus") from None
        return {"op": self.op, "cgroup": self.cgroup, "cpus": cpus}


@dataclass(frozen=True)
class SwapCpusets(OpBase):
    """Exchange the cpusets of cgroups ``a`` and ``b`` (as they are at that moment)."""

    op: ClassVar[str] = "swap_cpusets"
    a: str
    b: str

    def __post_init__(self) -> None:
        cgroup_name(self.a, "a")
        cgroup_name(self.b, "b")
        if self.a == self.b:
            raise ScenarioError("b", f"swaps {self.a!r} with itself")

    def to_doc(self, res: Resolver) -> dict[str, Any]:
        return {"op": self.op, "a": self.a, "b": self.b}


@dataclass(frozen=True)
class Spawn(OpBase):
    """Start more workers in an existing cgroup (``cgroup=""``: outside our cgroups, as host
    load); they end with the step."""

    op: ClassVar[str] = "spawn"
    cgroup: str
    spec: WorkerSpec = field(default_factory=WorkerSpec)

    def __post_init__(self) -> None:
        if self.cgroup != "":
            cgroup_name(self.cgroup, "cgroup")
        check_type(self.spec, WorkerSpec, "spec")

    def to_doc(self, res: Resolver) -> dict[str, Any]:
        return {"op": self.op, "cgroup": self.cgroup, **self.spec.workers_doc(res)}


@dataclass(frozen=True)
class SetAffinity(OpBase):
    """Apply ``affinity`` to each worker of the cgroup (against its cpuset at that moment)."""

    op: ClassVar[str] = "set_affinity"
    cgroup: str
    affinity: Affinity

    def __post_init__(self) -> None:
        cgroup_name(self.cgroup, "cgroup")
        check_type(self.affinity, Affinity, "affinity", "e.g. Affinity.random_subset(2)")

    def to_doc(self, res: Resolver) -> dict[str, Any]:
        self.affinity.check(res.topology.nr_cpus)
        return {"op": self.op, "cgroup": self.cgroup, "affinity": self.affinity.to_doc()}


@dataclass(frozen=True)
class MoveAllTasks(OpBase):
    """Move every task of cgroup ``src`` into ``dst`` (workers keep their reports going)."""

    op: ClassVar[str] = "move_all_tasks"
    src: str
    dst: str

    def __post_init__(self) -> None:
        cgroup_name(self.src, "src")
        cgroup_name(self.dst, "dst")
        if self.src == self.dst:
            raise ScenarioError("dst", f"moves {self.src!r} into itself")

    def to_doc(self, res: Resolver) -> dict[str, Any]:
        return {"op": self.op, "from": self.src, "to": self.dst}


@dataclass(frozen=True)
class RunPayload(OpBase):
    """Start program ``path`` (a guest path, e.g. a transferred payload file) with ``args``,
    in ``cgroup`` ("" leaves it outside ours); its output and exit status are recorded."""

    op: ClassVar[str] = "run_payload"
    name: str
    path: str
    args: tuple[str, ...] = ()
    cgroup: str = ""

    def __post_init__(self) -> None:
        _payload_name(self.name)
        if not isinstance(self.path, str) or not self.path.startswith("/"):
            raise ScenarioError("path", f"{self.path!r} is not an absolute guest path")
        object.__setattr__(self, "args", tuple(self.args))
        if not all(isinstance(a, str) for a in self.args):
            raise ScenarioError("args", "every argument must be a string")
        if self.cgroup:
            cgroup_name(self.cgroup, "cgroup")

    def to_doc(self, res: Resolver) -> dict[str, Any]:
        return {
            "op": self.op,
            "name": self.name,
            "path": self.path,
            "args": list(self.args),
            "cgroup": self.cgroup,
        }


@dataclass(frozen=True)
class WaitPayload(OpBase):
    """Wait (at most ``timeout_s``) for payload ``name`` to exit."""

    op: ClassVar[str] = "wait_payload"
    name: str
    timeout_s: float = 60.0

    def __post_init__(self) -> None:
        _payload_name(self.name)
        if (
            isinstance(self.timeout_s, bool)
            or not isinstance(self.timeout_s, (int, float))
            or not 0 < self.timeout_s <= 3600
        ):
            raise ScenarioError("timeout_s", f"{self.timeout_s!r} is outside (0, 3600]")

    def to_doc(self, res: Resolver) -> dict[str, Any]:
        return {"op": self.op, "name": self.name, "timeout_s": float(self.timeout_s)}


@dataclass(frozen=True)
class KillPayload(OpBase):
    """SIGKILL payload ``name`` and record how it ended."""

    op: ClassVar[str] = "kill_payload"
    name: str

    def __post_init__(self) -> None:
        _payload_name(self.name)

    def to_doc(self, res: Resolver) -> dict[str, Any]:
        return {"op": self.op, "name": self.name}


class Op:
    """Constructors of every op (the classes above are what they return)."""

    @staticmethod
    def add_cgroup(cgroup: CgroupDef | str, cpuset: Cpuset | None = None) -> AddCgroup:
        """A full :class:`CgroupDef`, or a name for an empty cgroup (optionally with a cpuset)."""
        if isinstance(cgroup, CgroupDef):
            if cpuset is not None:
                raise ScenarioError("cpuset", "give the cpuset in the CgroupDef")
            return AddCgroup(cgroup=cgroup)
        return AddCgroup(name=cgroup, cpuset=cpuset)

    @staticmethod
    def remove_cgroup(cgroup: str) -> RemoveCgroup:
        return RemoveCgroup(cgroup)

    @staticmethod
    def set_cpuset(cgroup: str, cpus: Cpuset) -> SetCpuset:
        return SetCpuset(cgroup, cpus)

    @staticmethod
    def clear_cpuset(cgroup: str) -> ClearCpuset:
        return ClearCpuset(cgroup)

    @staticmethod
    def swap_cpusets(a: str, b: str) -> SwapCpusets:
        return SwapCpusets(a, b)

    @staticmethod
    def spawn(
        cgroup: str,
        workers: int | None = None,
        work: WorkType | None = None,
        policy: SchedPolicy | None = None,
        nice: int = 0,
        affinity: Affinity | None = None,
        mempolicy: MemPolicy | None = None,
    ) -> Spawn:
        """More workers in ``cgroup`` ("" for host load outside our cgroups)."""
        spec = WorkerSpec(
            workers,
            work or WorkType(),
            policy or SchedPolicy(),
            nice,
            affinity or Affinity(),
            mempolicy or MemPolicy(),
        )
        return Spawn(cgroup, spec)

    @staticmethod
    def stop_cgroup(cgroup: str) -> StopCgroup:
        return StopCgroup(cgroup)

    @staticmethod
    def set_affinity(cgroup: str, affinity: Affinity) -> SetAffinity:
        return SetAffinity(cgroup, affinity)

    @staticmethod
    def move_all_tasks(src: str, dst: str) -> MoveAllTasks:
        return MoveAllTasks(src, dst)

    @staticmethod
    def run_payload(
        name: str, path: str, args: tuple[str, ...] | list[str] = (), cgroup: str = ""
    ) -> RunPayload:
        return RunPayload(name, path, tuple(args), cgroup)

    @staticmethod
    def wait_payload(name: str, timeout_s: float = 60.0) -> WaitPayload:
        return WaitPayload(name, timeout_s)

    @staticmethod
    def kill_payload(name: str) -> KillPayload:
        return KillPayload(name)
