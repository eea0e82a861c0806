"""The scheduler in the result: its section from what the guest reported, and the verdict."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from orchestrator.result import RunOutcome, build_result
from orchestrator.result_schema import ResultError, load_result, validate_result
from orchestrator.sched_outcome import (
    ERROR,
    FAILURE,
    SchedAsked,
    SchedReport,
    cut_debug_dump,
    findings,
    section,
)

QMAP = SchedAsked("scx_qmap", "example", ("-e", "100"), "qmap")
ATTACHED = {
    "status": "attached",
    "attached": True,
    "ops": "qmap",
    "message": "",
    "attach_ms": 912.5,
}
STALL = {
    "t_ns": 12_000_000_000,
    "trigger": "disabled",
    "state": "disabling",
    "exit_status": "",
    "exit": {
        "kind": "ERROR_STALL",
        "code": 1026,
        "reason": "runnable task stall",
        "message": "spin[181] failed to run for 5.016s",
        "task": {"comm": "spin", "pid": 181},
        "stall_s": 5.016,
    },
}
BPF_ERROR = {
    "t_ns": 9_500_000_000,
    "trigger": "disabled",
    "exit": {"kind": "ERROR_BPF", "code": 1025, "reason": "scx_bpf_error",
             "message": "test triggering error"},
}  # fmt: skip
GOOD = {"passed": True, "reason": "ok", "workers": []}


def _samples(tmp: Path) -> None:
    rows = [{"elapsed_ms": t, "cpus": [{"cpu": 0, "nr_running": 1, "rq_clock": t + 1},
                                       {"cpu": 1, "nr_running": 1, "rq_clock": t + 1}]}
            for t in (0, 100)]  # fmt: skip
    (tmp / "monitor-monitor.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))


def _result(tmp: Path, state: dict | None, asked: SchedAsked = QMAP, **kw) -> dict:
    o = RunOutcome(engine="qemu", engine_reason="r", kernel={"version": "7.2"},
                   topology={"cpus": 2, "spec": "1,1,2,1"}, run_dir=tmp)  # fmt: skip
    o.sched = SchedReport(asked, state, **kw.pop("report", {}))
    for k, v in kw.items():
        setattr(o, k, v)
    return build_result(o)


def test_a_clean_run_reports_attach_and_stop(tmp_path: Path) -> None:
    _samples(tmp_path)
    (tmp_path / "sched.log").write_text("local=1 global=2\n")
    stop = {"status": "clean", "detached": True, "killed": False, "problems": [], "wait_ms": 40.0}
    r = _result(tmp_path, {"attach": ATTACHED, "stop": stop}, guest_result=GOOD,
                guest_exit_code=0, vm_exit_reason="guest-exit")  # fmt: skip
    assert r["verdict"] == "passed", r["reasons"]
    s = r["scheduler"]
    assert (s["name"], s["ops"], s["attached"], s["attach_ms"]) == ("scx_qmap", "qmap", True, 912.5)
    assert s["args"] == ["-e", "100"] and s["exit"] is None and s["log"] == "sched.log"
    assert s["stop"]["status"] == "clean" and s["dump"] is None


def test_a_stall_fails_with_the_kernels_words_first_and_names_the_task(tmp_path: Path) -> None:
    (tmp_path / "sched_ext_dump.log").write_text("=== sched_ext_dump (exit) ===\nCPU 0\n")
    r = _result(tmp_path, {"attach": ATTACHED, "exit": STALL}, vm_exit_reason="sched-exit",
                report={"stopped_early": True, "exit_to_stop_ms": 640.0})  # fmt: skip
    assert r["verdict"] == "failed" and r["reasons"] == [
        "runnable task stall: spin[181] failed to run for 5.016s "
        "(scx_qmap was disabled during the test)"
    ]  # no "VM exit", no "no samples": consequences of stopping early
    e = r["scheduler"]["exit"]
    assert e["kind"] == "ERROR_STALL" and e["task"] == {"comm": "spin", "pid": 181}
    assert e["stall_s"] == 5.016 and e["t_ns"] == 12_000_000_000
    assert r["scheduler"]["dump"] == "sched_ext_dump.log" and r["scheduler"]["stopped_early"]
    assert r["scheduler"]["exit_to_stop_ms"] == 640.0


def test_scx_bpf_error_message_leads_the_reasons(tmp_path: Path) -> None:
    r = _result(tmp_path, {"attach": ATTACHED, "exit": BPF_ERROR}, vm_exit_reason="sched-exit",
                report={"stopped_early": True})  # fmt: skip
    assert r["reasons"][0].startswith("scx_bpf_error: test triggering error (scx_qmap")


def test_a_load_failure_is_an_error_starting_with_its_output(tmp_path: Path) -> None:
    died = {
        "status": "died", "attached": False, "ops": "",
        "message": "libbpf: prog 'qmap_init': BPF program load failed: -22\n"
                   "--- loop: the next 3 lines repeat 5 times ---\nx\ny\nz\n"
                   "-- scx_qmap exited before attaching to sched_ext (exited 1)",
    }  # fmt: skip
    r = _result(tmp_path, {"attach": died}, guest_result={"passed": False, "reason": "x"},
                guest_exit_code=4, vm_exit_reason="guest-exit")  # fmt: skip
    assert r["verdict"] == "error"
    assert r["reasons"][0] == (
        "libbpf: prog 'qmap_init': BPF program load failed: -22 | --- loop: the next 3 lines "
        "repeat 5 times --- | x | ... (scx_qmap exited before attaching to sched_ext (exited 1))"
    )
    assert r["scheduler"]["attach_status"] == "died" and not r["scheduler"]["attached"]
    assert r["scheduler"]["attach_message"] == died["message"]


def test_a_refused_load_leads_with_its_exit_line_not_its_debug_dump(tmp_path: Path) -> None:
    rule = "=" * 80
    died = {"status": "died", "attached": False, "ops": "", "message": (
        f"\nDEBUG DUMP\n{rule}\n\nqmap: root\n  runtime error (cid 0 assigned to multiple cpus)\n"
        f"\n{rule}\nEXIT: runtime error (cid 0 assigned to multiple cpus)\n"
        "-- scx_qmap exited before attaching to sched_ext (exited 1)")}  # fmt: skip
    r = _result(tmp_path, {"attach": died}, vm_exit_reason="guest-exit")
    assert r["reasons"][0] == (
        "EXIT: runtime error (cid 0 assigned to multiple cpus) "
        "(scx_qmap exited before attaching to sched_ext (exited 1))"
    )


def test_no_sched_ext_and_not_reported_are_errors(tmp_path: Path) -> None:
    absent = {"status": "sysfs_absent", "attached": False, "ops": "",
              "message": "this kernel has no sched_ext (CONFIG_SCHED_CLASS_EXT)"}  # fmt: skip
    r = _result(tmp_path, {"attach": absent}, vm_exit_reason="guest-exit")
    assert r["verdict"] == "error" and r["reasons"][0] == absent["message"]
    r = _result(tmp_path, None, vm_exit_reason="guest-exit")
    assert r["reasons"][0] == "the guest never reported whether scx_qmap attached"


def test_stop_problems_are_failures(tmp_path: Path) -> None:
    stop = {"status": "killed", "detached": True, "killed": True,
            "problems": ["had to be killed: still running 8 s after SIGINT"]}  # fmt: skip
    s = section(QMAP, {"attach": ATTACHED, "stop": stop}, tmp_path)
    assert findings(s) == [
        type(findings(s)[0])(FAILURE, "scx_qmap had to be killed: still running 8 s after SIGINT")
    ]


def test_eevdf_has_a_section_and_no_findings(tmp_path: Path) -> None:
    s = section(SchedAsked(), None, tmp_path)
    assert (s.name, s.origin, s.attached, s.attach_status, s.log) == (
        "eevdf", "eevdf", False, "", None)  # fmt: skip
    assert findings(s) == []


def test_hostile_payloads_are_bounded_and_typed(tmp_path: Path) -> None:
    state = {
        "attach": {"status": ["x"], "attached": "yes", "attach_ms": True, "message": "m" * 10**5},
        "exit": {"t_ns": -5, "trigger": 7, "exit": {"kind": 1, "task": {"comm": 2, "pid": "x"}}},
        "stop": {"problems": "not a list", "detached": 1},
    }
    s = section(QMAP, state, tmp_path)
    assert s.attach_status == "" or s.attach_status == "not_reported"
    assert not s.attached and s.attach_ms is None and len(s.attach_message) <= 8192
    assert s.exit is not None and s.exit.t_ns == 0 and s.exit.task is None and s.exit.kind == ""
    assert s.stop is not None and s.stop.problems == () and s.stop.detached is False
    assert [f.kind for f in findings(s)] == [ERROR, FAILURE]


def test_debug_dump_is_cut_from_the_log(tmp_path: Path) -> None:
    rule = "=" * 80
    (tmp_path / "sched.log").write_text(
        f"noise\n\nDEBUG DUMP\n{rule}\n\nqmap: root\nCPU 0 nr_run=1\n{rule}\n"
        "EXIT: runnable task stall (spin[181] failed to run for 5.016s)\n"
    )
    assert cut_debug_dump(tmp_path) == "sched_debug_dump.log"
    assert (tmp_path / "sched_debug_dump.log").read_text() == "qmap: root\nCPU 0 nr_run=1\n"
    (tmp_path / "sched.log").write_text("no dump\n")
    assert cut_debug_dump(tmp_path / "nowhere") is None and cut_debug_dump(tmp_path) is None


def test_result_schema_checks_on_read(tmp_path: Path) -> None:
    r = _result(tmp_path, {"attach": ATTACHED, "exit": STALL}, vm_exit_reason="sched-exit")
    path = tmp_path / "result.json"
    path.write_text(json.dumps(r))
    assert load_result(path)["scheduler"]["exit"]["task"]["pid"] == 181
    for mutate, field in [
        (lambda d: d["scheduler"].pop("name"), "result.scheduler.name"),
        (lambda d: d["scheduler"].update(attached="yes"), "result.scheduler.attached"),
        (lambda d: d["scheduler"]["exit"].update(task={"comm": "x"}), "scheduler.exit.task.pid"),
        (lambda d: d["scheduler"].update(args="-v"), "result.scheduler.args"),
        (lambda d: d.update(verdict="maybe"), "result.verdict"),
        (lambda d: d.update(passed=True), "result.passed"),
    ]:
        doc = json.loads(path.read_text())
        mutate(doc)
        with pytest.raises(ResultError, match=field.replace(".", r"\.")):
            validate_result(doc)
    path.write_text("{not json")
    with pytest.raises(ResultError, match="result.json"):
        load_result(path)


def test_doctest() -> None:
    import doctest

    from orchestrator import result_schema

    assert doctest.testmod(result_schema).failed == 0
