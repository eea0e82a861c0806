"""The monitor thresholds judged over synthetic sample series: violating and not."""

from __future__ import annotations

import pytest

from schedlab_shared.monitor_schema import check_violation
from verdicts.monitor import FALLBACK, KEEP_LAST, MonitorJudge, judge_samples
from verdicts.thresholds import MonitorThresholds, ThresholdError, resolve_thresholds

STEP_MS = 100.0


def series(n: int, ncpus: int = 4, *, cpu=None, scx=True, events=None, vcpus=None, t0=0.0):
    """``n`` samples 100 ms apart: every CPU busy (nr_running 1) with an advancing clock;
    ``cpu(i, c, entry)`` edits CPU ``c`` of sample ``i``; ``events(i)`` gives counters."""
    out = []
    for i in range(n):
        cpus = []
        for c in range(ncpus):
            e = {
                "cpu": c,
                "nr_running": 1,
                "rq_clock": 10**9 + i * 10**8,
                "local_dsq_nr": 0,
                "scx_nr_running": 1,
            }
            if vcpus is not None:
                e["vcpu_run_ns"] = vcpus(i, c)
            if cpu is not None:
                cpu(i, c, e)
            cpus.append(e)
        s = {"elapsed_ms": t0 + i * STEP_MS, "cpus": cpus, "monitor": "monitor"}
        if scx:
            s["scx"] = {"ops": "qmap", "events": events(i) if events else {FALLBACK: 0}}
        out.append(s)
    return out


WARM = int(MonitorThresholds().warmup_s * 1000 / STEP_MS)  # samples inside the warm-up


def test_healthy_run_passes_with_event_totals_and_rates():
    v = judge_samples(series(60, events=lambda i: {FALLBACK: 5 * i, KEEP_LAST: i}))
    assert v.status == "passed" and not v.violations and v.judged == 60 - WARM
    assert v.events[FALLBACK]["total"] == 5 * 59
    assert v.events[FALLBACK]["rate"] == pytest.approx(50.0)  # 5 per 100 ms
    assert v.events[KEEP_LAST]["rate"] == pytest.approx(10.0)


def test_imbalance_sustained_fails_with_evidence():
    def cpu0_heavy(i, c, e):
        if c == 0 and 30 <= i < 40:
            e["nr_running"] = 9

    v = judge_samples(series(60, cpu=cpu0_heavy))
    assert v.status == "failed" and len(v.violations) == 1
    viol = check_violation(v.violations[0])
    assert (viol["check"], viol["cpu"], viol["samples"]) == ("imbalance", None, 10)
    assert viol["at_ms"] == 3000.0 and viol["until_ms"] == 3900.0 and viol["value"] == 9.0
    ats = [p["at_ms"] for p in viol["around"]]
    assert ats[:3] == [2700.0, 2800.0, 2900.0] and ats[-3:] == [4000.0, 4100.0, 4200.0]
    assert viol["around"][3]["nr_running"] == [9, 1, 1, 1]
    assert "imbalance" in v.reason and "CPU 0" in v.violations[0]["detail"]


def test_short_bursts_and_warmup_are_not_violations():
    def bursts(i, c, e):
        if c == 0 and (i < WARM or i % 10 < 4):  # heavy during warm-up, then 4-sample bursts
            e["nr_running"] = 9

    assert judge_samples(series(80, cpu=bursts)).status == "passed"


def test_local_dsq_depth():
    def deep(i, c, e):
        if c == 2 and i >= 40:
            e["local_dsq_nr"] = 51

    v = judge_samples(series(50, cpu=deep))
    assert [(x["check"], x["cpu"]) for x in v.violations] == [("local_dsq_depth", 2)]
    at50 = judge_samples(series(50, cpu=lambda i, c, e: e.update(local_dsq_nr=50)))
    assert at50.status == "passed"  # the limit itself is fine


