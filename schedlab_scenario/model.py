"""Steps, the backdrop and the scenario; :meth:`Scenario.to_document` resolves it for a VM.

>>> s = Scenario("two", [Step(cgroups=[CgroupDef("cg_0"), CgroupDef("cg_1")])])
>>> from schedlab_shared.topology import Topology
>>> s.to_document(Topology(), duration_s=1.0)["steps"][0]["cgroups"][1]["workers"]
2
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from guest.scenario import document as doc
from guest.spec import SpecError
from schedlab_shared.topology import Topology

from .cgroup import CgroupDef, Resolver, check_type
from .cpuset import usable_cpus
from .errors import ScenarioError
from .ops import AddCgroup, MoveAllTasks, OpBase, RunPayload, Spawn
from .placement import Hold

__all__ = ("Backdrop", "Requires", "Scenario", "Step")

_DOC_TO_MODEL = {"from": "src", "to": "dst"}  # op fields the document names differently


def _tuple_of(values: Iterable[Any], want: type, name: str) -> tuple[Any, ...]:
    if isinstance(values, (str, bytes)) or not isinstance(values, Iterable):
        raise ScenarioError(name, f"is {type(values).__name__}, want a list of {want.__name__}")
    out = tuple(values)
    for i, v in enumerate(out):
        check_type(v, want, f"{name}[{i}]")
    return out


def _docs(items: Sequence[Any], name: str, res: Resolver) -> list[dict[str, Any]]:
    out = []
    for i, item in enumerate(items):
        try:
            out.append(item.to_doc(res))
        except ScenarioError as e:
            raise e.under(f"{name}[{i}]") from None
    return out


@dataclass(frozen=True)
class Backdrop:
    """Cgroups (with their workers) and ops that persist across every step; its ops run
    first, then its cgroups are created, before the first step."""

    cgroups: Sequence[CgroupDef] = ()
    ops: Sequence[OpBase] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "cgroups", _tuple_of(self.cgroups, CgroupDef, "cgroups"))
        object.__setattr__(self, "ops", _tuple_of(self.ops, OpBase, "ops"))

    def to_doc(self, res: Resolver) -> dict[str, Any]:
        return {"cgroups": _docs(self.cgroups, "cgroups", res), "ops": _docs(self.ops, "ops", res)}


@dataclass(frozen=True)
class Step:
    """One phase: apply ``ops``, create ``cgroups`` (both end with the step), then ``hold``.

    A ``Hold.loop`` step creates its cgroups once, then re-applies its ops every interval.
    """

    ops: Sequence[OpBase] = ()
    cgroups: Sequence[CgroupDef] = ()
    hold: Hold = Hold.FULL
    name: str = ""

    def __post_init__(self) -> None:
        object.__setattr__(self, "ops", _tuple_of(self.ops, OpBase, "ops"))
        object.__setattr__(self, "cgroups", _tuple_of(self.cgroups, CgroupDef, "cgroups"))
        check_type(self.hold, Hold, "hold", "e.g. Hold.frac(0.5)")
        check_type(self.name, str, "name")

    def to_doc(self, res: Resolver) -> dict[str, Any]:
        return {
            "name": self.name,
            "cgroups": _docs(self.cgroups, "cgroups", res),
            "ops": _docs(self.ops, "ops", res),
            "hold": self.hold.to_doc(),
        }


@dataclass(frozen=True)
class Requires:
    """The smallest topology a scenario makes sense on (e.g. two LLCs for ``steady_llc``)."""

    cpus: int = 1
    llcs: int = 1
    nodes: int = 1

    def check(self, topology: Topology) -> None:
        for what, need, have in (
            ("cpus", self.cpus, topology.nr_cpus),
            ("llcs", self.llcs, topology.nr_llcs),
            ("nodes", self.nodes, topology.nodes),
        ):
            if have < need:
                raise ScenarioError(
                    f"requires.{what}",
                    f"needs at least {need} {'LLCs' if what == 'llcs' else what}; "
                    f"topology {topology.spec} has {have}",
                )


def _skeleton_op(op: OpBase) -> dict[str, Any]:
    """What :func:`guest.scenario.document.check_lifetimes` reads of an op."""
    if isinstance(op, AddCgroup):
        workers = 0 if op.cgroup is None else (op.cgroup.workers or 1)
        return {"op": op.op, "cgroup": {"name": op.name, "workers": workers}}
    if isinstance(op, Spawn):
        return {"op": op.op, "cgroup": op.cgroup, "workers": op.spec.workers or 1}
    if isinstance(op, MoveAllTasks):
        return {"op": op.op, "from": op.src, "to": op.dst}
    out = {"op": op.op, **{k: v for k, v in vars(op).items()}}
    if not isinstance(op, RunPayload):
        out.setdefault("cgroup", "")
    return out


def _skeleton_scope(ops: Sequence[OpBase], cgroups: Sequence[CgroupDef]) -> dict[str, Any]:
    return {
        "ops": [_skeleton_op(o) for o in ops],
        "cgroups": [{"name": c.name, "workers": c.workers or 1} for c in cgroups],
    }


def _model_path(key: str) -> str:
    path = key.removeprefix("scenario.").removeprefix("scenario")
    head, _, last = path.rpartition(".")
    last = _DOC_TO_MODEL.get(last, last)
    return f"{head}.{last}" if head else last


def _from_spec(e: SpecError) -> ScenarioError:
    return ScenarioError(_model_path(e.key), str(e)[len(e.key) + 2 :] if e.key else str(e))


@dataclass(frozen=True)
class Scenario:
    """A whole scenario: a backdrop and the steps that run over it.

    :param name: ``[a-z0-9_]{1,64}``.
    :param duration_s: what ``Hold.frac`` and ``Hold.loop`` count against; None takes the
        run's duration.
    :param seed: the guest's random draws (``Affinity.random_subset``) start from it.
    :param requires: the smallest topology it runs on.
    """

    name: str
    steps: Sequence[Step]
    backdrop: Backdrop = field(default_factory=Backdrop)
    duration_s: float | None = None
    seed: int = 0
    requires: Requires = field(default_factory=Requires)

    def __post_init__(self) -> None:
        if (
            not isinstance(self.name, str)
            or not 1 <= len(self.name) <= 64
            or set(self.name) - set("abcdefghijklmnopqrstuvwxyz0123456789_")
        ):
            raise ScenarioError("name", f"{self.name!r} is not 1..64 of [a-z0-9_]")
        object.__setattr__(self, "steps", _tuple_of(self.steps, Step, "steps"))
        if not self.steps:
            raise ScenarioError("steps", "is empty; a scenario has at least one Step")
        if len(self.steps) > doc.MAX_STEPS:
            raise ScenarioError("steps", f"{len(self.steps)} steps > {doc.MAX_STEPS}")
        check_type(self.backdrop, Backdrop, "backdrop")
        check_type(self.requires, Requires, "requires")
        if self.duration_s is not None and (
            isinstance(self.duration_s, bool)
            or not isinstance(self.duration_s, (int, float))
            or not 0 < self.duration_s <= doc.MAX_DURATION_S
        ):
            raise ScenarioError(
                "duration_s", f"{self.duration_s!r} is outside (0, {doc.MAX_DURATION_S:g}]"
            )
        if (
            isinstance(self.seed, bool)
            or not isinstance(self.seed, int)
            or not 0 <= self.seed < 1 << 32
        ):
            raise ScenarioError("seed", f"{self.seed!r} is not an integer in [0, 2**32)")
        skeleton = {
            "backdrop": _skeleton_scope(self.backdrop.ops, self.backdrop.cgroups),
            "steps": [
                {**_skeleton_scope(s.ops, s.cgroups), "hold": {"kind": s.hold.kind}}
                for s in self.steps
            ],
        }
        try:
            doc.check_lifetimes(skeleton)
        except SpecError as e:
            raise _from_spec(e) from None

    def planned_s(self, duration_s: float | None = None) -> float:
        """Seconds the steps hold in all (setup time not included)."""
        d = self.duration_s or duration_s or 0.0
        elapsed = 0.0
        for s in self.steps:
            elapsed += s.hold.planned_s(d, elapsed)
        return elapsed

    def to_document(
        self,
        topology: Topology,
        *,
        duration_s: float | None = None,
        workers: int = 2,
        seed: int | None = None,
    ) -> dict[str, Any]:
        """The validated scenario document for a VM of ``topology``.

        :param duration_s: the run's duration, used when the scenario sets none.
        :param workers: workers per cgroup where a definition leaves them unset.
        :raises ScenarioError: an index outside the topology, a requirement it does not meet.
        """
        self.requires.check(topology)
        duration = self.duration_s or duration_s
        if duration is None:
            raise ScenarioError("duration_s", "not set by the scenario nor by the run")
        res = Resolver(topology, workers)
        out: dict[str, Any] = {
            "version": doc.VERSION,
            "name": self.name,
            "duration_s": float(duration),
            "seed": self.seed if seed is None else seed,
            "topology": topology_doc(topology),
        }
        try:
            out["backdrop"] = self.backdrop.to_doc(res)
        except ScenarioError as e:
            raise e.under("backdrop") from None
        out["steps"] = _docs(self.steps, "steps", res)
        try:
            return doc.validate(out)
        except SpecError as e:
            raise _from_spec(e) from None


def topology_doc(topology: Topology) -> dict[str, Any]:
    """The document's ``topology``: CPU count, usable CPUs, CPUs of each LLC and node."""
    cpus = topology.cpus()
    return {
        "cpus": topology.nr_cpus,
        "usable": list(usable_cpus(topology)),
        "llcs": [[c.index for c in cpus if c.llc == i] for i in range(topology.nr_llcs)],
        "nodes": [[c.index for c in cpus if c.node == i] for i in range(topology.nodes)],
    }
