"""guest/scenario/document.py: the guest checks the scenario document again, field by field."""

import copy

import msgpack
import pytest

from guest import rundoc
from guest.scenario import document
from guest.spec import PLAN, RunSpec, SpecError
from schedlab_scenario.catalog import CATALOG
from schedlab_shared.topology import Topology

TOPO = Topology(1, 2, 2, 1)


def good():
    return CATALOG["cpuset_apply"].build(TOPO).to_document(TOPO, duration_s=2.0)


def error_of(doc):
    with pytest.raises(SpecError) as ei:
        document.validate(doc)
    return ei.value.key, str(ei.value)


def edit(path_fn):
    d = good()
    path_fn(d)
    return d


CG = lambda d: d["backdrop"]["cgroups"][0]  # noqa: E731
OP = lambda d: d["steps"][1]["ops"][0]  # noqa: E731


@pytest.mark.parametrize(
    ("change", "key", "words"),
    [
        (lambda d: d.update(version=2), "scenario.version", "is not 1"),
        (lambda d: d.update(extra=1), "scenario.extra", "unknown field"),
        (lambda d: d.pop("seed"), "scenario.seed", "missing"),
        (lambda d: d.update(name="../x"), "scenario.name", "outside the allowed set"),
        (lambda d: d.update(duration_s=float("inf")), "scenario.duration_s", "outside"),
        (lambda d: d.update(steps=[]), "scenario.steps", "is empty"),
        (lambda d: d.update(steps=d["steps"] * 40), "scenario.steps", "> 64"),
        (lambda d: d["topology"].update(cpus=65), "scenario.topology.cpus", "outside [1, 64]"),
        (lambda d: d["topology"].update(llcs=[[0, 1], [2]]), "scenario.topology.llcs", "partition"),
        (lambda d: d["topology"].update(usable=[3, 0]), "scenario.topology.usable", "sorted"),
        (lambda d: CG(d).update(name="a" * 33), "scenario.backdrop.cgroups[0].name", "> 32"),
        (lambda d: CG(d).update(name="cg_0/../x"), "scenario.backdrop.cgroups[0].name", "outside"),
        (lambda d: CG(d).update(workers=257), "scenario.backdrop.cgroups[0].workers", "outside"),
        (lambda d: CG(d).update(workers=True), "scenario.backdrop.cgroups[0].workers", "integer"),
        (
            lambda d: CG(d).update(cpuset=[0, 9]),
            "scenario.backdrop.cgroups[0].cpuset[1]",
            "outside [0, 3]",
        ),
        (lambda d: CG(d).update(cpuset=[]), "scenario.backdrop.cgroups[0].cpuset", "is empty"),
        (
            lambda d: CG(d)["work"].update(type="nope"),
            "scenario.backdrop.cgroups[0].work.type",
            "not one of",
        ),
        (
            lambda d: CG(d)["work"]["params"].update(x=1),
            "scenario.backdrop.cgroups[0].work.params.x",
            "unknown parameter",
        ),
        (
            lambda d: CG(d)["policy"].update({"class": "fifo"}),
            "scenario.backdrop.cgroups[0].policy.priority",
            "outside [1, 99]",
        ),
        (
            lambda d: CG(d)["affinity"].update(kind="exact"),
            "scenario.backdrop.cgroups[0].affinity.cpus",
            "is empty",
        ),
        (
            lambda d: CG(d)["affinity"].update(kind="random_subset"),
            "scenario.backdrop.cgroups[0].affinity.count",
            "count >= 1",
        ),
        (
            lambda d: CG(d)["mempolicy"].update(mode="bind", nodes=[1]),
            "scenario.backdrop.cgroups[0].mempolicy.nodes[0]",
            "outside [0, 0]",
        ),
        (lambda d: OP(d).update(op="format_disk"), "scenario.steps[1].ops[0].op", "not one of"),
        (
            lambda d: OP(d).update(cgroup="cg_7"),
            "scenario.steps[1].ops[0].cgroup",
            "does not exist",
        ),
        (lambda d: OP(d).update(cpus=list(range(70))), "scenario.steps[1].ops[0].cpus", "> 64"),
        (
            lambda d: d["steps"][1]["hold"].update(kind="forever"),
            "scenario.steps[1].hold.kind",
            "not one of",
        ),
        (
            lambda d: d["steps"][1]["hold"].update(kind="loop", value=0),
            "scenario.steps[1].hold.value",
            "outside (0.0",
        ),
        (
            lambda d: d["steps"][1].update(
                ops=[
                    {"op": "run_payload", "name": "p", "path": "/a/../b", "args": [], "cgroup": ""}
                ]
            ),
            "scenario.steps[1].ops[0].path",
            "normalized",
        ),
        (
            lambda d: d["steps"][1].update(
                ops=[
                    {"op": "run_payload", "name": "p", "path": "/b", "args": ["a\0"], "cgroup": ""}
                ]
            ),
            "scenario.steps[1].ops[0].args[0]",
            "NUL",
        ),
        (
            lambda d: d["steps"][1].update(ops=[{"op": "kill_payload", "name": "p"}]),
            "scenario.steps[1].ops[0].name",
            "not running",
        ),
        (
            lambda d: d["steps"][1].update(
                ops=[{"op": "move_all_tasks", "from": "cg_0", "to": "cg_0"}]
            ),
            "scenario.steps[1].ops[0].to",
            "into itself",
        ),
        (
            lambda d: d["steps"][1].update(
                ops=[
                    {
                        "op": "spawn",
                        "cgroup": "",
                        "workers": 1024,
                        "work": {"type": "spin", "params": {}},
                        "policy": {"class": "normal", "priority": 0},
                        "nice": 0,
                        "affinity": {"kind": "inherit", "cpus": [], "count": 0},
                        "mempolicy": {"mode": "default", "nodes": [], "flags": []},
                    }
                ]
            ),
            "scenario.steps[1].ops[0].workers",
            "outside [1, 256]",
        ),
    ],
)
def test_each_bad_field_is_named(change, key, words):
    got, text = error_of(edit(change))
    assert got == key, text
    assert words in text


