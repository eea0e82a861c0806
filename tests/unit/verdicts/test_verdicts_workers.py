"""verdicts.workers: each check on synthetic reports, its evidence, limits and expected errors."""

from __future__ import annotations

import pytest

from tests.framework.worker_reports import T0, S, report, seg
from verdicts.worker_limits import WorkerLimitError, WorkerLimits, resolve_worker_limits
from verdicts.workers import CHECKS, CgroupExpect, cpu_in_window, judge_workers


def fair_run():  # noqa: ANN201
    return [report("cg0", 1), report("cg0", 2), report("cg1", 3), report("cg1", 4)]


EXPECT = {"cg0": CgroupExpect(2), "cg1": CgroupExpect(2)}


def check(v, name):  # noqa: ANN001, ANN201
    return next(c for c in v.checks if c.name == name)


def test_a_fair_run_passes_with_the_default_checks() -> None:
    v = judge_workers(fair_run(), EXPECT)
    assert v.passed, v.reason
    assert [c.name for c in v.checks] == ["complete", "starvation", "fairness", "max_gap"]
    stats = {c["cgroup"]: c for c in v.cgroups}
    assert stats["cg0"]["spread"] == 0 and stats["cg0"]["window"] == "window"
    assert stats["cg0"]["window_ms"] == pytest.approx(2000 - 250)
    assert v.as_map()["verdicts"][0] == {
        "name": "complete",
        "passed": True,
        "detail": "4 of 4 workers reported",
        "evidence": [],
    }


def test_a_missing_worker_an_error_and_a_bad_report_are_incomplete() -> None:
    rs = fair_run()[:3]
    rs[0]["error"] = "OSError: boom"
    v = judge_workers([*rs, {"cgroup": "cg1", "pid": "x"}], EXPECT)
    c = check(v, "complete")
    assert not c.passed and not v.passed
    ev = " ".join(c.evidence)
    assert "cg1: 1 of 2 workers did not report" in ev and "boom" in ev and "report 3" in ev


def test_a_starved_worker_fails_with_its_name() -> None:
    rs = fair_run()
    rs[2] = report("cg1", 3, [seg(cpu_share=0.0, work_units=0, iterations=0)], kind="spin")
    v = judge_workers(rs, EXPECT)
    c = check(v, "starvation")
    assert not c.passed and c.evidence == ("cg1/pid 3 (spin): 0 work units",)


def test_unfairness_within_a_cgroup_fails_with_each_worker_s_share() -> None:
    rs = fair_run()
    rs[1] = report("cg0", 2, [seg(cpu_share=0.2)])
    v = judge_workers(rs, EXPECT)
    c = check(v, "fairness")
    assert not c.passed
    assert "cg0 step 0: off-CPU share 50.0%..80.0% (spread 30.0 > 15.0 points)" in c.evidence[0]
    assert "pid 1 50.0%, pid 2 80.0%" in c.evidence[0]
    assert check(judge_workers(rs, EXPECT, WorkerLimits(max_spread=0.35)), "fairness").passed


def test_fairness_uses_the_common_window_not_a_late_start() -> None:
    # pid 2 started 1 s late; until then pid 1 had a CPU to itself. Over whole segments the
    # two look unfair (off-CPU 25 % vs 50 %); over the window both ran, each had half.
    late = seg(start=T0 + S, wall_s=1.0)
    early = seg(wall_s=2.0)
    early["timeline"] = [[0, 0, 0], [1_000_000, 1_000_000, 0]] + [
        [1_000_000 + 100_000 * i, 1_000_000 + 50_000 * i, 0] for i in range(1, 11)
    ]
    early["cpu_time_ns"] = int(1.5 * S)
    early["off_cpu_ns"] = 2 * S - early["cpu_time_ns"]
    rs, exp = [report("cg0", 1, [early]), report("cg0", 2, [late])], {"cg0": CgroupExpect(2)}
    v = judge_workers(rs, exp)
    assert check(v, "fairness").passed, v.reason
    assert v.cgroups[0]["spread"] < 0.01 and v.cgroups[0]["window"] == "window"
    bare = [{**r, "segments": [{k: v for k, v in sg.items() if k != "timeline"}
                               for sg in r["segments"]]} for r in rs]  # fmt: skip
    whole = judge_workers(bare, exp)  # no timelines: whole segments, the late start shows
    assert whole.cgroups[0]["window"] == "whole" and not check(whole, "fairness").passed


