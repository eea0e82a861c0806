"""Tier 3: scenarios in a real guest on EEVDF: ktstr's fourteen canned ones pass, and every op
takes effect where the kernel shows it (a cpuset change shows in the CPUs used after it)."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

from schedlab_scenario import (
    Affinity,
    Backdrop,
    CgroupDef,
    Cpuset,
    Hold,
    MemPolicy,
    Op,
    Scenario,
    SchedPolicy,
    Step,
)
from schedlab_scenario.catalog import CATALOG
from schedlab_shared.topology import Topology
from tests.framework.prereq import require
from tests.framework.schedlab_cli import default_kernel_or_skip, leftovers, run_cli

pytestmark = pytest.mark.slow

KTSTR_14 = (
    "steady steady_llc cpuset_apply cpuset_clear cpuset_resize cgroup_add cgroup_remove "
    "affinity_change affinity_pinned nested_steady nested_task_move oversubscribed "
    "host_contention mixed_workloads"
).split()
#: the smallest topology each runs on meaningfully (2 CPUs unless it needs more)
TOPOLOGY = {"steady_llc": "1,2,1,1", "cpuset_resize": "1,1,4,1", "affinity_pinned": "1,1,4,1"}
DURATION = {"oversubscribed": "4", "affinity_change": "2"}  # others 1.5 s
SCHED_BATCH, SCHED_EXT = os.SCHED_BATCH, 7


@pytest.fixture(scope="module")
def kernel():  # noqa: ANN201
    require(shutil.which("qemu-system-x86_64") is not None, "qemu-system-x86_64 is not installed")
    return default_kernel_or_skip()


def _run(tmp: Path, *args: str) -> dict:
    run = run_cli(
        ["run", "--engine", "qemu", "--run-dir", str(tmp / "run"), *args], tmp, timeout=900
    )
    result = run.result
    assert result is not None, run.stderr[-3000:]
    assert run.code == 0, f"{result['reasons']}\n{run.stderr[-2000:]}"
    assert leftovers(result["run_id"]) == []
    return result


def _hold(step: dict, **match: object) -> list[dict]:
    """The step's hold segments (its steady state) of the workers matching ``match``."""
    return [
        w
        for w in step["workers"]
        if w["phase"] == "hold" and all(w.get(k) == v for k, v in match.items())
    ]


def _check_records(result: dict, name: str, topo: Topology) -> list[dict]:
    sc = result["scenario"]
    assert sc["name"] == name and "error" not in sc
    plan = CATALOG[name].build(topo).to_document(topo, duration_s=1.0)
    steps = sc["steps"]
    assert len(steps) == len(plan["steps"])
    for step in steps:
        assert step["started_ns"] <= step["hold_ns"] <= step["ended_ns"]
        for op in step["ops"]:
            assert op["ok"], op
            assert step["started_ns"] <= op["started_ns"] <= op["effect_ns"] <= step["hold_ns"]
        hold = _hold(step)
        assert hold, f"step {step['index']}: no worker held"
        for w in hold:
            assert w["work_units"] > 0 and w["start_ns"] >= step["hold_ns"]
            assert set(w["cpus"]) <= set(w["allowed"]), w  # never outside its mask
    return steps


@pytest.mark.parametrize("name", KTSTR_14)
def test_canned_scenario_passes_on_eevdf(kernel, tmp_path: Path, name: str) -> None:  # noqa: ANN001
    spec = TOPOLOGY.get(name, "1,1,2,1")
    result = _run(
        tmp_path, "--scenario", name, "--topology", spec, "--duration", DURATION.get(name, "1.5")
    )
    assert result["passed"] and result["verdict"] == "passed"
    steps = _check_records(result, name, Topology.parse(spec))
    CHECKS.get(name, lambda steps: None)(steps)


# -- what each canned scenario's ops must show --------------------------------------------


def _cpus_within(step: dict, cgroup: str, cpus: list[int]) -> None:
    segs = _hold(step, cgroup=cgroup)
    assert segs, f"no {cgroup} worker held in step {step['index']}"
    for w in segs:
        assert set(w["cpus"]) <= set(cpus), (cgroup, w["cpus"], cpus)
        assert w["seen_cgroup"] == cgroup


def _effective(step: dict, target: str) -> list[int]:
    return next(o["detail"]["effective"] for o in step["ops"] if o["target"] == target)


def _apply(steps: list[dict]) -> None:
    before, after = steps
    assert _effective(after, "cg_0") == [0] and _effective(after, "cg_1") == [1]
    _cpus_within(after, "cg_0", [0])
    _cpus_within(after, "cg_1", [1])


def _clear(steps: list[dict]) -> None:
    before, after = steps
    _cpus_within(before, "cg_0", [0])
    _cpus_within(before, "cg_1", [1])
    assert _effective(after, "cg_0") == [0, 1] == _effective(after, "cg_1")


def _resize(steps: list[dict]) -> None:
    for step in steps[1:]:
        for cg in ("cg_0", "cg_1"):
            _cpus_within(step, cg, _effective(step, cg))
    assert _effective(steps[1], "cg_0") == [0] and _effective(steps[2], "cg_1") == [2]


def _llc(steps: list[dict]) -> None:
    _cpus_within(steps[0], "cg_0", [0])
    _cpus_within(steps[0], "cg_1", [1])


def _add(steps: list[dict]) -> None:
    assert not _hold(steps[0], cgroup="cg_2") and len(_hold(steps[1], cgroup="cg_2")) == 2


