"""A host that did not run the guest's vCPUs excuses the gap and unfairness it caused, with
the pause as evidence; the same gap and spread without a pause still fail."""

from __future__ import annotations

import pytest

from orchestrator.result_schema import ResultError, validate_result
from schedlab_shared.host_pauses import (
    PauseError,
    check_host_pauses,
    clock_base_ns,
    describe,
    find_pauses,
    place_in_guest,
)
from tests.framework.worker_reports import T0, S, report, seg
from verdicts.run_workers import workers_section
from verdicts.worker_limits import WorkerLimits
from verdicts.workers import CgroupExpect, judge_workers

MS = 1_000_000
PAUSE_AT, PAUSE_LEN = T0 + 800 * MS, 1100 * MS  # the host stops vCPU 1 at +0.8 s for 1.1 s
LIMITS = WorkerLimits(max_gap_ms=1000.0)


def _timeline(stalled: bool) -> list[list[int]]:
    """100 ms points of a spinner at 95 % of a CPU over 2 s; ``stalled``: none during the
    pause (its vCPU did not run)."""
    pts, cpu = [[0, 0, 0]], 0
    for i in range(1, 21):
        t = i * 100 * MS
        in_pause = PAUSE_AT - T0 < t <= PAUSE_AT - T0 + PAUSE_LEN
        cpu += 0 if stalled and in_pause else int(0.95 * 100 * MS)
        pts.append([t // 1000, cpu // 1000, i])
    return pts


def _run() -> list[dict]:
    """cg0: a spinner on cpu 0, one on cpu 1 stuck 1.1 s from +0.8 s (run 43 of f9ca10e)."""
    a = seg(0.95, cpus=[0], timeline=_timeline(False))
    tl = _timeline(True)
    b = seg(
        tl[-1][1] * 1000 / (2 * S),
        cpus=[1],
        timeline=tl,
        max_gap_ns=PAUSE_LEN,
        max_gap_cpu=1,
        max_gap_at_ns=PAUSE_AT,
    )
    return [report("cg0", 1, [a]), report("cg0", 2, [b])]


def _pause(vcpus: list[int] = [1], **kw: object) -> dict:  # noqa: B006
    p = {
        "vcpus": vcpus, "at_ms": 4800.0, "ms": PAUSE_LEN / MS, "ran_ms": 2.0,
        "guest_from_ns": PAUSE_AT, "guest_to_ns": PAUSE_AT + PAUSE_LEN,
    }  # fmt: skip
    p.update(kw)
    return p


def _check(v, name):  # noqa: ANN001, ANN202
    return next(c for c in v.checks if c.name == name)


def test_without_a_host_pause_the_gap_and_the_spread_fail() -> None:
    v = judge_workers(_run(), {"cg0": CgroupExpect(2)}, LIMITS)
    assert not v.passed
    gap, fair = _check(v, "max_gap"), _check(v, "fairness")
    assert not gap.passed and "stuck 1100 ms on cpu1 at +0.8 s" in gap.evidence[0]
    assert not fair.passed and "spread" in fair.evidence[0]
    assert not gap.excused and not fair.excused


def test_a_host_pause_excuses_the_gap_and_the_spread_with_its_evidence() -> None:
    v = judge_workers(_run(), {"cg0": CgroupExpect(2)}, LIMITS, host_pauses=[_pause()])
    assert v.passed, v.reason
    gap, fair = _check(v, "max_gap"), _check(v, "fairness")
    words = "host did not run vCPU 1 for 1098 ms at +0.8 s"
    assert gap.passed and words in gap.excused[0] and "stuck 1100 ms on cpu1" in gap.excused[0]
    assert fair.passed and words in fair.excused[0]
    row = v.cgroups[0]
    assert row["host_cut_ms"] == pytest.approx(1100, abs=1)
    assert row["window_ms"] == pytest.approx(650, abs=1) and row["spread"] < 0.01
    assert "not the scheduler's (host)" in v.reason and words in v.reason  # never silent
    assert v.as_map()["verdicts"][-1]["excused"]


def test_a_pause_of_another_vcpu_or_without_guest_times_excuses_nothing() -> None:
    for p in (_pause([0]), _pause(guest_from_ns=None, guest_to_ns=None)):
        v = judge_workers(_run(), {"cg0": CgroupExpect(2)}, LIMITS, host_pauses=[p])
        assert not _check(v, "max_gap").passed, p
    # without guest times a pause cannot be placed: the spread is judged as it was
    v = judge_workers(
        _run(), {"cg0": CgroupExpect(2)}, LIMITS, host_pauses=[_pause(guest_from_ns=None)]
    )
    assert not _check(v, "fairness").passed


def test_a_short_pause_excuses_only_its_part_of_a_long_gap() -> None:
    short = _pause(guest_to_ns=PAUSE_AT + 50 * MS, ms=50.0, ran_ms=0.0)
    v = judge_workers(_run(), {"cg0": CgroupExpect(2)}, LIMITS, host_pauses=[short])
    gap = _check(v, "max_gap")
    assert not gap.passed and "50 ms of it the host's" in gap.evidence[0]
    # two records of one span (a thread's and another's) take its time once
    v = judge_workers(_run(), {"cg0": CgroupExpect(2)}, LIMITS, host_pauses=[short, short])
    assert "50 ms of it the host's" in _check(v, "max_gap").evidence[0]


def test_a_worker_starved_only_while_the_host_paused_is_excused() -> None:
    rs = [report("cg0", 1, [seg(0.5, wall_s=1.0, work_units=0, cpus=[1])], work_units=0)]
    whole = _pause(guest_from_ns=T0, guest_to_ns=T0 + S, ms=1000.0, ran_ms=0.0)
    assert not _check(judge_workers(rs, {"cg0": CgroupExpect(1)}), "starvation").passed
    st = _check(judge_workers(rs, {"cg0": CgroupExpect(1)}, host_pauses=[whole]), "starvation")
    assert st.passed and "host did not run vCPU 1" in st.excused[0]


def _sample(ms: float, run: list[int], nr: list[int], shared: int = 1) -> dict:
    return {
        "elapsed_ms": ms,
        "cpus": [
            {"cpu": i, "nr_running": n, "rq_clock": 1, "curr_pid": 100 + i if n else 0}
            for i, n in enumerate(nr)
        ],
        "vcpus": {"at_s": ms / 1000, "run_ns": run, "shared": shared},
    }


def test_find_pauses_from_the_vcpu_threads_run_times() -> None:
    # vCPU 1's thread gets nothing from 300 to 1500 ms while busy; vCPU 0 runs throughout
    samples, r0, r1 = [], 0, 0
    for i in range(21):
        ms = i * 100.0
        samples.append(_sample(ms, [r0, r1], [1, 1]))
        r0 += 90 * MS
        r1 += 0 if 3 <= i < 15 else 90 * MS
    (p,) = find_pauses(samples)
    assert p["vcpus"] == [1] and p["at_ms"] == 300.0 and p["ms"] == pytest.approx(1200)
    assert p["ran_ms"] == 0 and p["guest_from_ns"] is None
    # an idle vCPU halts: not a pause, even with a task queued on it that the scheduler does
    # not run (sched_ext's stall: nr_running 1, the idle task current); nor without curr_pid
    for cpu1 in ({"nr_running": 0, "curr_pid": 0}, {"nr_running": 1, "curr_pid": 0},
                 {"nr_running": 1}):  # fmt: skip
        idle = [dict(s, cpus=[s["cpus"][0], {"cpu": 1, "rq_clock": 1, **cpu1}]) for s in samples]
        assert find_pauses(idle) == [], cpu1
    # one thread for both vCPUs (QEMU's single-threaded TCG): a pause names both
    one = [_sample(s["elapsed_ms"], [s["vcpus"]["run_ns"][1]] * 2, [1, 0], 2) for s in samples]
    (p,) = find_pauses(one)
    assert p["vcpus"] == [0, 1]


def test_pauses_are_placed_on_the_guest_clock_through_the_anchors() -> None:
    started = 1_000.0  # host time the VM started; the guest's clock starts 0.5 s later
    # frames stamped at guest 5 s and 6 s arrived 3 ms and 1 ms late
    base = clock_base_ns([(1000.5 + 5.003, 5 * S), (1000.5 + 6.001, 6 * S)], started)
    assert base == pytest.approx(-501 * MS, abs=1000)  # the guest's clock at the VM's start
    (p,) = place_in_guest([_pause(at_ms=2000.0, guest_from_ns=None, guest_to_ns=None)], base)
    assert p["guest_from_ns"] == base + 2000 * MS
    assert p["guest_to_ns"] - p["guest_from_ns"] == PAUSE_LEN
    assert describe(p, p["guest_from_ns"] - 800 * MS) == (
        "host did not run vCPU 1 for 1098 ms at +0.8 s"
    )
    assert clock_base_ns([], started) is None and clock_base_ns([(5.0, S)], 0.0) is None


def test_the_section_is_checked_on_read() -> None:
    good = {"pauses": [_pause()], "clock_base_ns": 7}
    assert check_host_pauses(good) is good
    for bad, where in (
        ({"pauses": [_pause(vcpus=[])]}, "vcpus"),
        ({"pauses": [_pause(ms="x")]}, "ms"),
        ({"pauses": [_pause(ran_ms=5000.0)]}, "ran_ms"),
        ({"pauses": "no"}, "pauses"),
        ({"pauses": [], "clock_base_ns": 1.5}, "clock_base_ns"),
    ):
        with pytest.raises(PauseError, match=where):
            check_host_pauses(bad)
    doc = {"passed": True, "verdict": "passed", "reasons": [], "host_pauses": good}
    assert validate_result(doc) is doc
    with pytest.raises(ResultError, match=r"result\.host_pauses\.pauses\[0\]\.ms"):
        validate_result({**doc, "host_pauses": {"pauses": [_pause(ms=None)]}})


def test_workers_section_hands_the_pauses_to_the_judge() -> None:
    result = {"workers": _run(), "cgroups": [{"cgroup": "cg0", "workers": 2}]}
    assert not workers_section(result, LIMITS)["passed"]
    section = workers_section(result, LIMITS, host_pauses=[_pause()])
    assert section["passed"], section["reason"]
    assert any(v.get("excused") for v in section["verdicts"])
