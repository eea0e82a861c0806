import pytest

from orchestrator.scheduler.definition import SchedFlag, SchedulerDef, TopologyConstraints
from orchestrator.scheduler.examples import EXAMPLES
from schedlab_shared.topology_presets import PRESETS
from schedlab_test.gauntlet import Constraints, GauntletError, expand, flag_profiles

SCHED = SchedulerDef(
    name="toy",
    binary="toy",
    flags=(
        SchedFlag("llc"),
        SchedFlag("borrow"),
        SchedFlag("steal", requires=("llc",)),
    ),
)


def names(profiles):
    return [p.name for p in profiles]


def test_power_set_filtered_by_requires() -> None:
    # 8 subsets, less the 2 with steal but not llc.
    assert names(flag_profiles(SCHED)) == [
        "default",
        "llc",
        "borrow",
        "llc+borrow",
        "llc+steal",
        "llc+borrow+steal",
    ]


def test_required_and_excluded_flags() -> None:
    assert names(flag_profiles(SCHED, required=["llc"])) == [
        "llc",
        "llc+borrow",
        "llc+steal",
        "llc+borrow+steal",
    ]
    assert names(flag_profiles(SCHED, excluded=["llc"])) == ["default", "borrow"]
    with pytest.raises(GauntletError, match="both required and excluded"):
        flag_profiles(SCHED, required=["llc"], excluded=["llc"])
    with pytest.raises(GauntletError, match="has no flag nope"):
        flag_profiles(SCHED, excluded=["nope"])


def test_a_huge_power_set_is_refused_before_it_is_enumerated() -> None:
    with pytest.raises(GauntletError, match="gauntlet_flags"):
        flag_profiles(EXAMPLES["scx_qmap"])
    two = flag_profiles(EXAMPLES["scx_qmap"], among=["batch", "boost-nice"])
    assert names(two) == ["default", "batch", "batch+boost-nice"]


def test_constraints_prune_presets_and_variant_names() -> None:
    vs = expand("t", SCHED, Constraints(max_cpus=8, requires_smt=True), excluded=["steal"])
    assert {v.preset.name for v in vs} == {"smt-2llc"}
    assert [v.id for v in vs] == [
        "gauntlet/t/smt-2llc/default",
        "gauntlet/t/smt-2llc/llc",
        "gauntlet/t/smt-2llc/borrow",
        "gauntlet/t/smt-2llc/llc+borrow",
    ]


def test_an_excluded_preset_is_not_generated() -> None:
    vs = expand(
        "t", SCHED, Constraints(min_llcs=2, max_nodes=1), presets=["tiny-1llc", "tiny-2llc"]
    )
    assert {v.preset.name for v in vs} == {"tiny-2llc"}
    numa = expand("t", SCHED, Constraints(min_nodes=2))
    assert numa and all(v.preset.shape.nodes >= 2 for v in numa)


def test_scheduler_constraints_prune_too() -> None:
    odd = SchedulerDef(name="pair", binary="pair", topology=TopologyConstraints(cpus_multiple_of=2))
    vs = expand("t", odd, presets=list(PRESETS))
    assert "odd-3llc" not in {v.preset.name for v in vs}  # 9 CPUs
    assert "tiny-1llc" in {v.preset.name for v in vs}


def test_kernels_are_a_dimension() -> None:
    vs = expand(
        "t",
        SCHED,
        presets=["tiny-1llc"],
        excluded=["llc", "borrow", "steal"],
        kernels=["7.2", "6.12", "7.2"],
    )
    assert [v.id for v in vs] == [
        "gauntlet/t/tiny-1llc/default/7.2",
        "gauntlet/t/tiny-1llc/default/6.12",
    ]


def test_bad_presets_and_constraints() -> None:
    with pytest.raises(GauntletError, match="no preset tiny"):
        expand("t", SCHED, presets=["tiny"])
    with pytest.raises(GauntletError, match="max_cpus"):
        Constraints(min_cpus=8, max_cpus=4)
