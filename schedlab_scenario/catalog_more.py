"""More catalog entries, from the categories of ktstr's catalog (``src/scenario/catalog.rs``).

Registered in :data:`schedlab_scenario.catalog.CATALOG` beside ktstr's fourteen canned
scenarios when the catalog is imported. Each is plain data a user can read and copy: a
function of the topology building a :class:`~schedlab_scenario.Scenario`. Names follow
ktstr's where it has the same idea; the shapes are sized for small VMs (2-4 CPUs) and pass on
a correct scheduler, so a failure names a scheduler's fault.
"""

from __future__ import annotations

from schedlab_shared.topology import Topology

from .catalog import HALF, canned
from .cgroup import CgroupDef
from .cpuset import Cpuset, usable_cpus
from .model import Backdrop, Requires, Scenario, Step
from .ops import Op
from .placement import Affinity, Hold, SchedPolicy, WorkType

__all__: tuple[str, ...] = ()  # the entries register themselves

THIRD = Hold.frac(1 / 3)
QUARTER = Hold.frac(0.25)


def _one(name: str, *cgroups: CgroupDef) -> Scenario:
    return Scenario(name, [Step(cgroups=list(cgroups))])


def _work(name: str, kind: str, workers: int, **params: object) -> Scenario:
    """Two cgroups of one work type (``workers`` each)."""
    work = WorkType(kind, dict(params))
    return _one(name, *(CgroupDef(f"cg_{i}", workers=workers, work=work) for i in range(2)))


# -- basic -----------------------------------------------------------------------------


@canned("single_cgroup", "basic", "1 cgroup of spinners on every CPU")
def single_cgroup(topo: Topology) -> Scenario:
    return _one("single_cgroup", CgroupDef("cg_0"))


@canned("many_cgroups", "basic", "8 cgroups of 1 spinner each")
def many_cgroups(topo: Topology) -> Scenario:
    return _one("many_cgroups", *(CgroupDef(f"cg_{i}", workers=1) for i in range(8)))


@canned("uneven_workers", "basic", "2 cgroups of 4 and 1 spinners: equal shares per cgroup")
def uneven_workers(topo: Topology) -> Scenario:
    return _one("uneven_workers", CgroupDef("cg_0", workers=4), CgroupDef("cg_1", workers=1))


# -- cpuset ----------------------------------------------------------------------------


@canned(
    "cpuset_overlap_steady", "cpuset", "2 cgroups on halves that overlap by half", Requires(cpus=4)
)
def cpuset_overlap_steady(topo: Topology) -> Scenario:
    cgs = [CgroupDef(f"cg_{i}", cpuset=Cpuset.overlap(i, 2, 0.5)) for i in range(2)]
    return Scenario("cpuset_overlap_steady", [Step(cgroups=cgs)], requires=Requires(cpus=4))


@canned(
    "cpuset_partial_cpus", "cpuset", "2 cgroups on 2/3 of the CPUs, a third idle", Requires(cpus=3)
)
def cpuset_partial_cpus(topo: Topology) -> Scenario:
    cgs = [
        CgroupDef("cg_0", cpuset=Cpuset.range(0.0, 1 / 3)),
        CgroupDef("cg_1", cpuset=Cpuset.range(1 / 3, 2 / 3)),
    ]
    return Scenario("cpuset_partial_cpus", [Step(cgroups=cgs)], requires=Requires(cpus=3))


@canned("cpuset_uneven", "cpuset", "2 cgroups on 75 % and 25 % of the CPUs", Requires(cpus=4))
def cpuset_uneven(topo: Topology) -> Scenario:
    cgs = [
        CgroupDef("cg_0", cpuset=Cpuset.range(0.0, 0.75)),
        CgroupDef("cg_1", cpuset=Cpuset.range(0.75, 1.0)),
    ]
    return Scenario("cpuset_uneven", [Step(cgroups=cgs)], requires=Requires(cpus=4))


