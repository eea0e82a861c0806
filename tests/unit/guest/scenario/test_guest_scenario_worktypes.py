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
    pairs = sorted(w["work_units"] for w in hold if w["cgroup"] == "pairs")
    # two pairs: each pair's members alternate, so their counts differ by at most one
    assert (
        len(pairs) == 4 and pairs[0] > 0 and pairs[1] - pairs[0] <= 1 and pairs[3] - pairs[2] <= 1
    )
    fan = [w for w in hold if w["cgroup"] == "fan"]
    assert sorted(w["extra"]["rank"] for w in fan) == [0, 1, 2]
    assert all(w["wake"]["n"] > 0 for w in fan if w["extra"]["rank"])
