"""The cgroup-spinners scenario run on the host: forked workers, a temp-dir cgroup root."""

import os
import shutil
import threading
import time

import pytest

from guest import workload
from guest.cgroups import CgroupError, CgroupTree
from guest.spec import RunSpec
from guest.workload import run_cgroup_spinners, spin


class RecordingTree(CgroupTree):
    def __init__(self, root, fail_move_at=None):
        super().__init__(root, rmdir=shutil.rmtree)
        self.moves = []
        self.fail_move_at = fail_move_at

    def move(self, name, pid):
        if len(self.moves) == self.fail_move_at:
            raise CgroupError(16, f"write {pid} to {name}/cgroup.procs: busy")
        super().move(name, pid)
        self.moves.append((name, pid))


def assert_gone(pids):
    for pid in pids:
        with pytest.raises(ChildProcessError):
            os.waitpid(pid, os.WNOHANG)  # reaped: not our child any more


def test_spin_counts_units_and_gaps_with_fake_clock():
    ticks = iter([0, 10, 25, 100, 130])
    res = spin(120, clock=lambda: next(ticks), unit_iters=1)
    assert (res.work_units, res.max_gap_ns) == (4, 75)


def test_spin_stops_on_request():
    calls = []

    def stop():
        calls.append(1)
        return len(calls) > 3  # checked before each unit: 3 units, then stop

    res = spin(10**12, stop=stop, unit_iters=1)
    assert res.work_units == 3


def test_run_reports_every_worker_and_cleans_up(tmp_path):
    tree = RecordingTree(tmp_path)
    spec = RunSpec("cgroup-spinners", duration=0.3, cgroups=2, workers=2, fairness=1.0)
    ticks = []
    t0 = time.monotonic()
    out = run_cgroup_spinners(spec, tree, on_tick=lambda: ticks.append(1))
    elapsed = time.monotonic() - t0
    assert out.verdict.passed, out.verdict.reason
    assert not out.stopped and out.cleanup_errors == []
    assert sorted((r.cgroup, r.pid) for r in out.reports) == sorted(tree.moves)
    assert {r.cgroup for r in out.reports} == {"cg0", "cg1"}
    for r in out.reports:
        assert r.error == "" and r.work_units > 0 and r.cpu_time_ns > 0
        assert 0 < r.max_gap_ms <= elapsed * 1000  # a gap cannot exceed the run
    assert (tmp_path / "cgroup.subtree_control").read_text() == "+cpu"
    assert not (tmp_path / "schedlab").exists()
    assert ticks and 0.3 <= elapsed < 10
    assert_gone(r.pid for r in out.reports)


def test_stop_request_ends_run_early_with_partial_reports(tmp_path):
    tree = RecordingTree(tmp_path)
    spec = RunSpec("cgroup-spinners", duration=60, cgroups=1, workers=2, fairness=1.0)
    stop = threading.Event()
    timer = threading.Timer(0.3, stop.set)
    timer.start()
    t0 = time.monotonic()
    try:
        out = run_cgroup_spinners(spec, tree, stop=stop)
    finally:
        timer.cancel()
    assert time.monotonic() - t0 < 10
    assert out.stopped
    assert all(r.work_units > 0 and r.error == "" for r in out.reports)
    assert len(out.reports) == 2
    assert_gone(r.pid for r in out.reports)


def test_hung_worker_is_killed_and_fails_the_verdict(tmp_path, monkeypatch):
    def hang(*_a, **_k):
        while True:
            time.sleep(1)

    monkeypatch.setattr(workload, "spin", hang)  # takes effect in the forked children
    tree = RecordingTree(tmp_path)
    spec = RunSpec("cgroup-spinners", duration=0.2, cgroups=1, workers=2, fairness=1.0)
    out = run_cgroup_spinners(spec, tree, grace_s=0.3)
    assert not out.verdict.passed
    assert "no report" in out.verdict.reason
    assert_gone(pid for _, pid in tree.moves)
    assert not (tmp_path / "schedlab").exists()


def test_cgroup_move_failure_kills_workers_and_removes_cgroups(tmp_path):
    tree = RecordingTree(tmp_path, fail_move_at=1)
    spec = RunSpec("cgroup-spinners", duration=30, cgroups=2, workers=2, fairness=1.0)
    t0 = time.monotonic()
    with pytest.raises(CgroupError, match="busy"):
        run_cgroup_spinners(spec, tree)
    assert time.monotonic() - t0 < 10
    assert_gone(pid for _, pid in tree.moves)
    assert not (tmp_path / "schedlab").exists()


def test_foreign_reaper_in_on_tick_is_tolerated(tmp_path):
    # PID 1 reaps every exited child from on_tick; the runner must not trip over that.
    tree = RecordingTree(tmp_path)
    spec = RunSpec("cgroup-spinners", duration=0.2, cgroups=1, workers=2, fairness=1.0)
    reaped = []
    t0 = time.monotonic()

    def reaper():
        if time.monotonic() - t0 > 0.1 and not reaped:
            for _, pid in tree.moves:  # blocks until the workers end on their own
                os.waitpid(pid, 0)
                reaped.append(pid)

    out = run_cgroup_spinners(spec, tree, on_tick=reaper, grace_s=5)
    assert out.verdict.passed, out.verdict.reason
    assert len(reaped) == 2 and len(out.reports) == 2
    assert_gone(pid for _, pid in tree.moves)
