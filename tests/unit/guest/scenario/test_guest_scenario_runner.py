"""The scenario runner against a temp-dir cgroup tree, with a real worker parent and real forks."""

import os
import shutil
import signal
import threading
import time

import pytest

from guest.scenario import placement, record
from guest.scenario.cgroupfs import CgroupError, Cgroups, format_cpus, parse_cpus
from guest.scenario.runner import planned_s, run_scenario, spinners_plan
from guest.scenario.stepclock import StepClock, StepReader, phase_of
from guest.worker_pool import WorkerPool
from schedlab_scenario import (
    Affinity,
    Backdrop,
    CgroupDef,
    Hold,
    Op,
    Scenario,
    SchedPolicy,
    Step,
)
from schedlab_scenario.catalog import CATALOG
from schedlab_shared.topology import Topology

TOPO = Topology(1, 1, 2, 1)


class Tree(Cgroups):
    """A temp-dir cgroup root that logs what the runner did, in order."""

    def __init__(self, root, fail_cpus_on=None):
        super().__init__(root, rmdir=shutil.rmtree)
        self.log = []
        self.fail_cpus_on = fail_cpus_on

    def create(self, name):
        self.log.append(("create", name))
        super().create(name)

    def set_cpus(self, name, cpus):
        if name == self.fail_cpus_on:
            raise CgroupError(16, f"write to {name}/cpuset.cpus: Device or resource busy")
        self.log.append(("cpus", name, format_cpus(cpus or [])))
        super().set_cpus(name, cpus)

    def move(self, name, pid):
        self.log.append(("move", name, pid))
        super().move(name, pid)

    def remove(self, name):
        self.log.append(("remove", name))
        return super().remove(name)


@pytest.fixture
def pool():
    p = WorkerPool.fork(single_threaded=False)
    yield p
    p.close()


@pytest.fixture
def tree(tmp_path):
    return Tree(str(tmp_path / "cgroup"))


def play(scenario, tree, pool, tmp_path, duration=0.6, topo=TOPO, **kw):
    plan = scenario.to_document(topo, duration_s=duration)
    return run_scenario(plan, tree, pool, work_dir=str(tmp_path / "work"), **kw)


def gone(pids, timeout_s=5.0):
    end = time.monotonic() + timeout_s
    while time.monotonic() < end and any(os.path.exists(f"/proc/{p}") for p in pids):
        time.sleep(0.01)
    return not any(os.path.exists(f"/proc/{p}") for p in pids)


def test_a_cpuset_change_mid_run_has_a_record_and_shows_per_step(tree, pool, tmp_path):
    out = play(CATALOG["cpuset_apply"].build(TOPO), tree, pool, tmp_path)
    assert out.verdict.passed or "fairness" in out.verdict.reason, out.verdict.reason  # a busy host
    assert out.failed == "" and out.cleanup_errors == []
    s0, s1 = out.steps
    ops = s1["ops"]
    # the handshake: step 0's hold segments closed before step 1's first op began
    assert all(w["end_ns"] <= ops[0]["started_ns"] for w in s0["workers"] if w["phase"] == "hold")
    assert s1["late"] == 0 and s1["sync_ns"] > 0
    assert [(o["op"], o["target"], o["ok"]) for o in ops] == [
        ("set_cpuset", "cg_0", True),
        ("set_cpuset", "cg_1", True),
    ]
    assert ops[0]["detail"] == {"cpus": [0], "effective": [0]}
    assert (
        s1["started_ns"]
        <= ops[0]["started_ns"]
        <= ops[0]["effect_ns"]
        <= s1["hold_ns"]
        <= s1["ended_ns"]
    )
    assert ("cpus", "cg_0", "0") in tree.log and ("cpus", "cg_1", "1") in tree.log
    # every worker reports a segment for each step, each checked against the record schema
    pids = {w["pid"] for w in s0["workers"]}
    assert len(pids) == 4 and pids == {w["pid"] for w in s1["workers"]}
    for step in out.steps:
        for seg in step["workers"]:
            record.check_segment(seg)
            assert seg["step"] == step["index"] and seg["phase"] in ("setup", "hold")
            if seg["phase"] == "hold":  # it begins once the step's ops took effect
                assert seg["start_ns"] >= step["hold_ns"] and seg["work_units"] > 0
            start = out.backdrop["started_ns"] if step["index"] == 0 else step["started_ns"]
            assert (
                start <= seg["start_ns"] < seg["end_ns"]
            )  # the backdrop's workers start in step 0
            assert seg["wall_ns"] == seg["end_ns"] - seg["start_ns"]
    assert {w["cohort"] for w in s0["workers"]} == {"cg_0", "cg_1"}
    assert sum(r.work_units for r in out.reports) == sum(
        w["work_units"] for s in out.steps for w in s["workers"]
    )
    assert record.check_steps(out.steps) and record.check_backdrop(out.backdrop)
    assert [o["target"] for o in out.backdrop["ops"]] == ["cg_0", "cg_1"]
    assert not os.path.exists(tree.base) and gone(pids)