def test_a_window_too_short_is_not_judged_and_says_so() -> None:
    rs = [report("cg0", 1, [seg(wall_s=0.6)]), report("cg0", 2, [seg(wall_s=0.6, cpu_share=0.1)])]
    v = judge_workers(rs, {"cg0": CgroupExpect(2)})
    assert v.cgroups[0]["window"] == "short" and v.passed
    assert "not judged, windows under 0.5 s: cg0/0 (0.35 s)" in check(v, "fairness").detail


def test_the_tcg_limit_widens_short_windows_only() -> None:
    from verdicts.worker_limits import resolve_worker_limits

    hw, tcg = resolve_worker_limits(), resolve_worker_limits(tcg=True)
    assert hw.spread_limit(1.0) == 0.15 and hw.spread_limit(100.0) == 0.15
    assert tcg.spread_limit(1.0) == pytest.approx(0.35) and tcg.spread_limit(4.0) == pytest.approx(
        0.25
    )
    assert resolve_worker_limits(None, {"spread_noise": 0.0}, tcg=True).spread_limit(1.0) == 0.15
    rs = [report("cg0", 1, [seg()]), report("cg0", 2, [seg(cpu_share=0.25)])]  # 25 points apart
    assert not judge_workers(rs, {"cg0": CgroupExpect(2)}, hw).passed
    assert judge_workers(rs, {"cg0": CgroupExpect(2)}, tcg).passed


def test_roles_are_not_compared() -> None:
    rs = [
        report("cg0", 1, [seg(cpu_share=0.9)], kind="futex_fan_out"),
        report("cg0", 2, [seg(cpu_share=0.1)], kind="futex_fan_out"),
    ]
    v = judge_workers(rs, {"cg0": CgroupExpect(2)})
    assert check(v, "fairness").passed and v.cgroups == ()


def test_a_scheduling_gap_reads_stuck_ms_on_cpu_at_time() -> None:
    rs = fair_run()
    rs[3] = report(
        "cg1", 4, [seg(max_gap_ns=2_301_000_000, max_gap_cpu=1, max_gap_at_ns=T0 + 1_200_000_000)]
    )
    v = judge_workers(rs, EXPECT)
    c = check(v, "max_gap")
    assert not c.passed and c.evidence == ("cg1/pid 4 (spin): stuck 2301 ms on cpu1 at +1.2 s",)
    assert "max_gap" not in [
        x.name for x in judge_workers(rs, EXPECT, WorkerLimits(max_gap_ms=None)).checks
    ]


def test_isolation_names_the_cpus_outside_the_cpuset_per_step() -> None:
    rs = [report("cg0", 1, [seg(cpus=[0, 1]), seg(step=1, cpus=[0, 3], start=T0 + 2 * S)])]
    exp = {"cg0": CgroupExpect(1, frozenset({0, 1}), {1: frozenset({0, 1, 2})})}
    v = judge_workers(rs, exp, WorkerLimits(isolation=True))
    c = check(v, "isolation")
    assert not c.passed
    assert c.evidence == ("cg0/pid 1 step 1: ran on cpu 3 outside its cpuset 0-2",)
    assert "isolation" not in [x.name for x in judge_workers(rs, exp).checks]  # off by default


@pytest.mark.parametrize(
    ("limits", "mutate", "name", "evidence"),
    [
        ({"max_throughput_cv": 0.1}, {"work_units": 100}, "throughput_cv", "CV"),
        (
            {"min_work_rate": 900.0},
            {"work_units": 100},
            "work_rate",
            "work units per CPU-second 100",
        ),
        (
            {"min_iteration_rate": 400.0},
            {"iterations": 100},
            "iteration_rate",
            "iterations per second 50",
        ),
        (
            {"max_migration_ratio": 0.01},
            {"migrations": 500},
            "migration_ratio",
            "migrations per iteration 0.5",
        ),
        (
            {"max_p99_wake_latency_ns": 100_000},
            {
                "wake": {
                    "n": 9,
                    "p50_ns": 1,
                    "p99_ns": 500_000,
                    "max_ns": 9,
                    "mean_ns": 1.0,
                    "cv": 0.1,
                }
            },
            "wake_latency_p99",
            "p99 wake latency 500 us",
        ),
        (
            {"max_wake_latency_cv": 1.0},
            {"wake": {"n": 9, "p50_ns": 1, "p99_ns": 5, "max_ns": 9, "mean_ns": 1.0, "cv": 3.0}},
            "wake_latency_cv",
            "wake latency CV 3",
        ),
    ],
)
def test_optional_limits_catch_their_failure(limits, mutate, name, evidence) -> None:  # noqa: ANN001
    rs = fair_run()
    ok = judge_workers(rs, EXPECT, WorkerLimits(**limits))
    assert check(ok, name).passed, ok.reason
    rs[1] = report("cg0", 2, [seg(**mutate)])
    bad = check(judge_workers(rs, EXPECT, WorkerLimits(**limits)), name)
    assert not bad.passed and evidence in bad.evidence[0], bad