def test_stall_busy_cpu_with_a_clock_standing_still():
    def stuck(i, c, e):
        if c == 1 and i >= 30:
            e["rq_clock"] = 10**9 + 30 * 10**8

    v = judge_samples(series(45, cpu=stuck))
    assert [(x["check"], x["cpu"]) for x in v.violations] == [("stall", 1)]
    assert v.violations[0]["at_ms"] == 3100.0  # first interval it stood still
    assert v.violations[0]["around"][-1]["rq_clock"] == 10**9 + 30 * 10**8


def test_an_idle_cpu_is_not_a_stall():
    def idle(i, c, e):
        if c == 1 and i >= 30:
            e.update(rq_clock=10**9 + 30 * 10**8, nr_running=0, scx_nr_running=0)

    assert judge_samples(series(45, cpu=idle, ncpus=2)).status == "passed"


def test_a_vcpu_the_host_did_not_run_is_not_a_stall():
    def paused(i, c, e):
        if c == 1 and i >= 30:
            e["rq_clock"] = 10**9 + 30 * 10**8

    def vcpu_ns(i, c):  # the host stops running vCPU 1's thread at sample 30
        return (min(i, 30) if c == 1 else i) * 50_000_000

    assert judge_samples(series(45, ncpus=2, cpu=paused, vcpus=vcpu_ns)).status == "passed"
    # the same stall while the host did run the vCPU fails
    running = judge_samples(series(45, ncpus=2, cpu=paused, vcpus=lambda i, c: i * 50_000_000))
    assert running.status == "failed"


def test_shared_vcpu_thread_needs_a_stall_longer_than_its_round_robin():
    def gap(i, c, e):  # CPU 1 stands still for 5 intervals (3.1 s to 3.5 s)
        if c == 1 and (30 <= i < 36):
            e["rq_clock"] = 10**9 + 30 * 10**8

    samples = series(45, ncpus=2, cpu=gap)
    for s in samples:
        s["vcpus"] = {"at_s": s["elapsed_ms"] / 1000, "run_ns": [0, 0], "shared": 8}
    assert judge_samples(samples).status == "passed"  # 8 vCPUs x 100 ms > that 400 ms gap
    for s in samples:
        s["vcpus"]["shared"] = 1
    assert judge_samples(samples).status == "failed"


def test_event_rates():
    v = judge_samples(
        series(50, events=lambda i: {FALLBACK: 0 if i < 35 else 30 * (i - 35), KEEP_LAST: 20 * i})
    )
    checks = sorted(x["check"] for x in v.violations)
    assert checks == ["fallback_rate", "keep_last_rate"]  # 300/s > 200; 200/s > 100
    fb = next(x for x in v.violations if x["check"] == "fallback_rate")
    assert fb["value"] == pytest.approx(300.0) and fb["at_ms"] == 3600.0


def test_no_scheduler_attached_is_not_judged():
    def heavy(i, c, e):
        e["nr_running"] = 9 if c == 0 else 0

    v = judge_samples(series(40, cpu=heavy, scx=False))
    assert v.status == "not_applied" and not v.violations and v.samples == 40


def test_no_valid_sample_is_inconclusive():
    v = judge_samples([{"elapsed_ms": "x"}, "garbage", {"cpus": []}])
    assert v.status == "inconclusive" and v.invalid == 3
    assert judge_samples([]).status == "inconclusive"


def test_absurd_values_are_inconclusive_not_failed():
    def absurd(i, c, e):
        e["local_dsq_nr"] = 123_456

    v = judge_samples(series(40, cpu=absurd))
    assert v.status == "inconclusive" and "vmlinux" in v.reason


def test_attach_midway_starts_the_warmup_then():
    eevdf = series(30, scx=False)

    def heavy(i, c, e):
        if c == 0 and i < WARM:
            e["nr_running"] = 9

    attached = series(40, cpu=heavy, t0=3000.0)
    assert judge_samples(eevdf + attached).status == "passed"