def test_order_ops_then_cgroups_and_step_things_end_with_the_step(tree, pool, tmp_path):
    scenario = Scenario(
        "order",
        [
            Step(
                ops=[Op.add_cgroup("tmp")],
                cgroups=[CgroupDef("tmp/leaf", workers=1)],
                hold=Hold.fixed(0.2),
            ),
            Step(ops=[Op.spawn("keep", workers=1)], hold=Hold.fixed(0.2)),
        ],
        Backdrop(cgroups=[CgroupDef("keep", workers=1)], ops=[Op.add_cgroup("empty")]),
    )
    out = play(scenario, tree, pool, tmp_path)
    creates = [e for e in tree.log if e[0] in ("create", "remove")]
    assert creates == [
        ("create", "empty"),
        ("create", "keep"),
        ("create", "tmp"),
        ("create", "tmp/leaf"),
        ("remove", "tmp/leaf"),  # step 0's cgroups go at its end, deepest first
        ("remove", "tmp"),
    ]
    assert out.failed == "" and out.cleanup_errors == []
    leaf = [w for w in out.steps[0]["workers"] if w["cgroup"] == "tmp/leaf"]
    # started as the step set up: a setup segment unless the hold began first
    assert [w["phase"] for w in leaf] in (["setup", "hold"], ["hold"])
    assert not [w for w in out.steps[1]["workers"] if w["cohort"] == "tmp/leaf"]
    spawned = [w for w in out.steps[1]["workers"] if w["cohort"].startswith("keep+")]
    assert [w["phase"] for w in spawned] in (["setup", "hold"], ["hold"])
    assert spawned[-1]["cgroup"] == "keep"
    keep = [w for w in out.steps[1]["workers"] if w["cohort"] == "keep"]
    assert len(keep) == 2  # the backdrop's worker spans both steps, both phases
    pid = keep[0]["pid"]
    segs = [(s["index"], w["phase"]) for s in out.steps for w in s["workers"] if w["pid"] == pid]
    assert segs == [(0, "setup"), (0, "hold"), (1, "setup"), (1, "hold")]
    hold1 = next(w for w in keep if w["phase"] == "hold")
    assert hold1["start_ns"] >= out.steps[1]["hold_ns"]
    assert out.steps[1]["hold_ns"] >= max(o["effect_ns"] for o in out.steps[1]["ops"])
    assert not os.path.exists(tree.base)


def test_a_failed_op_ends_the_scenario_and_names_itself(tmp_path, pool):
    tree = Tree(str(tmp_path / "cgroup"), fail_cpus_on="cg_1")
    t0 = time.monotonic()
    out = play(CATALOG["cpuset_apply"].build(TOPO), tree, pool, tmp_path, duration=4.0)
    assert time.monotonic() - t0 < 4.0  # step 1's hold was skipped
    assert not out.verdict.passed
    assert "step 1 op 1: set_cpuset cg_1: " in out.failed and "busy" in out.failed
    ops = out.steps[1]["ops"]
    assert [o["ok"] for o in ops] == [True, False] and "busy" in ops[1]["error"]
    assert any(c.name == "ops" and not c.passed for c in out.verdict.checks)
    assert len(out.reports) == 4 and all(r.error == "" for r in out.reports)
    assert gone([r.pid for r in out.reports]) and not os.path.exists(tree.base)