def test_the_total_worker_count_is_bounded():
    d = good()
    cg = copy.deepcopy(CG(d))
    d["backdrop"]["cgroups"] = [dict(cg, name=f"cg_{i}", workers=200) for i in range(6)]
    got, text = error_of(d)
    assert got == "scenario.backdrop.cgroups[5].workers" and "> 1024" in text


def test_non_map_values_and_msgpack_oddities_are_refused():
    for bad in (None, [], "x", 1):
        assert error_of(bad)[0] == "scenario"
    d = good()
    d["steps"][0]["hold"]["value"] = b"\x00"
    assert error_of(d)[0] == "scenario.steps[0].hold.value"


def test_validate_is_idempotent_and_normalises():
    d = good()
    once = document.validate(d)
    assert document.validate(copy.deepcopy(once)) == once
    assert once["backdrop"]["cgroups"][0]["work"] == {
        "type": "spin",
        "params": {"unit_iters": 1024},
    }


def test_the_run_document_carries_a_scenario_document():
    plan = good()
    spec = RunSpec("cgroup-spinners", fairness=0.2, wire_noise=1)
    d = rundoc.build(spec, scenario=plan, entropy=bytes(32), run_id="r")
    wire = msgpack.unpackb(msgpack.packb(d, use_bin_type=True), raw=False)
    rd = rundoc.validate(wire)
    assert rd.scenario == plan
    assert (rd.spec.scenario, rd.spec.duration, rd.spec.fairness, rd.spec.wire_noise) == (
        PLAN,
        2.0,
        0.2,
        1,
    )
    assert rundoc.validate(rd.as_doc()) == rd
    wire["scenario"]["steps"][0]["ops"] = [{"op": "stop_cgroup", "cgroup": "zz"}]
    with pytest.raises(SpecError, match=r"scenario\.steps\[0\]\.ops\[0\]\.cgroup"):
        rundoc.validate(wire)


def test_the_plan_name_without_a_document_is_refused():
    doc = {"version": 1, "scenario": {"kind": "scenario"}, "entropy": bytes(32)}
    with pytest.raises(SpecError, match=r"scenario\.kind"):
        rundoc.validate(doc)


def test_the_verdict_probes_are_valid_documents() -> None:
    from guest.probes import PROBES, probe_plan

    for name in PROBES:
        doc = probe_plan(name, 2.0, 2)
        assert document.validate(doc) == doc
    unfair = probe_plan("verdict-unfair", 2.0, 2)
    assert [o["nice"] for o in unfair["steps"][0]["ops"]] == [10]
    starve = probe_plan("verdict-starve", 2.0, 2)
    (idle,) = starve["steps"][0]["ops"]
    assert idle["policy"]["class"] == "idle" and idle["affinity"]["cpus"] == [0]
    escape = probe_plan("verdict-escape", 2.0, 2)
    assert escape["backdrop"]["cgroups"][0]["cpuset"] == [0]
    (op,) = escape["steps"][0]["ops"]
    assert op["cgroup"] == "cg_0" and op["work"]["params"]["callable"].endswith("escape_callable")
