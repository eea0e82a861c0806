"""schedlab_scenario: every bad value is refused when built, by an error naming its field."""

import pytest

from guest.scenario import work
from schedlab_scenario import (
    Affinity,
    Backdrop,
    CgroupDef,
    Cpuset,
    Hold,
    MemPolicy,
    Op,
    Requires,
    Scenario,
    ScenarioError,
    SchedPolicy,
    Step,
    WorkType,
)
from schedlab_scenario.errors import ScenarioError as Err
from schedlab_shared.topology import Topology


def field_of(fn):
    with pytest.raises(ScenarioError) as ei:
        fn()
    return ei.value.field, str(ei.value)


@pytest.fixture
def pair_type():
    """A grouped work type (pairs), registered for the test only."""
    spec = work.WorkTypeSpec(
        "test_pairs", lambda p, path: work.params(p, path, {}), lambda p: 2, ""
    )
    work.register(spec)
    yield "test_pairs"
    del work.WORK_TYPES["test_pairs"]


@pytest.mark.parametrize(
    ("build", "field", "words"),
    [
        (lambda: CgroupDef("cg_0", workers=0), "workers", "0 workers"),
        (lambda: CgroupDef("cg_0", workers=-1), "workers", "at least 1"),
        (lambda: CgroupDef("cg_0", workers=1000), "workers", "> 256"),
        (lambda: CgroupDef("cg_0", workers=2.0), "workers", "want an integer"),
        (lambda: CgroupDef("cg 0"), "name", "outside the allowed set"),
        (lambda: CgroupDef(""), "name", "cgroup name"),
        (lambda: CgroupDef("a/b/c/d/e"), "name", "deeper than 4"),
        (lambda: CgroupDef("cg_0", nice=20), "nice", "-20..19"),
        (lambda: CgroupDef("cg_0", nice=1, policy=SchedPolicy.fifo(5)), "nice", "no nice"),
        (lambda: CgroupDef("cg_0", cpuset=[0, 1]), "cpuset", "Cpuset.exact"),
        (lambda: CgroupDef("cg_0", work="spin"), "work", "WorkType"),
        (lambda: WorkType("nope"), "type", "is not one of"),
        (lambda: WorkType("spin", {"bogus": 1}), "params.bogus", "unknown parameter"),
        (lambda: WorkType("spin", {"unit_iters": 0}), "params.unit_iters", "outside"),
        (lambda: SchedPolicy.fifo(0), "priority", "1..99"),
        (lambda: SchedPolicy("normal", 3), "priority", "no priority"),
        (lambda: SchedPolicy("deadline"), "cls", "not one of"),
        (lambda: Affinity.random_subset(0), "count", "random_subset needs"),
        (lambda: Affinity.exact([]), "cpus", "at least one CPU"),
        (lambda: Affinity("single_cpu", cpus=(1,)), "cpus", "only an exact"),
        (lambda: MemPolicy.bind([]), "nodes", "at least one node"),
        (lambda: MemPolicy("local", (0,)), "nodes", "no nodes"),
        (lambda: MemPolicy.bind([0], ["static_nodes", "relative_nodes"]), "flags", "combines"),
        (lambda: MemPolicy.bind([0], ["sticky"]), "flags[0]", "not one of"),
        (lambda: Hold.frac(0), "value", "outside (0, 100]"),
        (lambda: Hold.frac(float("nan")), "value", "finite"),
        (lambda: Hold.loop(0), "value", "interval"),
        (lambda: Hold.fixed(-1), "value", "outside"),
        (lambda: Cpuset.llc(-1), "index", "negative"),
        (lambda: Cpuset.disjoint(2, 2), "index", "slice 2 of 2"),
        (lambda: Cpuset.disjoint(0, 0), "of", "at least 1"),
        (lambda: Cpuset.range(0.5, 0.5), "start", "start < end"),
        (lambda: Cpuset.overlap(0, 2, 0.0), "frac", "(0, 1]"),
        (lambda: Cpuset.exact([1, 1]), "cpus", "repeats"),
        (lambda: Op.swap_cpusets("a", "a"), "b", "itself"),
        (lambda: Op.move_all_tasks("a", "a"), "dst", "itself"),
        (lambda: Op.set_cpuset("cg_0", "0-1"), "cpus", "Cpuset.llc"),
        (lambda: Op.run_payload("x y", "/bin/true"), "name", "A-Za-z0-9"),
        (lambda: Op.run_payload("x", "bin/true"), "path", "absolute"),
        (lambda: Op.wait_payload("x", 0), "timeout_s", "outside"),
        (lambda: Op.spawn("cg_0", workers=0), "workers", "at least 1"),
        (lambda: Step(hold=0.5), "hold", "Hold.frac"),
        (lambda: Step(ops=[CgroupDef("cg_0")]), "ops[0]", "want OpBase"),
        (lambda: Scenario("Bad-Name", [Step()]), "name", "a-z0-9_"),
        (lambda: Scenario("s", []), "steps", "at least one Step"),
        (lambda: Scenario("s", [Step()], duration_s=0), "duration_s", "outside"),
        (lambda: Scenario("s", [Step()], seed=-1), "seed", "2**32"),
    ],
)
def test_a_bad_value_names_its_field(build, field, words):
    got_field, text = field_of(build)
    assert got_field == field
    assert words in text
    assert text.startswith(f"{field}: ")


