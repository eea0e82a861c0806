"""schedlab list and run --scenario: catalog entries become run plans, bad ones one line."""

import json

import pytest
from click.testing import CliRunner

from guest.scenario import document
from orchestrator.result import scenario_records
from orchestrator.result_schema import ResultError, validate_result
from orchestrator.scenarios import list_cmd, plan_for
from schedlab_scenario import ScenarioError
from schedlab_scenario.catalog import CATALOG
from schedlab_shared.topology import Topology


def test_the_default_run_is_steady_with_the_cgroups_asked_for():
    two = plan_for(None, Topology(), 2.0, 2, 2)
    assert two.name == "steady" and two.planned_s == 2.0 and two.duration_s == 2.0
    assert two.plan == CATALOG["steady"].build(Topology()).to_document(Topology(), duration_s=2.0)
    three = plan_for(None, Topology(), 1.0, 4, 3)
    cgs = three.plan["steps"][0]["cgroups"]
    assert [c["name"] for c in cgs] == ["cg_0", "cg_1", "cg_2"] and {c["workers"] for c in cgs} == {
        4
    }
    document.validate(three.plan)


def test_a_named_scenario_is_resolved_for_the_topology():
    p = plan_for("cpuset_resize", Topology(1, 1, 4, 1), 3.0, 2, 2)
    assert p.name == "cpuset_resize" and p.planned_s == pytest.approx(3.0)
    assert p.plan["steps"][1]["ops"][1]["cpus"] == [1, 2]


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (("nope", Topology(), 1.0, 2, 2), "no scenario 'nope' (known: steady"),
        (("steady_llc", Topology(), 1.0, 2, 2), "needs at least 2 LLCs; topology 1,1,2,1 has 1"),
        ((None, Topology(), 1.0, 2, 0), "--cgroups: 0 is outside 1..64"),
        ((None, Topology(), 1.0, 0, 2), "--workers: 0 is outside 1..256"),
    ],
)
def test_bad_choices_are_one_line(args, words):
    with pytest.raises(ScenarioError) as ei:
        plan_for(*args)
    assert words in str(ei.value) and "\n" not in str(ei.value)


def test_list_shows_name_category_and_what_it_sets_up():
    out = CliRunner().invoke(list_cmd, [])
    assert out.exit_code == 0
    lines = out.output.splitlines()
    assert len(lines) == len(CATALOG)
    steady = next(ln for ln in lines if ln.startswith("steady "))
    assert "basic" in steady and "2 cgroups" in steady
    assert "(needs 2 llcs)" in next(ln for ln in lines if ln.startswith("steady_llc"))
    doc = json.loads(CliRunner().invoke(list_cmd, ["--json"]).output)
    names = [s["name"] for s in doc["scenarios"]]
    assert set(names) == set(CATALOG) and doc["scenarios"][0].keys() == {
        "name",
        "category",
        "summary",
        "requires",
    }


def _segment(**kw):
    seg = dict(pid=5, cgroup="cg_0", cohort="cg_0", work="spin", step=0, phase="hold")
    seg.update(start_ns=1, end_ns=2, wall_ns=1)
    seg.update(cpu_ns=1, run_delay_ns=0, timeslices=1, migrations=0, nvcsw=0, nivcsw=1, cpus=[0])
    seg.update(kw)
    return seg


def _step(**kw):
    op = {
        "op": "set_cpuset",
        "target": "cg_0",
        "started_ns": 1,
        "effect_ns": 2,
        "ok": True,
        "error": "",
    }
    st = {
        "index": 0,
        "name": "",
        "hold": {"kind": "frac", "value": 1.0},
        "started_ns": 1,
        "hold_ns": 2,
    }
    st.update(ended_ns=3, loops=0, ops=[op], workers=[_segment()], dropped=0)
    st.update(kw)
    return st


def test_step_records_are_checked_on_read():
    good = {
        "scenario": "cpuset_apply",
        "steps": [_step()],
        "backdrop": {"started_ns": 0, "ops": [], "dropped": 0},
    }
    sc = scenario_records(good)
    assert (
        sc["name"] == "cpuset_apply"
        and sc["steps"][0]["workers"][0]["cpus"] == [0]
        and "error" not in sc
    )
    bad = dict(good, steps=[_step(workers=[_segment(cpus=[-1])])])
    sc = scenario_records(bad)
    assert sc["steps"] == [] and "[0].workers[0].cpus[0]" in sc["error"]
    assert scenario_records(None) == {"name": "", "steps": [], "backdrop": None}
    doc = {"passed": True, "verdict": "passed", "reasons": [], "scenario": scenario_records(good)}
    assert validate_result(doc) is doc
    doc["scenario"]["steps"][0]["ops"][0]["effect_ns"] = "soon"
    with pytest.raises(ResultError, match=r"result\.scenario\.steps\[0\]\.ops\[0\]\.effect_ns"):
        validate_result(doc)


def test_a_plan_file_is_checked_like_the_guest_checks_it(tmp_path):
    topo = Topology(1, 1, 4, 1)
    doc = CATALOG["cpuset_resize"].build(topo).to_document(topo, duration_s=1.5)
    f = tmp_path / "plan.json"
    f.write_text(json.dumps(doc))
    p = plan_for(None, topo, 9.0, 2, 2, plan_file=f)
    assert p.plan == doc and p.name == "cpuset_resize" and p.duration_s == 1.5
    with pytest.raises(ScenarioError, match="another topology than 1,1,2,1"):
        plan_for(None, Topology(), 1.0, 2, 2, plan_file=f)
    with pytest.raises(ScenarioError, match="not both"):
        plan_for("steady", topo, 1.0, 2, 2, plan_file=f)
    doc["steps"][1]["ops"][0]["cgroup"] = "cg_9"
    f.write_text(json.dumps(doc))
    with pytest.raises(
        ScenarioError, match=r"scenario\.steps\[1\]\.ops\[0\]\.cgroup: cgroup 'cg_9'"
    ):
        plan_for(None, topo, 1.0, 2, 2, plan_file=f)
    f.write_text("{")
    with pytest.raises(ScenarioError, match="--plan"):
        plan_for(None, topo, 1.0, 2, 2, plan_file=f)