@canned("cpuset_swap", "cpuset", "2 cgroups on disjoint cpusets swap them mid-run")
def cpuset_swap(topo: Topology) -> Scenario:
    backdrop = Backdrop(
        cgroups=[CgroupDef(f"cg_{i}", cpuset=Cpuset.disjoint(i, 2)) for i in (0, 1)]
    )
    steps = [
        Step(hold=HALF, name="before"),
        Step(ops=[Op.swap_cpusets("cg_0", "cg_1")], hold=HALF, name="swapped"),
    ]
    return Scenario("cpuset_swap", steps, backdrop)


@canned("cpuset_shrink", "cpuset", "2 cgroups unconfined, then cg_0 shrunk to one CPU")
def cpuset_shrink(topo: Topology) -> Scenario:
    first = Cpuset.exact(usable_cpus(topo)[:1])
    backdrop = Backdrop(cgroups=[CgroupDef("cg_0"), CgroupDef("cg_1")])
    steps = [
        Step(hold=HALF, name="all"),
        Step(ops=[Op.set_cpuset("cg_0", first)], hold=HALF, name="one_cpu"),
    ]
    return Scenario("cpuset_shrink", steps, backdrop)


@canned(
    "cpuset_numa_split", "cpuset", "2 cgroups, each on the CPUs of its NUMA node", Requires(nodes=2)
)
def cpuset_numa_split(topo: Topology) -> Scenario:
    cgs = [CgroupDef(f"cg_{i}", cpuset=Cpuset.numa(i)) for i in (0, 1)]
    return Scenario("cpuset_numa_split", [Step(cgroups=cgs)], requires=Requires(nodes=2))


# -- stress ----------------------------------------------------------------------------


@canned("fork_exit_churn", "stress", "2 cgroups forking children that exit at once")
def fork_exit_churn(topo: Topology) -> Scenario:
    return _work("fork_exit_churn", "fork_exit", 2)


@canned("page_fault_churn", "stress", "2 cgroups faulting pages in and dropping them")
def page_fault_churn(topo: Topology) -> Scenario:
    return _work("page_fault_churn", "page_fault_churn", 2)


@canned("mutex_contention_light", "stress", "4 contenders on one futex mutex per cgroup")
def mutex_contention_light(topo: Topology) -> Scenario:
    return _work("mutex_contention_light", "mutex_contention", 4, contenders=4)


@canned("mutex_contention_heavy", "stress", "8 contenders on one futex mutex per cgroup")
def mutex_contention_heavy(topo: Topology) -> Scenario:
    return _work("mutex_contention_heavy", "mutex_contention", 8, contenders=8)


@canned("yield_storm", "stress", "2 cgroups of workers calling sched_yield in a loop")
def yield_storm(topo: Topology) -> Scenario:
    return _work("yield_storm", "yield_heavy", 2)


@canned("pipe_storm", "stress", "2 cgroups of 2 pipe ping-pong pairs each")
def pipe_storm(topo: Topology) -> Scenario:
    return _work("pipe_storm", "pipe_io", 4)


# -- affinity --------------------------------------------------------------------------


@canned("affinity_churn", "affinity", "workers that move themselves over their allowed CPUs")
def affinity_churn(topo: Topology) -> Scenario:
    return _work("affinity_churn", "affinity_churn", 2)


@canned("affinity_single_cpu", "affinity", "2 cgroups, each worker pinned to one CPU")
def affinity_single_cpu(topo: Topology) -> Scenario:
    pin = Affinity.single_cpu()
    return _one("affinity_single_cpu", *(CgroupDef(f"cg_{i}", affinity=pin) for i in (0, 1)))


@canned("affinity_llc_aligned", "affinity", "workers allowed the CPUs of one LLC", Requires(llcs=2))
def affinity_llc_aligned(topo: Topology) -> Scenario:
    aligned = Affinity.llc_aligned()
    cgs = [CgroupDef(f"cg_{i}", affinity=aligned) for i in (0, 1)]
    return Scenario("affinity_llc_aligned", [Step(cgroups=cgs)], requires=Requires(llcs=2))


@canned("affinity_cross_cgroup", "affinity", "disjoint cpusets; affinities reaching across them")
def affinity_cross_cgroup(topo: Topology) -> Scenario:
    backdrop = Backdrop(
        cgroups=[CgroupDef(f"cg_{i}", cpuset=Cpuset.disjoint(i, 2)) for i in (0, 1)]
    )
    ops = [Op.set_affinity(f"cg_{i}", Affinity.cross_cgroup()) for i in (0, 1)]
    steps = [Step(hold=HALF, name="inherit"), Step(ops=ops, hold=HALF, name="cross")]
    return Scenario("affinity_cross_cgroup", steps, backdrop)


