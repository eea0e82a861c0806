"""Work types inside the scenario runner: grouped ones find their partners."""

import shutil

from guest.scenario.cgroupfs import Cgroups
from guest.scenario.runner import run_scenario
from guest.worker_pool import WorkerPool
from schedlab_scenario import CgroupDef, Hold, Scenario, Step, WorkType
from schedlab_shared.topology import Topology


def _play(scenario, tmp_path, duration=0.6):  # noqa: ANN001, ANN202
    pool = WorkerPool.fork(single_threaded=False)
    try:
        plan = scenario.to_document(Topology(1, 1, 2, 1), duration_s=duration)
        tree = Cgroups(str(tmp_path / "cgroup"), rmdir=shutil.rmtree)
        return run_scenario(plan, tree, pool, work_dir=str(tmp_path / "work"))
    finally:
        pool.close()


def test_a_pair_and_a_fan_out_group_work_together_in_a_scenario(tmp_path) -> None:  # noqa: ANN001
    cgs = [
        CgroupDef("pairs", workers=4, work=WorkType("futex_ping_pong")),
        CgroupDef("fan", workers=3, work=WorkType("futex_fan_out", {"fan_out": 2})),
    ]
    out = _play(Scenario("groups", [Step(cgroups=cgs, hold=Hold.fixed(0.3))]), tmp_path)
    assert out.failed == "" and all(r.error == "" for r in out.reports), out.reports
    hold = [w for w in out.steps[0]["workers"] if w["phase"] == "hold"]
    # Whole-step totals per worker: the setup/hold boundary falls mid-exchange, so one
    # phase alone may differ by two between partners.
    total: dict[int, int] = {}
    for w in out.steps[0]["workers"]:
        if w["cgroup"] == "pairs":
            total[w["pid"]] = total.get(w["pid"], 0) + w["work_units"]
    pairs = sorted(total.values())
    # two pairs: each pair's members alternate, so their counts differ by at most one
    assert (
        len(pairs) == 4 and pairs[0] > 0 and pairs[1] - pairs[0] <= 1 and pairs[3] - pairs[2] <= 1
    )
    fan = [w for w in hold if w["cgroup"] == "fan"]
    assert sorted(w["extra"]["rank"] for w in fan) == [0, 1, 2]
    assert all(w["wake"]["n"] > 0 for w in fan if w["extra"]["rank"])


def test_the_work_tour_runs_every_type_and_the_host_passes_it(tmp_path) -> None:  # noqa: ANN001
    from guest import workspec
    from guest.probes import probe_plan
    from verdicts.run_workers import workers_section

    pool = WorkerPool.fork(single_threaded=False)
    try:
        tree = Cgroups(str(tmp_path / "cgroup"), rmdir=shutil.rmtree)
        out = run_scenario(
            probe_plan("work-tour", 10.0, 2), tree, pool, work_dir=str(tmp_path / "w")
        )
    finally:
        pool.close()
    assert out.failed == "" and [r.error for r in out.reports if r.error] == []
    ran = {}
    for st in out.steps:
        for w in st["workers"]:
            if w["phase"] == "hold":
                ran.setdefault(w["work"], []).append(w)
    assert set(ran) == set(workspec.TABLE) - {"payload"}
    idle = [(w["work"], w.get("extra")) for ws in ran.values() for w in ws if w["work_units"] <= 0]
    assert idle == []
    assert len(ran["custom"]) == 2 and {w["extra"].get("exit_code") for w in ran["custom"]} == {
        0,
        None,
    }
    facts = {"workers": [r.as_map() for r in out.reports], "steps": out.steps,
             "backdrop": out.backdrop, "fairness_exempt": list(out.fairness_exempt)}  # fmt: skip
    section = workers_section(facts)
    assert section["passed"], section["reason"]
