"""Every work type runs on the host (same interpreter and native build as the guest) and
reports sane figures; grouped types through the real worker parent."""

from __future__ import annotations

import os
import time

import pytest

from guest import workspec
from guest.workreport import check_report
from guest.worktypes import spin
from tests.framework.native import native_on_path

SOLO = [n for n in workspec.TABLE if workspec.group_size(n) == 1 and n not in ("custom", "payload")]
GROUPED = {
    "pipe_io": {},
    "futex_ping_pong": {},
    "cache_pipe": {},
    "futex_fan_out": {"fan_out": 2},
    "fan_out_compute": {"fan_out": 2, "cache_kb": 32, "ops": 1},
    "mutex_contention": {"contenders": 3},
}
WAKERS = {"io_sync", "bursty", "fork_exit", "pipe_io", "futex_ping_pong", "cache_pipe"}
_FAST = {
    "bursty": {"burst_ms": 20, "sleep_ms": 10},
    "sequence": {"phases": "spin:20,sleep:10,yield:10,io:10"},
}


@pytest.fixture(scope="module")
def kinds():  # noqa: ANN201
    native_on_path()
    from guest.worktypes import KINDS

    return KINDS


def _sane(report: dict, duration_s: float, early_s: float = 0.0) -> dict:
    check_report(report)
    assert report["error"] == "" and report["native"] is True
    [seg] = report["segments"]
    assert seg["work_units"] > 0 and seg["iterations"] > 0
    assert (duration_s - early_s) * 1e9 <= seg["wall_time_ns"] < (duration_s + 1.0) * 1e9
    assert 0 < seg["cpu_time_ns"] and seg["off_cpu_ns"] == max(
        0, seg["wall_time_ns"] - seg["cpu_time_ns"]
    )
    assert seg["cpus"] and set(seg["cpus"]) <= set(range(os.cpu_count() or 1))
    assert seg["timeline"][0] == [0, 0, 0] and seg["timeline"][-1][2] == seg["work_units"]
    assert [p[0] for p in seg["timeline"]] == sorted(p[0] for p in seg["timeline"])
    assert report["work_units"] == seg["work_units"] and report["cpu_time_ns"] == seg["cpu_time_ns"]
    return seg


@pytest.mark.parametrize("name", SOLO)
def test_each_solo_type_runs_and_reports(kinds, name: str) -> None:  # noqa: ANN001
    r = kinds[name](
        {"cgroup": "cg0", "index": 3, "duration_s": 0.15, "params": _FAST.get(name, {})},
        lambda: False,
    )
    assert r["kind"] == name and r["index"] == 3 and r["pid"] == os.getpid()
    seg = _sane(r, 0.15)
    if name in WAKERS:
        w = seg["wake"]
        assert w["n"] > 0 and 0 <= w["p50_ns"] <= w["p99_ns"] <= w["max_ns"] and w["cv"] >= 0
    if name == "affinity_churn" and (os.cpu_count() or 1) > 1:
        assert seg["migrations"] > 0 and len(seg["cpus"]) > 1
    if name == "page_fault_churn":
        assert seg["work_units"] == seg["iterations"] * 256


def test_churn_types_restore_what_they_change(kinds) -> None:  # noqa: ANN001
    before = (os.getpriority(os.PRIO_PROCESS, 0), os.sched_getaffinity(0), os.sched_getscheduler(0))
    for name in ("nice_sweep", "affinity_churn", "policy_churn"):
        kinds[name]({"cgroup": "cg0", "duration_s": 0.05}, lambda: False)
    after = (os.getpriority(os.PRIO_PROCESS, 0), os.sched_getaffinity(0), os.sched_getscheduler(0))
    assert after == before


def test_a_stop_ends_the_worker_within_a_chunk(kinds) -> None:  # noqa: ANN001
    t0 = time.monotonic()
    r = kinds["spin"]({"cgroup": "cg0"}, lambda: time.monotonic() - t0 > 0.1)  # no duration
    assert 0.1 <= time.monotonic() - t0 < 0.5 and r["segments"][0]["work_units"] > 0


def test_a_step_change_cuts_a_segment(kinds) -> None:  # noqa: ANN001
    t0 = time.monotonic()
    r = kinds["spin"](
        {"cgroup": "cg0", "duration_s": 0.25},
        lambda: False,
        lambda: 0 if time.monotonic() - t0 < 0.1 else 1,
    )
    check_report(r)
    a, b = r["segments"]
    assert (a["step"], b["step"]) == (0, 1) and a["end_ns"] == b["start_ns"]
    assert a["work_units"] > 0 and b["work_units"] > 0
    assert r["work_units"] == a["work_units"] + b["work_units"]


def test_a_failing_type_reports_its_error_with_the_figures_so_far(kinds, monkeypatch) -> None:  # noqa: ANN001
    r = kinds["sequence"](
        {"cgroup": "cg0", "duration_s": 0.05, "params": {"phases": "dance:1"}}, lambda: False
    )
    check_report(r)
    assert "ValueError" in r["error"] and r["segments"]