def test_live_feed_reports_each_violation_once_when_it_becomes_sustained():
    def heavy(i, c, e):
        if c == 0 and i >= 30:
            e["nr_running"] = 9

    judge = MonitorJudge()
    fired = [(i, v["check"]) for i, s in enumerate(series(45, cpu=heavy)) for v in judge.feed(s)]
    assert fired == [(34, "imbalance")]


def test_thresholds_merge_defaults_scheduler_then_test():
    t = resolve_thresholds(
        {"max_imbalance_ratio": 8.0, "sustained_samples": 3},
        {"sustained_samples": 10, "max_local_dsq_depth": None},
    )
    assert (t.max_imbalance_ratio, t.sustained_samples, t.max_local_dsq_depth) == (8.0, 10, 50)
    with pytest.raises(ThresholdError, match="unknown monitor threshold"):
        resolve_thresholds({"max_imbalance": 2})
    with pytest.raises(ThresholdError, match="sustained_samples"):
        MonitorThresholds(sustained_samples=0)
    with pytest.raises(ThresholdError, match="fail_on_stall"):
        MonitorThresholds(fail_on_stall=1)

    def heavy(i, c, e):
        if c == 0:
            e["nr_running"] = 6

    assert judge_samples(series(40, cpu=heavy), t).status == "passed"  # 6 < 8


def test_command_line_overrides_are_typed():
    from verdicts.thresholds import parse_override

    assert parse_override("max_imbalance_ratio=8") == ("max_imbalance_ratio", 8.0)
    assert parse_override("sustained_samples = 3") == ("sustained_samples", 3)
    assert parse_override("fail_on_stall=false") == ("fail_on_stall", False)
    for bad in ("max_imbalance_ratio", "nope=1", "sustained_samples=2.5", "fail_on_stall=maybe"):
        with pytest.raises(ThresholdError):
            parse_override(bad)


def _rates(fallback_per_step, keep_last_per_step, over=range(0)):
    """Counters rising by the given amounts per 100 ms step; ``over`` steps add one more
    (just over a 100 ms step's worth of the limit)."""

    def events(i):
        extra = sum(1 for j in over if j <= i)
        return {FALLBACK: fallback_per_step * i + extra, KEEP_LAST: keep_last_per_step * i + extra}

    return events


def test_event_rates_at_their_limits_pass_and_just_over_them_fail():
    at_limits = judge_samples(series(50, events=_rates(20, 10)))  # 200/s and 100/s exactly
    assert at_limits.status == "passed", at_limits.violations
    assert at_limits.events[FALLBACK]["rate"] == pytest.approx(200.0)
    over = judge_samples(series(50, events=_rates(20, 10, over=range(30, 35))))
    assert sorted(v["check"] for v in over.violations) == ["fallback_rate", "keep_last_rate"]
    assert all(
        v["samples"] == 5 and v["value"] == pytest.approx(v["limit"] + 10) for v in over.violations
    )
    brief = judge_samples(series(50, events=_rates(20, 10, over=range(30, 34))))
    assert brief.status == "passed"  # four samples over: not sustained


def test_a_stall_shorter_than_sustained_samples_passes():
    def stuck(i, c, e):  # CPU 1 stands still for 4 intervals only
        if c == 1 and 30 <= i < 35:
            e["rq_clock"] = 10**9 + 30 * 10**8

    assert judge_samples(series(45, cpu=stuck)).status == "passed"

    def stuck5(i, c, e):
        if c == 1 and 30 <= i < 36:
            e["rq_clock"] = 10**9 + 30 * 10**8

    assert [v["check"] for v in judge_samples(series(45, cpu=stuck5)).violations] == ["stall"]


def test_stall_judging_can_be_turned_off():
    def stuck(i, c, e):
        if c == 1 and i >= 30:
            e["rq_clock"] = 10**9 + 30 * 10**8

    off = MonitorThresholds(fail_on_stall=False)
    assert judge_samples(series(45, cpu=stuck), off).status == "passed"
