"""The result document judges the workers on the host (verdicts.workers) from the guest's facts."""

from __future__ import annotations

import json
from pathlib import Path

from orchestrator.request import VerdictLimits
from orchestrator.result import RunOutcome, build_result
from tests.framework.worker_reports import report, seg


def _outcome(tmp: Path, guest: dict, **kw) -> RunOutcome:  # noqa: ANN003
    (tmp / "monitor-monitor.jsonl").write_text(
        "".join(
            json.dumps(
                {
                    "elapsed_ms": ms,
                    "cpus": [{"cpu": i, "nr_running": 1, "rq_clock": ms + 1} for i in range(2)],
                }
            )
            + "\n"
            for ms in (0, 100)
        )
    )
    o = RunOutcome(
        engine="qemu",
        engine_reason="r",
        kernel={"version": "7.2"},
        topology={"cpus": 2, "spec": "1,1,2,1", "nodes": 1, "llcs": 1, "cores": 2, "threads": 1},
        run_dir=tmp,
        guest_result=guest,
        guest_exit_code=0,
        vm_exit_reason="guest-exit",
    )
    for k, v in kw.items():
        setattr(o, k, v)
    return o


def _facts(reports: list[dict]) -> dict:
    return {
        "passed": True,
        "reason": "workload complete",
        "workers": reports,
        "cgroups": [{"cgroup": "cg0", "workers": 2}],
    }


def test_the_host_fails_an_unfair_run_with_evidence(tmp_path: Path) -> None:
    guest = _facts([report("cg0", 1), report("cg0", 2, [seg(cpu_share=0.1)])])
    r = build_result(_outcome(tmp_path, guest))
    assert r["verdict"] == "failed" and r["reasons"][0].startswith("workers: fairness")
    wv = r["workers_verdict"]
    fair = next(c for c in wv["verdicts"] if c["name"] == "fairness")
    assert not fair["passed"] and "pid 2 90.0%" in fair["evidence"][0]
    assert wv["cgroups"][0]["cgroup"] == "cg0" and wv["limits"]["max_spread"] == 0.15


def test_the_test_s_limits_override_the_defaults(tmp_path: Path) -> None:
    guest = _facts([report("cg0", 1), report("cg0", 2, [seg(cpu_share=0.1)])])
    lim = VerdictLimits(fairness=0.5).worker_overrides()
    r = build_result(_outcome(tmp_path, guest, test_limits=lim))
    assert r["passed"], r["reasons"]
    r = build_result(
        _outcome(tmp_path, guest, test_limits=lim, scheduler_limits={"max_spread": 0.01})
    )
    assert r["passed"]  # the test's word is last
    r = build_result(_outcome(tmp_path, guest, scheduler_limits={"max_spread": 0.01}))
    assert not r["passed"]


def test_a_missing_worker_fails_and_an_expected_error_passes(tmp_path: Path) -> None:
    r = build_result(_outcome(tmp_path, _facts([report("cg0", 1)])))
    assert not r["passed"] and "1 of 2 workers did not report" in r["reasons"][0]
    guest = _facts([report("cg0", 1), report("cg0", 2, [seg(cpu_share=0.1)])])
    r = build_result(_outcome(tmp_path, guest, expect_error="fairness"))
    assert r["passed"] and r["workers_verdict"]["expected_error"] == "fairness"


def test_a_bad_limit_is_an_error_not_a_failure(tmp_path: Path) -> None:
    r = build_result(
        _outcome(
            tmp_path, _facts([report("cg0", 1), report("cg0", 2)]), test_limits={"max_sprad": 0.2}
        )
    )
    assert r["verdict"] == "error" and any("unknown worker limit" in x for x in r["reasons"])


def test_zero_max_gap_turns_the_gap_check_off() -> None:
    assert VerdictLimits(max_gap_ms=0.0).worker_overrides() == {"max_gap_ms": None}
    assert VerdictLimits().worker_overrides() == {}


def test_under_tcg_the_defaults_allow_for_its_noise(tmp_path: Path) -> None:
    guest = _facts([report("cg0", 1), report("cg0", 2, [seg(cpu_share=0.28)])])  # 22 points
    assert not build_result(_outcome(tmp_path, guest))["passed"]
    r = build_result(_outcome(tmp_path, guest, tcg=True))
    assert r["passed"], r["reasons"]
    assert r["workers_verdict"]["limits"]["spread_noise"] == 0.2
