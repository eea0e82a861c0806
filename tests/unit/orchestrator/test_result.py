import json
from pathlib import Path

from orchestrator.result import RunOutcome, build_result, check_rq_clocks


def _sample(ms: float, clocks: list[int]) -> dict:
    return {"elapsed_ms": ms, "cpus": [{"cpu": i, "nr_running": 1, "rq_clock": c} for i, c in enumerate(clocks)]}


def _outcome(tmp: Path, **kw) -> RunOutcome:  # noqa: ANN003
    o = RunOutcome(engine="qemu", engine_reason="r", kernel={"version": "7.2"},
                   topology={"cpus": 2, "spec": "1,1,2,1"}, run_dir=tmp)
    for k, v in kw.items():
        setattr(o, k, v)
    return o


def _write_monitor(tmp: Path, samples: list[dict], torn: bool = False) -> None:
    text = "".join(json.dumps(s) + "\n" for s in samples) + ('{"elapsed' if torn else "")
    (tmp / "monitor-monitor.jsonl").write_text(text)


def test_rq_clock_check() -> None:
    assert check_rq_clocks([_sample(0, [1, 1]), _sample(100, [2, 2])], 2)[0]
    ok, why = check_rq_clocks([_sample(0, [1, 1]), _sample(100, [2, 1])], 2)
    assert not ok and "[1]" in why
    assert not check_rq_clocks([_sample(0, [1, 1])], 2)[0]
    assert not check_rq_clocks([_sample(0, [1]), _sample(1, [2])], 2)[0]  # CPU 1 never seen


GOOD = {"passed": True, "reason": "ok", "workers": [
    {"cgroup": "cg0", "pid": 5, "work_units": 10, "cpu_time_ns": 5, "max_gap_ms": 1.0, "extra": 1}]}


def test_passed_needs_everything(tmp_path: Path) -> None:
    _write_monitor(tmp_path, [_sample(0, [1, 1]), _sample(100, [2, 2])], torn=True)
    r = build_result(_outcome(tmp_path, guest_result=GOOD, guest_exit_code=0, vm_exit_reason="guest-exit"))
    assert r["passed"] and r["verdict"] == "passed" and r["reasons"] == []
    assert r["workers"] == [{"cgroup": "cg0", "pid": 5, "work_units": 10, "cpu_time_ns": 5, "max_gap_ms": 1.0}]
    assert len(r["monitor"]["samples"]) == 2 and r["monitor"]["samples"][1]["cpus"][0]["rq_clock"] == 2


def test_guest_failure_is_failed_and_crash_is_failed(tmp_path: Path) -> None:
    _write_monitor(tmp_path, [_sample(0, [1, 1]), _sample(100, [2, 2])])
    bad = dict(GOOD, passed=False, reason="starved")
    r = build_result(_outcome(tmp_path, guest_result=bad, guest_exit_code=1, vm_exit_reason="guest-exit"))
    assert r["verdict"] == "failed" and any("starved" in x for x in r["reasons"])
    r = build_result(_outcome(tmp_path, vm_exit_reason="crash", vm_exit_detail="Kernel panic"))
    assert r["verdict"] == "failed" and any("crash" in x for x in r["reasons"])


def test_infrastructure_errors_are_errors(tmp_path: Path) -> None:
    r = build_result(_outcome(tmp_path, vm_exit_reason="error", vm_exit_detail="qemu died"))
    assert r["verdict"] == "error" and not r["passed"]
    r = build_result(_outcome(tmp_path, vm_exit_reason="guest-exit"))
    assert r["verdict"] == "error" and any("without a test result" in x for x in r["reasons"])