def test_a_group_size_that_does_not_divide_the_workers(pair_type):
    assert CgroupDef("cg_0", workers=4, work=WorkType(pair_type)).workers == 4
    field, text = field_of(lambda: CgroupDef("cg_0", workers=3, work=WorkType(pair_type)))
    assert field == "workers" and "not a multiple of test_pairs's group of 2" in text
    # workers=None takes the run's default, checked when resolved.
    s = Scenario("s", [Step(cgroups=[CgroupDef("cg_0", work=WorkType(pair_type))])])
    assert (
        s.to_document(Topology(), duration_s=1, workers=2)["steps"][0]["cgroups"][0]["workers"] == 2
    )
    field, _ = field_of(lambda: s.to_document(Topology(), duration_s=1, workers=3))
    assert field == "steps[0].cgroups[0].workers"


@pytest.mark.parametrize(
    ("steps", "backdrop", "field", "words"),
    [
        (
            [Step(ops=[Op.set_cpuset("cg_9", Cpuset.llc(0))])],
            Backdrop(),
            "steps[0].ops[0].cgroup",
            "'cg_9' does not exist",
        ),
        (
            [Step(cgroups=[CgroupDef("cg_0"), CgroupDef("cg_0")])],
            Backdrop(),
            "steps[0].cgroups[1].name",
            "exists already",
        ),
        (
            [Step(cgroups=[CgroupDef("cg_0/sub")])],
            Backdrop(),
            "steps[0].cgroups[0].name",
            "parent cgroup 'cg_0'",
        ),
        # A step's cgroups end with it: the next step cannot name them.
        (
            [Step(cgroups=[CgroupDef("cg_0")]), Step(ops=[Op.stop_cgroup("cg_0")])],
            Backdrop(),
            "steps[1].ops[0].cgroup",
            "does not exist",
        ),
        (
            [Step(ops=[Op.move_all_tasks("cg_0", "tmp")], cgroups=[])],
            Backdrop(cgroups=[CgroupDef("cg_0")]),
            "steps[0].ops[0].dst",
            "does not exist",
        ),
        (
            [Step(ops=[Op.add_cgroup("tmp"), Op.move_all_tasks("cg_0", "tmp")])],
            Backdrop(cgroups=[CgroupDef("cg_0")]),
            "steps[0].ops[1].dst",
            "ends with the step",
        ),
        (
            [Step(ops=[Op.add_cgroup("x")], hold=Hold.loop(0.1))],
            Backdrop(),
            "steps[0].ops[0].op",
            "cannot repeat",
        ),
        ([Step(ops=[Op.wait_payload("p")])], Backdrop(), "steps[0].ops[0].name", "not running"),
        (
            [Step(ops=[Op.run_payload("p", "/bin/true"), Op.run_payload("p", "/bin/true")])],
            Backdrop(),
            "steps[0].ops[1].name",
            "running already",
        ),
        (
            [Step(ops=[Op.remove_cgroup("cg_0"), Op.stop_cgroup("cg_0/sub")])],
            Backdrop(ops=[Op.add_cgroup("cg_0"), Op.add_cgroup("cg_0/sub")]),
            "steps[0].ops[1].cgroup",
            "does not exist",
        ),
    ],
)
def test_references_are_checked_against_what_is_alive(steps, backdrop, field, words):
    got, text = field_of(lambda: Scenario("s", steps, backdrop))
    assert got == field and words in text