def test_a_stop_request_ends_early_with_partial_reports(tree, pool, tmp_path):
    stop = threading.Event()
    threading.Timer(0.4, stop.set).start()
    t0 = time.monotonic()
    out = play(CATALOG["steady"].build(TOPO), tree, pool, tmp_path, duration=30.0, stop=stop)
    assert time.monotonic() - t0 < 10
    assert out.stopped and len(out.reports) == 4
    assert all(r.work_units > 0 and not r.error for r in out.reports)


def test_payloads_run_wait_and_kill(tree, pool, tmp_path):
    scenario = Scenario(
        "payloads",
        [
            Step(
                ops=[
                    Op.run_payload("echo", "/bin/sh", ["-c", "echo hello; exit 3"], cgroup="box"),
                    Op.wait_payload("echo", timeout_s=10),
                    Op.run_payload("sleeper", "/bin/sleep", ["30"]),
                    Op.kill_payload("sleeper"),
                    Op.run_payload("missing", "/nonexistent/prog"),
                    Op.wait_payload("missing", timeout_s=10),
                    Op.run_payload("left", "/bin/sleep", ["30"]),  # ends with the step
                ],
                hold=Hold.fixed(0.1),
            )
        ],
        Backdrop(ops=[Op.add_cgroup("box")]),
    )
    out = play(scenario, tree, pool, tmp_path)
    ops = {(o["op"], o["target"]): o for o in out.steps[0]["ops"]}
    assert out.failed == "", out.failed
    waited = ops[("wait_payload", "echo")]["detail"]
    assert (waited["code"], waited["exit"], waited["output"]) == (3, "exit 3", "hello\n")
    run = ops[("run_payload", "echo")]["detail"]
    assert ("move", "box", run["pid"]) in tree.log
    assert ops[("kill_payload", "sleeper")]["detail"]["exit"] == "killed by SIGKILL"
    missing = ops[("wait_payload", "missing")]["detail"]
    assert missing["code"] == 127 and "FileNotFoundError" in missing["error"]
    left = ops[("run_payload", "left")]["detail"]["pid"]
    assert gone([left]) and out.reports == []  # payloads are not workers


def test_a_wait_that_times_out_fails_the_op(tree, pool, tmp_path):
    scenario = Scenario(
        "timeout",
        [
            Step(
                ops=[Op.run_payload("slow", "/bin/sleep", ["30"]), Op.wait_payload("slow", 0.2)],
                hold=Hold.fixed(0),
            )
        ],
    )
    out = play(scenario, tree, pool, tmp_path)
    assert "did not exit in 0.2 s" in out.failed
    pid = out.steps[0]["ops"][0]["detail"]["pid"]
    assert gone([pid])


def test_a_loop_step_repeats_its_ops_until_the_duration_is_used_up(tree, pool, tmp_path):
    cpu = min(os.sched_getaffinity(0))
    scenario = Scenario(
        "loop",
        [Step(ops=[Op.set_affinity("cg_0", Affinity.exact([cpu]))], hold=Hold.loop(0.1))],
        Backdrop(cgroups=[CgroupDef("cg_0", workers=1)]),
    )
    t0 = time.monotonic()
    out = play(scenario, tree, pool, tmp_path, duration=0.6)
    assert 0.5 < time.monotonic() - t0 < 3
    step = out.steps[0]
    assert step["loops"] >= 3 and len(step["ops"]) == step["loops"] + 1
    assert all(o["detail"]["affinity"][0]["cpus"] == [cpu] for o in step["ops"])
    hold = next(w for w in step["workers"] if w["phase"] == "hold")
    assert hold["cpus"] == [cpu]  # the hold begins after the first pass took effect