def test_numa_locality_and_cross_node_migrations() -> None:
    node_of = {0: 0, 1: 0, 2: 1, 3: 1}
    local = seg(cpus=[0, 1], numa_pages={"0": 90, "1": 10}, numa_pages_migrated=5)
    remote = seg(cpus=[2], numa_pages={"0": 80, "1": 20}, numa_pages_migrated=60)
    lim = WorkerLimits(min_page_locality=0.8, max_cross_node_migration_ratio=0.5)
    v = judge_workers(
        [report("cg0", 1, [local]), report("cg0", 2, [remote])],
        {"cg0": CgroupExpect(2)},
        lim,
        node_of,
    )
    loc, mig = check(v, "page_locality"), check(v, "cross_node_migration")
    assert not loc.passed and loc.evidence == ("cg0/pid 2 step 0: page locality 0.2",)
    assert not mig.passed and mig.evidence == (
        "cg0/pid 2 step 0: cross-node migrated pages per page 0.6",
    )
    no_topo = judge_workers([report("cg0", 1, [local])], {"cg0": CgroupExpect(1)}, lim)
    assert "no NUMA topology" in check(no_topo, "page_locality").detail


def test_an_expected_error_passes_only_when_it_happens() -> None:
    rs = fair_run()
    miss = judge_workers(rs, EXPECT, expect_error="fairness")
    assert not miss.passed and "expected fairness to fail, but it passed" in miss.reason
    off = judge_workers(rs, EXPECT, WorkerLimits(isolation=False), expect_error="isolation")
    assert not off.passed and "its limit is off" in off.reason
    rs[1] = report("cg0", 2, [seg(cpu_share=0.1)])
    hit = judge_workers(rs, EXPECT, expect_error="fairness")
    assert hit.passed and hit.reason.startswith("expected failure happened: fairness")
    with pytest.raises(ValueError, match="not one of"):
        judge_workers(rs, EXPECT, expect_error="nonsense")
    assert set(CHECKS) >= {c.name for c in hit.checks}


def test_old_style_reports_are_judged_on_their_totals() -> None:
    old = [{"cgroup": "cg0", "pid": 1, "work_units": 3, "cpu_time_ns": 1, "max_gap_ms": 2500.0}]
    v = judge_workers(old, {"cg0": CgroupExpect(1)})
    assert check(v, "starvation").passed
    assert check(v, "max_gap").evidence == ("cg0/pid 1: stuck 2500 ms",)


def test_cpu_in_window_interpolates_the_timeline() -> None:
    s = seg(cpu_share=0.5, wall_s=2.0)
    assert cpu_in_window(s, T0 + S // 2, T0 + S) == pytest.approx(S / 4, rel=1e-3)
    assert cpu_in_window({**s, "timeline": [[0, 0, 0]]}, T0, T0 + S) is None


def test_limits_chain_and_validation() -> None:
    lim = resolve_worker_limits({"max_gap_ms": 3000.0, "max_spread": 0.3}, {"max_spread": None})
    assert lim.max_gap_ms == 3000.0 and lim.max_spread is None
    with pytest.raises(WorkerLimitError, match="unknown worker limit.*bogus"):
        resolve_worker_limits({"bogus": 1})
    with pytest.raises(WorkerLimitError, match="not a number"):
        WorkerLimits(max_spread=-0.1)
    with pytest.raises(WorkerLimitError, match="true/false"):
        resolve_worker_limits(None, {"isolation": None})
    with pytest.raises(WorkerLimitError, match="warmup_ms"):
        WorkerLimits(warmup_ms=None)  # type: ignore[arg-type]


def test_two_cohorts_of_one_cgroup_compare_but_two_work_types_do_not() -> None:
    nice0 = report("cg0", 1, [seg(cohort="cg0")])
    nice19 = report("cg0", 2, [seg(cpu_share=0.02, cohort="cg0+step0op0")])
    v = judge_workers([nice0, nice19], {"cg0": CgroupExpect(2)})
    assert not check(v, "fairness").passed and "pid 2 98.0%" in check(v, "fairness").evidence[0]
    other = report("cg0", 2, [seg(cpu_share=0.02)], kind="io_sync")
    assert check(judge_workers([nice0, other], {"cg0": CgroupExpect(2)}), "fairness").passed
    exempt = judge_workers(
        [nice0, nice19], {"cg0": CgroupExpect(2)}, exempt=frozenset({"cg0+step0op0"})
    )
    assert check(exempt, "fairness").passed
