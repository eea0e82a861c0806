"""The scenario catalog: named, canned scenarios a user can run, read and copy.

Each entry is a function of the VM's topology returning a :class:`~schedlab_scenario.Scenario`
(a scenario may size itself to the machine, e.g. one host worker per CPU), registered with
:func:`canned`. ``schedlab list`` shows them; ``schedlab run --scenario NAME`` runs one.

The first fourteen are ktstr's canned scenarios (``src/scenario/scenarios.rs``), same
shapes, holds as fractions of the run's duration. ``oversubscribed`` and
``mixed_workloads`` run ``spin`` until the ``mixed``, ``bursty`` and ``io_sync`` work types
exist. :mod:`schedlab_scenario.catalog_more` adds entries from the other categories of
ktstr's catalog.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from schedlab_shared.topology import Topology

from .cgroup import CgroupDef
from .cpuset import Cpuset, usable_cpus
from .model import Backdrop, Requires, Scenario, Step
from .ops import Op, OpBase
from .placement import Affinity, Hold, WorkType

__all__ = ("CATALOG", "CATEGORIES", "DEFAULT", "Entry", "canned", "get")

#: ktstr's catalog categories (``src/scenario/catalog.rs``), in listing order.
CATEGORIES = (
    "basic",
    "cpuset",
    "stress",
    "affinity",
    "sched_class",
    "dynamic",
    "nested",
    "interaction",
    "performance",
    "stall",
)
#: What ``schedlab run`` runs without ``--scenario``.
DEFAULT = "steady"


@dataclass(frozen=True)
class Entry:
    """A catalog entry: ``build(topology)`` gives the scenario; ``summary`` says what it
    sets up (one line); ``requires`` is the smallest topology it runs on."""

    name: str
    category: str
    summary: str
    build: Callable[[Topology], Scenario]
    requires: Requires = field(default_factory=Requires)


#: name -> :class:`Entry`, in registration order.
CATALOG: dict[str, Entry] = {}


_ANY = Requires()


def canned(
    name: str, category: str, summary: str, requires: Requires = _ANY
) -> Callable[[Callable[[Topology], Scenario]], Callable[[Topology], Scenario]]:
    """Register the decorated ``build(topology) -> Scenario`` as catalog entry ``name``."""
    if category not in CATEGORIES:
        raise ValueError(
            f"catalog entry {name!r}: category {category!r} is not one of {CATEGORIES}"
        )

    def register(build: Callable[[Topology], Scenario]) -> Callable[[Topology], Scenario]:
        if name in CATALOG:
            raise ValueError(f"catalog entry {name!r} registered twice")
        CATALOG[name] = Entry(name, category, summary, build, requires)
        return build

    return register


def get(name: str) -> Entry:
    """The entry called ``name``.

    :raises KeyError: with the known names in its message.
    """
    try:
        return CATALOG[name]
    except KeyError:
        raise KeyError(f"no scenario {name!r} (known: {', '.join(CATALOG)})") from None


def _pair(**kw: object) -> tuple[CgroupDef, CgroupDef]:
    return CgroupDef("cg_0", **kw), CgroupDef("cg_1", **kw)  # type: ignore[arg-type]


HALF = Hold.frac(0.5)

# -- basic -----------------------------------------------------------------------------


@canned("steady", "basic", "2 cgroups, no cpusets, equal spin load")
def steady(topo: Topology) -> Scenario:
    return Scenario("steady", [Step(cgroups=_pair())])


@canned("steady_llc", "basic", "2 cgroups, each on the CPUs of its own LLC", Requires(llcs=2))
def steady_llc(topo: Topology) -> Scenario:
    cgs = [CgroupDef("cg_0", cpuset=Cpuset.llc(0)), CgroupDef("cg_1", cpuset=Cpuset.llc(1))]
    return Scenario("steady_llc", [Step(cgroups=cgs)], requires=Requires(llcs=2))


@canned("oversubscribed", "stress", "2 cgroups x 4 workers per CPU: 8 runnable per CPU")
def oversubscribed(topo: Topology) -> Scenario:
    # Scaled by the topology: a fixed 32 per cgroup on 2 vCPUs under TCG left most workers
    # still starting up (100-400 ms of CPU each) when a 2 s run ended, starved by the harness.
    return Scenario("oversubscribed", [Step(cgroups=_pair(workers=4 * topo.nr_cpus))])


# -- cpuset ----------------------------------------------------------------------------


@canned("cpuset_apply", "cpuset", "2 cgroups start unconfined; disjoint cpusets applied mid-run")
def cpuset_apply(topo: Topology) -> Scenario:
    ops = [
        Op.set_cpuset("cg_0", Cpuset.disjoint(0, 2)),
        Op.set_cpuset("cg_1", Cpuset.disjoint(1, 2)),
    ]
    steps = [Step(hold=HALF, name="unconfined"), Step(ops=ops, hold=HALF, name="disjoint")]
    return Scenario("cpuset_apply", steps, Backdrop(cgroups=_pair()))


@canned("cpuset_clear", "cpuset", "2 cgroups on disjoint cpusets; cpusets cleared mid-run")
def cpuset_clear(topo: Topology) -> Scenario:
    backdrop = Backdrop(
        cgroups=[
            CgroupDef("cg_0", cpuset=Cpuset.disjoint(0, 2)),
            CgroupDef("cg_1", cpuset=Cpuset.disjoint(1, 2)),
        ]
    )
    ops = [Op.clear_cpuset("cg_0"), Op.clear_cpuset("cg_1")]
    steps = [Step(hold=HALF, name="disjoint"), Step(ops=ops, hold=HALF, name="cleared")]
    return Scenario("cpuset_clear", steps, backdrop)


@canned("cpuset_resize", "cpuset", "2 cgroups' cpusets go 50/50, 25/75, 75/25", Requires(cpus=4))
def cpuset_resize(topo: Topology) -> Scenario:
    third = Hold.frac(1 / 3)

    def split(f: float) -> list[OpBase]:
        return [
            Op.set_cpuset("cg_0", Cpuset.range(0.0, f)),
            Op.set_cpuset("cg_1", Cpuset.range(f, 1.0)),
        ]

    backdrop = Backdrop(
        cgroups=[
            CgroupDef("cg_0", cpuset=Cpuset.range(0.0, 0.5)),
            CgroupDef("cg_1", cpuset=Cpuset.range(0.5, 1.0)),
        ]
    )
    steps = [
        Step(hold=third, name="half"),
        Step(ops=split(0.25), hold=third, name="quarter"),
        Step(ops=split(0.75), hold=third, name="three_quarters"),
    ]
    return Scenario("cpuset_resize", steps, backdrop, requires=Requires(cpus=4))


# -- dynamic ---------------------------------------------------------------------------


@canned("cgroup_add", "dynamic", "2 cgroups, then a third added mid-run")
def cgroup_add(topo: Topology) -> Scenario:
    steps = [
        Step(hold=HALF, name="two"),
        Step(ops=[Op.add_cgroup(CgroupDef("cg_2"))], hold=HALF, name="three"),
    ]
    return Scenario("cgroup_add", steps, Backdrop(cgroups=_pair()))


@canned("cgroup_remove", "dynamic", "4 cgroups, then the second half removed mid-run")
def cgroup_remove(topo: Topology) -> Scenario:
    backdrop = Backdrop(cgroups=[CgroupDef(f"cg_{i}") for i in range(4)])
    ops = [Op.remove_cgroup("cg_2"), Op.remove_cgroup("cg_3")]
    steps = [Step(hold=HALF, name="four"), Step(ops=ops, hold=HALF, name="two")]
    return Scenario("cgroup_remove", steps, backdrop)


# -- affinity --------------------------------------------------------------------------


@canned(
    "affinity_change", "affinity", "2 cgroups; random worker affinities applied 4 times mid-run"
)
def affinity_change(topo: Topology) -> Scenario:
    count = max(1, len(usable_cpus(topo)) // 2)
    fifth = Hold.frac(0.2)
    ops = [
        Op.set_affinity("cg_0", Affinity.random_subset(count)),
        Op.set_affinity("cg_1", Affinity.random_subset(count)),
    ]
    steps = [Step(hold=fifth, name="inherit")]
    steps += [Step(ops=ops, hold=fifth, name=f"random_{i}") for i in range(1, 5)]
    return Scenario("affinity_change", steps, Backdrop(cgroups=_pair()))


@canned("affinity_pinned", "affinity", "2 cgroups whose workers all share one 2-CPU affinity")
def affinity_pinned(topo: Topology) -> Scenario:
    pinned = Affinity.exact(usable_cpus(topo)[:2])
    return Scenario("affinity_pinned", [Step(cgroups=_pair(affinity=pinned))])


# -- stress ----------------------------------------------------------------------------


@canned("host_contention", "stress", "2 cgroups plus one host spinner per CPU outside them")
def host_contention(topo: Topology) -> Scenario:
    step = Step(ops=[Op.spawn("", workers=topo.nr_cpus)], cgroups=_pair())
    return Scenario("host_contention", [step])


@canned("mixed_workloads", "stress", "heavy, bursty and io cgroups side by side")
def mixed_workloads(topo: Topology) -> Scenario:
    cgs = [
        CgroupDef("cg_heavy", workers=4, work=WorkType("spin")),
        CgroupDef("cg_bursty", workers=2, work=WorkType("spin", {"unit_iters": 25})),
        CgroupDef("cg_io", workers=2, work=WorkType("spin", {"unit_iters": 10})),
    ]
    return Scenario("mixed_workloads", [Step(cgroups=cgs)])


# -- nested ----------------------------------------------------------------------------


@canned("nested_steady", "nested", "workers in 4 leaf cgroups up to 3 levels deep")
def nested_steady(topo: Topology) -> Scenario:
    ops = [Op.add_cgroup("cg_0"), Op.add_cgroup("cg_1"), Op.add_cgroup("cg_1/sub_a")]
    leaves = [
        CgroupDef("cg_0/sub_a"),
        CgroupDef("cg_0/sub_b"),
        CgroupDef("cg_1/sub_b"),
        CgroupDef("cg_1/sub_a/deep"),
    ]
    return Scenario("nested_steady", [Step(ops=ops, cgroups=leaves)])


@canned("nested_task_move", "nested", "workers moved sub -> parent -> other sub -> its parent")
def nested_task_move(topo: Topology) -> Scenario:
    backdrop = Backdrop(
        cgroups=[CgroupDef("cg_0/sub")],
        ops=[Op.add_cgroup("cg_0"), Op.add_cgroup("cg_1"), Op.add_cgroup("cg_1/sub")],
    )
    quarter = Hold.frac(0.25)
    steps = [
        Step(hold=quarter, name="sub"),
        Step(ops=[Op.move_all_tasks("cg_0/sub", "cg_0")], hold=quarter, name="parent"),
        Step(ops=[Op.move_all_tasks("cg_0", "cg_1/sub")], hold=quarter, name="other_sub"),
        Step(ops=[Op.move_all_tasks("cg_1/sub", "cg_1")], hold=quarter, name="other_parent"),
    ]
    return Scenario("nested_task_move", steps, backdrop)


# More entries from ktstr's categories (data to read and copy): they register on import.
from . import catalog_more  # noqa: E402, F401