def test_host_workers_stay_outside_our_cgroups_and_moves_follow_the_tasks(tree, pool, tmp_path):
    scenario = Scenario(
        "moves",
        [
            Step(ops=[Op.spawn("", workers=1)], hold=Hold.fixed(0.15)),
            Step(ops=[Op.move_all_tasks("a", "b")], hold=Hold.fixed(0.15)),
        ],
        Backdrop(cgroups=[CgroupDef("a", workers=2)], ops=[Op.add_cgroup("b")]),
    )
    out = play(scenario, tree, pool, tmp_path)
    host = [w for w in out.steps[0]["workers"] if w["cohort"].startswith("host+")]
    # one worker; a setup segment beside its hold one when it started before the hold
    pids = {w["pid"] for w in host}
    assert len(pids) == 1 and {w["cgroup"] for w in host} == {""}, host
    assert not [e for e in tree.log if e[0] == "move" and e[2] in pids]
    moved = out.steps[1]["ops"][0]["detail"]["pids"]
    assert len(moved) == 2 and {
        w["cgroup"] for w in out.steps[1]["workers"] if w["pid"] in moved
    } == {"b"}
    assert {w["cgroup"] for w in out.steps[0]["workers"] if w["pid"] in moved} == {"a"}
    assert {r.cgroup for r in out.reports if r.pid in moved} == {
        "a"
    }  # reports name the home cgroup


def test_affinity_kinds_are_worked_out_per_worker():
    topo = {"usable": [0, 1, 2], "llcs": [[0, 1], [2, 3]]}
    rng = placement.Rng(7)
    single = [
        placement.affinity_cpus({"kind": "single_cpu"}, i, [1, 2], topo, rng) for i in range(3)
    ]
    assert single == [[1], [2], [1]]
    llc = [placement.affinity_cpus({"kind": "llc_aligned"}, i, [], topo, rng) for i in range(3)]
    assert llc == [[0, 1], [2], [0, 1]]
    sub = placement.affinity_cpus({"kind": "random_subset", "count": 2}, 0, [0, 1, 2], topo, rng)
    assert len(sub) == 2 and set(sub) <= {0, 1, 2}
    again = placement.affinity_cpus(
        {"kind": "random_subset", "count": 2}, 0, [0, 1, 2], topo, placement.Rng(7)
    )
    assert again == sub  # the seed decides
    assert placement.affinity_cpus({"kind": "inherit"}, 0, [0], topo, rng) is None
    assert placement.affinity_cpus({"kind": "cross_cgroup"}, 0, [0], topo, rng) == [0, 1, 2]


def test_policy_and_nice_are_applied_from_outside():
    pid = os.fork()
    if pid == 0:
        time.sleep(5)
        os._exit(0)
    try:
        placement.apply_policy(pid, {"class": "batch", "priority": 0}, 5)
        assert os.sched_getscheduler(pid) == os.SCHED_BATCH
        assert os.getpriority(os.PRIO_PROCESS, pid) == 5
        placement.apply_policy(pid, {"class": "idle", "priority": 0}, 0)
        assert os.sched_getscheduler(pid) == os.SCHED_IDLE
    finally:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)


def test_a_policy_the_kernel_refuses_fails_the_spawn(tree, pool, tmp_path, monkeypatch):
    monkeypatch.setitem(placement.POLICY_NUMBERS, "batch", 99)  # no such policy: EINVAL
    scenario = Scenario(
        "p",
        [
            Step(
                cgroups=[CgroupDef("cg_0", workers=1, policy=SchedPolicy.batch())],
                hold=Hold.fixed(0.1),
            )
        ],
    )
    out = play(scenario, tree, pool, tmp_path)
    assert "add_cgroup cg_0" in out.failed and "Invalid argument" in out.failed
    assert gone([r.pid for r in out.reports])


def test_memory_policy_is_applied_by_the_worker(tree, pool, tmp_path):
    from schedlab_scenario import MemPolicy

    scenario = Scenario(
        "m",
        [
            Step(
                cgroups=[CgroupDef("cg_0", workers=1, mempolicy=MemPolicy.preferred(0))],
                hold=Hold.fixed(0.1),
            )
        ],
    )
    out = play(scenario, tree, pool, tmp_path)
    assert out.reports[0].error == "" and out.reports[0].work_units > 0