def test_without_the_native_loops_a_worker_says_so(kinds, monkeypatch) -> None:  # noqa: ANN001
    import guest.workmeter as wm
    from guest.native import NativeUnavailable

    def missing():  # noqa: ANN202
        raise NativeUnavailable("native work loops (_schedlab_work) unavailable: test")

    monkeypatch.setattr(wm, "load", missing)
    r = kinds["spin"]({"cgroup": "cg1", "duration_s": 0.01}, lambda: False)
    check_report(r)
    assert "unavailable" in r["error"] and r["work_units"] == 0 and r["native"] is False


def test_a_grouped_type_outside_the_worker_parent_is_an_error(kinds) -> None:  # noqa: ANN001
    r = kinds["pipe_io"]({"cgroup": "cg0", "duration_s": 0.01}, lambda: False)
    assert "worker parent" in r["error"]


@pytest.mark.parametrize("name", sorted(GROUPED))
def test_each_grouped_type_runs_through_the_worker_parent(kinds, name: str) -> None:  # noqa: ANN001
    from guest.worker_pool import WorkerPool

    params = GROUPED[name]
    n = workspec.group_size(name, params)
    pool = WorkerPool.fork(single_threaded=False)
    try:
        for i in range(n):
            pool.spawn(name, {"cgroup": "cg0", "index": i, "duration_s": 0.2, "params": params})
        assert pool.start() == n
        ended, end = [], time.monotonic() + 20
        while len(ended) < n and time.monotonic() < end:
            ended += pool.wait_ended(1.0)
    finally:
        stats = pool.close()
    assert len(ended) == n and stats["killed"] == 0
    ranks = set()
    # A member stops when its group's first ends: it ran 0.2 s less its start's lag behind
    # the first member's (tens of ms on a loaded host).
    starts = [ev["report"]["segments"][0]["start_ns"] for ev in ended]
    lag_s = (max(starts) - min(starts)) / 1e9
    for ev in ended:
        assert ev["exit"] == "exit 0", ev
        seg = _sane(ev["report"], 0.2, early_s=lag_s + 0.05)
        ranks.add(seg["extra"]["rank"])
        if seg["extra"].get("role") != "messenger" and name != "mutex_contention":
            assert seg["wake"]["n"] > 0
    assert ranks == set(range(n))


def test_two_pairs_of_one_cgroup_are_two_groups(kinds) -> None:  # noqa: ANN001
    from guest.worker_pool import WorkerPool

    pool = WorkerPool.fork(single_threaded=False)
    try:
        for i in range(4):
            pool.spawn("futex_ping_pong", {"cgroup": "cg0", "index": i, "duration_s": 0.15})
        pool.start()
        ended, end = [], time.monotonic() + 20
        while len(ended) < 4 and time.monotonic() < end:
            ended += pool.wait_ended(1.0)
    finally:
        pool.close()
    units = sorted(ev["report"]["segments"][0]["work_units"] for ev in ended)
    # A pair alternates strictly: its two members' counts differ by at most one.
    assert units[1] - units[0] <= 1 and units[3] - units[2] <= 1 and units[0] > 0


def test_a_long_timeline_keeps_its_start_and_end_within_the_bound(kinds, monkeypatch) -> None:  # noqa: ANN001
    import guest.workmeter as wm
    from guest.workreport import MAX_TIMELINE

    monkeypatch.setattr(wm, "TIMELINE_NS", 1_000_000)  # 1 ms spacing: it fills many times over
    r = kinds["spin"]({"cgroup": "cg0", "duration_s": 0.3}, lambda: False)
    tl = r["segments"][0]["timeline"]
    assert len(tl) <= MAX_TIMELINE and tl[0] == [0, 0, 0]
    assert (
        tl[-1][2] == r["segments"][0]["work_units"]
        and tl[-1][0] * 1000 <= r["segments"][0]["wall_time_ns"]
    )


def test_parameters_may_come_among_the_args_and_wrappers_get_their_group(kinds) -> None:  # noqa: ANN001
    from guest.workgroup import Groups

    r = kinds["spin"](
        {"cgroup": "cg0", "duration_s": 0.02, "unit_iters": 7, "state": {}}, lambda: False
    )
    assert r["error"] == "" and r["segments"][0]["work_units"] > 0
    groups = Groups()
    try:
        placed = groups.before_fork(
            "scenario", {"cgroup": "cg0", "index": 3, "work": {"type": "pipe_io", "params": {}}}
        )
        assert placed is not None and placed[1] == 1  # rank 1 of the second pair
        assert groups.before_fork("scenario", {"work": {"type": "spin", "params": {}}}) is None
    finally:
        groups.close()


def test_python_spin_counts_units_and_gaps_with_fake_clock():
    ticks = iter([0, 10, 25, 100, 130])
    res = spin(120, clock=lambda: next(ticks), unit_iters=1)
    assert (res.work_units, res.max_gap_ns, res.max_gap_at) == (4, 75, 25)
    assert res.cpus == ()


def test_python_spin_stops_on_request():
    calls = []

    def stop():
        calls.append(1)
        return len(calls) > 3  # checked before each unit: 3 units, then stop

    res = spin(10**12, stop=stop, unit_iters=1)
    assert res.work_units == 3


def test_python_spin_notes_the_cpus_it_ran_on():
    cpus = iter([3, 1, 3])
    res = spin(
        10**12,
        stop=iter([False, False, False, True]).__next__,
        unit_iters=1,
        cpu=lambda: next(cpus),
    )
    assert res.cpus == (1, 3)