# -- sched_class -----------------------------------------------------------------------


@canned("sched_batch", "sched_class", "2 cgroups of SCHED_BATCH spinners")
def sched_batch(topo: Topology) -> Scenario:
    batch = SchedPolicy.batch()
    return _one("sched_batch", *(CgroupDef(f"cg_{i}", policy=batch) for i in (0, 1)))


@canned("sched_idle", "sched_class", "1 cgroup of SCHED_IDLE spinners alone on the machine")
def sched_idle(topo: Topology) -> Scenario:
    return _one("sched_idle", CgroupDef("cg_0", policy=SchedPolicy.idle()))


@canned("sched_fifo", "sched_class", "1 SCHED_FIFO spinner beside a cgroup of normal ones")
def sched_fifo(topo: Topology) -> Scenario:
    rt = CgroupDef("cg_rt", workers=1, policy=SchedPolicy.fifo(1))
    return _one("sched_fifo", rt, CgroupDef("cg_0"))


@canned("sched_rr", "sched_class", "1 SCHED_RR spinner beside a cgroup of normal ones")
def sched_rr(topo: Topology) -> Scenario:
    rt = CgroupDef("cg_rt", workers=1, policy=SchedPolicy.rr(1))
    return _one("sched_rr", rt, CgroupDef("cg_0"))


@canned("sched_mixed", "sched_class", "normal, SCHED_BATCH and nice-5 cgroups side by side")
def sched_mixed(topo: Topology) -> Scenario:
    cgs = [
        CgroupDef("cg_normal"),
        CgroupDef("cg_batch", policy=SchedPolicy.batch()),
        CgroupDef("cg_nice", nice=5),
    ]
    return _one("sched_mixed", *cgs)


@canned("nice_sweep", "sched_class", "workers stepping their own nice through -20..19")
def nice_sweep(topo: Topology) -> Scenario:
    return _work("nice_sweep", "nice_sweep", 2)


@canned("policy_churn", "sched_class", "workers switching their own scheduling policy")
def policy_churn(topo: Topology) -> Scenario:
    return _work("policy_churn", "policy_churn", 2)


# -- dynamic ---------------------------------------------------------------------------


@canned("cgroup_rapid_churn", "dynamic", "a third cgroup added, gone with its step, added again")
def cgroup_rapid_churn(topo: Topology) -> Scenario:
    steps = [
        Step(hold=QUARTER, name="two"),
        Step(ops=[Op.add_cgroup(CgroupDef("cg_2"))], hold=QUARTER, name="added"),
        Step(hold=QUARTER, name="removed"),  # a step's own cgroups end with it
        Step(ops=[Op.add_cgroup(CgroupDef("cg_2"))], hold=QUARTER, name="again"),
    ]
    return Scenario(
        "cgroup_rapid_churn", steps, Backdrop(cgroups=[CgroupDef("cg_0"), CgroupDef("cg_1")])
    )


@canned("cgroup_stop_midrun", "dynamic", "2 cgroups, then cg_1's workers stopped mid-run")
def cgroup_stop_midrun(topo: Topology) -> Scenario:
    steps = [
        Step(hold=HALF, name="both"),
        Step(ops=[Op.stop_cgroup("cg_1")], hold=HALF, name="stopped"),
    ]
    return Scenario(
        "cgroup_stop_midrun", steps, Backdrop(cgroups=[CgroupDef("cg_0"), CgroupDef("cg_1")])
    )


@canned("spawn_midrun", "dynamic", "2 cgroups, then 2 more workers spawned into cg_0")
def spawn_midrun(topo: Topology) -> Scenario:
    steps = [
        Step(hold=HALF, name="before"),
        Step(ops=[Op.spawn("cg_0", workers=2)], hold=HALF, name="spawned"),
    ]
    return Scenario("spawn_midrun", steps, Backdrop(cgroups=[CgroupDef("cg_0"), CgroupDef("cg_1")]))