def test_what_the_backdrop_holds_lives_through_every_step():
    s = Scenario(
        "s",
        [
            Step(hold=Hold.frac(0.5)),
            Step(ops=[Op.clear_cpuset("cg_0"), Op.move_all_tasks("cg_0", "cg_1")]),
        ],
        Backdrop(cgroups=[CgroupDef("cg_0", cpuset=Cpuset.llc(0))], ops=[Op.add_cgroup("cg_1")]),
    )
    d = s.to_document(Topology(), duration_s=2.0)
    assert d["backdrop"]["ops"][0]["cgroup"]["workers"] == 0  # an empty move target
    assert d["steps"][1]["ops"][1] == {"op": "move_all_tasks", "from": "cg_0", "to": "cg_1"}


def test_topology_errors_name_the_field_when_resolved():
    topo = Topology(1, 2, 2, 1)
    bad = [
        (
            CgroupDef("a", cpuset=Cpuset.llc(2)),
            "cpuset.index",
            "LLC 2 is outside the topology (2 LLCs)",
        ),
        (CgroupDef("a", cpuset=Cpuset.numa(1)), "cpuset.index", "node 1 is outside"),
        (CgroupDef("a", cpuset=Cpuset.exact([4])), "cpuset.cpus", "CPU 4 is outside"),
        (CgroupDef("a", cpuset=Cpuset.disjoint(3, 4)), "cpuset.of", "leave a slice empty"),
        (CgroupDef("a", affinity=Affinity.exact([7])), "cpus", "CPU 7 is outside"),
        (CgroupDef("a", mempolicy=MemPolicy.bind([1])), "nodes", "node 1 is outside"),
    ]
    for cg, field, words in bad:
        s = Scenario("s", [Step(cgroups=[cg])])
        got, text = field_of(lambda s=s: s.to_document(topo, duration_s=1))
        assert got == f"steps[0].cgroups[0].{field}", text
        assert words in text
    s = Scenario("s", [Step()], Backdrop(ops=[Op.add_cgroup("e", Cpuset.llc(5))]))
    assert field_of(lambda: s.to_document(topo, duration_s=1))[0] == "backdrop.ops[0].cpuset.index"


def test_requirements_and_duration_are_checked_when_resolved():
    s = Scenario("s", [Step()], requires=Requires(llcs=2))
    field, text = field_of(lambda: s.to_document(Topology(), duration_s=1))
    assert field == "requires.llcs" and "needs at least 2 LLCs; topology 1,1,2,1 has 1" in text
    assert field_of(lambda: Scenario("s", [Step()]).to_document(Topology()))[0] == "duration_s"
    assert (
        Scenario("s", [Step()], duration_s=3).to_document(Topology(), duration_s=1)["duration_s"]
        == 3.0
    )


def test_planned_seconds_follow_the_holds():
    steps = [
        Step(hold=Hold.frac(0.25)),
        Step(hold=Hold.fixed(1.0)),
        Step(ops=[], hold=Hold.loop(0.1)),
    ]
    assert Scenario("s", steps).planned_s(4.0) == pytest.approx(4.0)  # the loop uses up the rest
    assert Scenario("s", steps[:2]).planned_s(4.0) == pytest.approx(2.0)


def test_the_model_is_frozen_and_lists_become_tuples():
    step = Step(ops=[Op.clear_cpuset("cg_0")], cgroups=[CgroupDef("cg_0")])
    assert isinstance(step.ops, tuple) and isinstance(step.cgroups, tuple)
    with pytest.raises(AttributeError):
        step.hold = Hold.frac(1)  # type: ignore[misc]
    with pytest.raises(TypeError):
        WorkType("spin").params["unit_iters"] = 3  # type: ignore[index]
    assert CgroupDef("cg_0") == CgroupDef("cg_0", workers=None)
    assert (
        repr(CgroupDef("cg_0", cpuset=Cpuset.llc(1), workers=4))
        == "CgroupDef('cg_0', cpuset=Cpuset.llc(1), workers=4)"
    )


def test_error_type_is_one_class():
    assert Err is ScenarioError and issubclass(ScenarioError, ValueError)
    e = ScenarioError("workers", "bad").under("steps[0].cgroups[1]")
    assert (e.field, str(e)) == ("steps[0].cgroups[1].workers", "steps[0].cgroups[1].workers: bad")
