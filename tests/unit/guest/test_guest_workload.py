"""The cgroup-spinners scenario on the host: a real worker parent, a temp-dir cgroup root."""

import os
import shutil
import signal
import threading
import time

import pytest

from guest import worktypes
from guest.cgroups import CgroupError, CgroupTree
from guest.spec import RunSpec
from guest.worker_pool import WorkerError, WorkerPool
from guest.workload import run_cgroup_spinners
from guest.worktypes import spin


class RecordingTree(CgroupTree):
    def __init__(self, root, fail_move_at=None):
        super().__init__(root, rmdir=shutil.rmtree)
        self.moves = []
        self.fail_move_at = fail_move_at

    def move(self, name, pid):
        if len(self.moves) == self.fail_move_at:
            self.moves.append((name, pid))
            raise CgroupError(16, f"write {pid} to {name}/cgroup.procs: busy")
        super().move(name, pid)
        self.moves.append((name, pid))


def assert_gone(pids, timeout_s=5.0):
    """Each pid has exited and been reaped (by the worker parent, not by us)."""
    end = time.monotonic() + timeout_s
    for pid in pids:
        while os.path.exists(f"/proc/{pid}") and time.monotonic() < end:
            time.sleep(0.01)
        assert not os.path.exists(f"/proc/{pid}"), f"pid {pid} still exists"


@pytest.fixture
def pool():
    p = WorkerPool.fork(single_threaded=False)
    yield p
    p.close()


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


def test_run_reports_every_worker_and_cleans_up(tmp_path, pool):
    tree = RecordingTree(tmp_path)
    spec = RunSpec("cgroup-spinners", duration=0.3, cgroups=2, workers=2, fairness=1.0)
    t0 = time.monotonic()
    out = run_cgroup_spinners(spec, tree, pool)
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
    assert 0.3 <= elapsed < 10
    assert_gone(r.pid for r in out.reports)
    # the same worker parent serves the next scenario
    again = run_cgroup_spinners(spec._replace(cgroups=1), RecordingTree(tmp_path), pool)
    assert again.verdict.passed and len(again.reports) == 2


def test_stop_request_ends_run_early_with_partial_reports(tmp_path, pool):
    tree = RecordingTree(tmp_path)
    spec = RunSpec("cgroup-spinners", duration=60, cgroups=1, workers=2, fairness=1.0)
    stop = threading.Event()
    timer = threading.Timer(0.3, stop.set)
    timer.start()
    t0 = time.monotonic()
    try:
        out = run_cgroup_spinners(spec, tree, pool, stop=stop)
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

    monkeypatch.setattr(worktypes, "spin", hang)  # before the fork: the workers inherit it
    pool = WorkerPool.fork(single_threaded=False)
    try:
        tree = RecordingTree(tmp_path)
        spec = RunSpec("cgroup-spinners", duration=0.2, cgroups=1, workers=2, fairness=1.0)
        out = run_cgroup_spinners(spec, tree, pool, grace_s=0.3)
    finally:
        pool.close()
    assert not out.verdict.passed
    assert "no report (killed by SIGKILL)" in out.verdict.reason
    assert_gone(pid for _, pid in tree.moves)
    assert not (tmp_path / "schedlab").exists()


def test_cgroup_move_failure_kills_workers_and_removes_cgroups(tmp_path, pool):
    tree = RecordingTree(tmp_path, fail_move_at=1)
    spec = RunSpec("cgroup-spinners", duration=30, cgroups=2, workers=2, fairness=1.0)
    t0 = time.monotonic()
    with pytest.raises(CgroupError, match="busy"):
        run_cgroup_spinners(spec, tree, pool)
    assert time.monotonic() - t0 < 10
    assert len(tree.moves) == 2
    assert_gone(pid for _, pid in tree.moves)
    assert not (tmp_path / "schedlab").exists()


def test_lost_worker_parent_is_an_error_and_leaves_nothing(tmp_path, pool):
    tree = RecordingTree(tmp_path)
    spec = RunSpec("cgroup-spinners", duration=30, cgroups=1, workers=2, fairness=1.0)
    timer = threading.Timer(0.5, os.kill, (pool.pid, signal.SIGKILL))
    timer.start()
    t0 = time.monotonic()
    try:
        with pytest.raises(WorkerError, match="killed by SIGKILL"):
            run_cgroup_spinners(spec, tree, pool)
    finally:
        timer.cancel()
    assert time.monotonic() - t0 < 10
    assert_gone(pid for _, pid in tree.moves)  # they die with their parent
    assert not (tmp_path / "schedlab").exists()