def _remove(steps: list[dict]) -> None:
    assert len(_hold(steps[0], cgroup="cg_3")) == 2 and not _hold(steps[1], cgroup="cg_3")
    assert [len(o["detail"]["pids"]) for o in steps[1]["ops"]] == [2, 2]


def _affinity(steps: list[dict]) -> None:
    for step in steps[1:]:
        given = {a["pid"]: a["cpus"] for o in step["ops"] for a in o["detail"]["affinity"]}
        assert len(given) == 4
        for w in _hold(step):
            assert set(w["cpus"]) <= set(given[w["pid"]]) and w["allowed"] == given[w["pid"]]


def _pinned(steps: list[dict]) -> None:
    for w in _hold(steps[0]):
        assert w["allowed"] == [0, 1] and set(w["cpus"]) <= {0, 1}


def _nested(steps: list[dict]) -> None:
    leaves = {w["seen_cgroup"] for w in _hold(steps[0])}
    assert leaves == {"cg_0/sub_a", "cg_0/sub_b", "cg_1/sub_b", "cg_1/sub_a/deep"}


def _moves(steps: list[dict]) -> None:
    where = ["cg_0/sub", "cg_0", "cg_1/sub", "cg_1"]
    for step, cg in zip(steps, where, strict=True):
        assert {w["seen_cgroup"] for w in _hold(step)} == {cg}
    assert [len(s["ops"][0]["detail"]["pids"]) for s in steps[1:]] == [2, 2, 2]


def _host(steps: list[dict]) -> None:
    host = [w for w in _hold(steps[0]) if w["cohort"].startswith("host+")]
    assert len(host) == 2 and {w["seen_cgroup"] for w in host} == {""}  # the root, not ours


CHECKS = {
    "cpuset_apply": _apply,
    "cpuset_clear": _clear,
    "cpuset_resize": _resize,
    "steady_llc": _llc,
    "cgroup_add": _add,
    "cgroup_remove": _remove,
    "affinity_change": _affinity,
    "affinity_pinned": _pinned,
    "nested_steady": _nested,
    "nested_task_move": _moves,
    "host_contention": _host,
}


# -- the ops no canned scenario uses, and the placements ------------------------------------


def test_swap_stop_payloads_and_placements_take_effect(kernel, tmp_path: Path) -> None:  # noqa: ANN001
    topo = Topology()
    py = ["-S", "-c"]
    scenario = Scenario(
        "ops_tour",
        [
            Step(hold=Hold.fixed(0.4), name="start"),
            Step(ops=[Op.swap_cpusets("a", "b")], hold=Hold.fixed(0.4), name="swapped"),
            Step(
                ops=[
                    Op.stop_cgroup("c"),
                    Op.run_payload(
                        "answer", "/usr/bin/python3", [*py, "print(6 * 7)"], cgroup="box"
                    ),
                    Op.wait_payload("answer", timeout_s=60),
                    Op.run_payload(
                        "sleeper", "/usr/bin/python3", [*py, "import time; time.sleep(60)"]
                    ),
                    Op.kill_payload("sleeper"),
                ],
                hold=Hold.fixed(0.4),
                name="stopped",
            ),
        ],
        Backdrop(
            cgroups=[
                CgroupDef("a", cpuset=Cpuset.disjoint(0, 2), workers=1),
                CgroupDef("b", cpuset=Cpuset.disjoint(1, 2), workers=1),
                CgroupDef("c", workers=1, policy=SchedPolicy.ext()),
                CgroupDef(
                    "d",
                    workers=1,
                    policy=SchedPolicy.batch(),
                    nice=5,
                    mempolicy=MemPolicy.bind([0]),
                ),
                CgroupDef("e", workers=1, affinity=Affinity.single_cpu()),
            ],
            ops=[Op.add_cgroup("box")],
        ),
        duration_s=1.0,
    )
    plan = tmp_path / "plan.json"
    plan.write_text(json.dumps(scenario.to_document(topo, duration_s=1.0)))
    result = _run(tmp_path, "--plan", str(plan))
    start, swapped, stopped = result["scenario"]["steps"]
    _cpus_within(start, "a", [0])
    _cpus_within(start, "b", [1])
    assert swapped["ops"][0]["detail"] == {"a": [1], "b": [0]}
    _cpus_within(swapped, "a", [1])
    _cpus_within(swapped, "b", [0])
    # stop_cgroup: c's worker reported and held no more; the payloads ran, in their cgroup
    ops = {(o["op"], o["target"]): o for o in stopped["ops"]}
    assert len(ops[("stop_cgroup", "c")]["detail"]["pids"]) == 1 and not _hold(stopped, cgroup="c")
    answer = ops[("wait_payload", "answer")]["detail"]
    assert (answer["code"], answer["output"]) == (0, "42\n")
    assert ops[("kill_payload", "sleeper")]["detail"]["exit"] == "killed by SIGKILL"
    # placements, as the kernel has them
    (c,) = _hold(start, cgroup="c")
    assert c["policy"] == SCHED_EXT  # runs as normal with no sched_ext scheduler loaded
    (d,) = _hold(start, cgroup="d")
    assert (d["policy"], d["nice"]) == (SCHED_BATCH, 5)
    (e,) = _hold(start, cgroup="e")
    assert e["allowed"] == [0] and e["cpus"] == [0]