def test_step_clock_and_cpu_lists(tmp_path):
    clock = StepClock(str(tmp_path / "w" / "step"))
    clock.clear(3)
    reader = StepReader(clock.path, 3)
    assert phase_of(reader.read()) == (0, "setup") and clock.acked(3) == -1
    clock.set(5)
    assert phase_of(reader.read()) == (5, "setup")
    clock.set(5, hold=True)
    assert phase_of(reader.read()) == (5, "hold")
    polls = []
    assert clock.wait(lambda: [3], 0.05, polls.append) == [3] and polls  # it never looked
    reader.ack(reader.read())
    assert clock.acked(3) == 11 and clock.wait(lambda: [3], 5.0, polls.append) == []
    clock.close()
    assert not os.path.exists(clock.path)
    assert format_cpus([0, 1, 2, 5, 7, 8]) == "0-2,5,7-8" and parse_cpus("0-2,5,7-8\n") == [
        0,
        1,
        2,
        5,
        7,
        8,
    ]
    assert parse_cpus("") == [] and format_cpus([]) == ""
    with pytest.raises(ValueError):
        parse_cpus("0-99999999")


def test_the_command_line_spec_becomes_a_steady_document():
    plan = spinners_plan(3, 2, 1.5, 4)
    assert [c["name"] for c in plan["steps"][0]["cgroups"]] == ["cg_0", "cg_1", "cg_2"]
    assert planned_s(plan) == 1.5 and plan["topology"]["usable"] == [0, 1, 2]
    doc = (
        CATALOG["cpuset_resize"]
        .build(Topology(1, 1, 4, 1))
        .to_document(Topology(1, 1, 4, 1), duration_s=3.0)
    )
    assert planned_s(doc) == pytest.approx(3.0)
    assert (
        spinners_plan(2, 2, 2.0, 2)["steps"]
        == CATALOG["steady"].build(TOPO).to_document(TOPO, duration_s=2.0)["steps"]
    )


def test_a_hung_worker_is_killed_and_fails_the_verdict(tmp_path, monkeypatch):
    from guest import worktypes
    from guest.scenario import runner

    def hang(args, stopped):
        while True:
            time.sleep(1)

    monkeypatch.setitem(worktypes.KINDS, "spin", hang)  # before the fork: the workers have it
    monkeypatch.setattr(runner, "_STOP_WAIT_S", 0.3)
    pool = WorkerPool.fork(single_threaded=False)
    tree = Tree(str(tmp_path / "cgroup"))
    try:
        out = play(
            Scenario("h", [Step(cgroups=[CgroupDef("cg_0")], hold=Hold.fixed(0.2))]),
            tree,
            pool,
            tmp_path,
        )
        again = play(
            CATALOG["steady"].build(TOPO), Tree(str(tmp_path / "c2")), pool, tmp_path, duration=0.2
        )
    finally:
        pool.close()
    assert not out.verdict.passed and "no report (killed by SIGKILL)" in out.verdict.reason
    assert gone([r.pid for r in out.reports]) and not os.path.exists(tree.base)
    assert len(again.reports) == 4  # the same worker parent serves the next scenario


def test_a_lost_worker_parent_ends_the_run_and_leaves_nothing(tree, tmp_path):
    from guest.worker_pool import WorkerError

    pool = WorkerPool.fork(single_threaded=False)
    timer = threading.Timer(0.5, os.kill, (pool.pid, signal.SIGKILL))
    timer.start()
    t0 = time.monotonic()
    try:
        with pytest.raises(WorkerError, match="killed by SIGKILL"):
            play(CATALOG["steady"].build(TOPO), tree, pool, tmp_path, duration=30)
    finally:
        timer.cancel()
        pool.close()
    assert time.monotonic() - t0 < 10
    pids = [e[2] for e in tree.log if e[0] == "move"]
    assert len(pids) == 4 and gone(pids)  # they die with their parent
    assert not os.path.exists(tree.base)