# -- nested ----------------------------------------------------------------------------


@canned("nested_cpuset", "nested", "sub-cgroups inside parents on disjoint cpusets")
def nested_cpuset(topo: Topology) -> Scenario:
    ops = [Op.add_cgroup(f"cg_{i}", cpuset=Cpuset.disjoint(i, 2)) for i in (0, 1)]
    leaves = [CgroupDef(f"cg_{i}/sub") for i in (0, 1)]
    return Scenario("nested_cpuset", [Step(ops=ops, cgroups=leaves)])


@canned("nested_move_up", "nested", "workers of a sub-cgroup moved to its parent's sibling")
def nested_move_up(topo: Topology) -> Scenario:
    backdrop = Backdrop(
        cgroups=[CgroupDef("cg_0/sub")], ops=[Op.add_cgroup("cg_0"), Op.add_cgroup("cg_1")]
    )
    steps = [
        Step(hold=HALF, name="sub"),
        Step(ops=[Op.move_all_tasks("cg_0/sub", "cg_1")], hold=HALF, name="sibling"),
    ]
    return Scenario("nested_move_up", steps, backdrop)


# -- interaction -----------------------------------------------------------------------


@canned("io_beside_spin", "interaction", "a cgroup doing synced writes beside spinners")
def io_beside_spin(topo: Topology) -> Scenario:
    return _one(
        "io_beside_spin", CgroupDef("cg_spin"), CgroupDef("cg_io", work=WorkType("io_sync"))
    )


@canned("ping_pong_beside_spin", "interaction", "futex ping-pong pairs beside spinners")
def ping_pong_beside_spin(topo: Topology) -> Scenario:
    pairs = CgroupDef("cg_pairs", workers=2, work=WorkType("futex_ping_pong"))
    return _one("ping_pong_beside_spin", pairs, CgroupDef("cg_spin"))


@canned("cache_pressure_imbalance", "interaction", "4 cache-thrashing workers beside 1 spinner")
def cache_pressure_imbalance(topo: Topology) -> Scenario:
    cache = CgroupDef("cg_cache", workers=4, work=WorkType("cache_pressure", {"size_kb": 256}))
    return _one("cache_pressure_imbalance", cache, CgroupDef("cg_spin", workers=1))


# -- performance -----------------------------------------------------------------------


@canned("cache_yield_wake_affine", "performance", "cache passes that yield after each pass")
def cache_yield_wake_affine(topo: Topology) -> Scenario:
    return _work("cache_yield_wake_affine", "cache_yield", 2)


@canned("fan_out_wake", "performance", "a messenger waking 2 receivers at once, per cgroup")
def fan_out_wake(topo: Topology) -> Scenario:
    return _work("fan_out_wake", "futex_fan_out", 3, fan_out=2)


@canned("fan_out_compute", "performance", "fan-out wakeups; receivers multiply matrices")
def fan_out_compute(topo: Topology) -> Scenario:
    return _work("fan_out_compute", "fan_out_compute", 3, fan_out=2, cache_kb=32, ops=1)


@canned("bursty_wakeups", "performance", "spin bursts between timer sleeps (wake latency)")
def bursty_wakeups(topo: Topology) -> Scenario:
    return _work("bursty_wakeups", "bursty", 2, burst_ms=20.0, sleep_ms=20.0)


# -- stall -----------------------------------------------------------------------------


@canned("stall_detect", "stall", "every CPU saturated, 2 spinners per CPU: no worker may stall")
def stall_detect(topo: Topology) -> Scenario:
    n = len(usable_cpus(topo))
    return _one("stall_detect", CgroupDef("cg_0", workers=n), CgroupDef("cg_1", workers=n))


@canned("stall_recovery", "stall", "saturated, then the host load stops: workers must recover")
def stall_recovery(topo: Topology) -> Scenario:
    n = len(usable_cpus(topo))
    backdrop = Backdrop(cgroups=[CgroupDef("cg_0"), CgroupDef("cg_load", workers=2 * n)])
    steps = [
        Step(hold=HALF, name="saturated"),
        Step(ops=[Op.stop_cgroup("cg_load")], hold=HALF, name="recovered"),
    ]
    return Scenario("stall_recovery", steps, backdrop)
