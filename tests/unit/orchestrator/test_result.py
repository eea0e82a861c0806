"""The result document and its classification: exit 2 for every path that could not judge."""

import json
from pathlib import Path

import pytest

from guest.wire import ExitCode
from orchestrator.monitor_check import MonitorReport
from orchestrator.result import RunOutcome, build_result, check_rq_clocks
from orchestrator.verdict import GUEST_EXIT, Verdict
from schedlab_shared.exitcodes import RunExit


def _sample(ms: float, clocks: list[int], running: list[int] | None = None) -> dict:
    running = running or [1] * len(clocks)
    return {
        "elapsed_ms": ms,
        "cpus": [
            {"cpu": i, "nr_running": n, "rq_clock": c}
            for i, (c, n) in enumerate(zip(clocks, running, strict=True))
        ],
    }


def _outcome(tmp: Path, **kw) -> RunOutcome:  # noqa: ANN003
    o = RunOutcome(
        engine="qemu",
        engine_reason="r",
        kernel={"version": "7.2"},
        topology={"cpus": 2, "spec": "1,1,2,1"},
        run_dir=tmp,
        sys_rdy=1.0,
    )
    for k, v in kw.items():
        setattr(o, k, v)
    return o


def _write_monitor(
    tmp: Path, samples: list[dict], torn: bool = False, name: str = "monitor"
) -> None:
    text = "".join(json.dumps(s) + "\n" for s in samples) + ('{"elapsed' if torn else "")
    (tmp / f"monitor-{name}.jsonl").write_text(text)


def _good_monitor(tmp: Path) -> None:
    _write_monitor(tmp, [_sample(0, [1, 1]), _sample(100, [2, 2])])


GOOD = {
    "passed": True,
    "reason": "ok",
    "workers": [
        {
            "cgroup": "cg0",
            "pid": 5,
            "work_units": 10,
            "cpu_time_ns": 5,
            "max_gap_ms": 1.0,
            "extra": 1,
        }
    ],
}


def _judge(tmp: Path, **kw) -> tuple[dict, int]:  # noqa: ANN003
    r = build_result(_outcome(tmp, **kw))
    return r, Verdict(r["verdict"]).exit_code


# --- the rq clock check ------------------------------------------------------------------


def test_rq_clock_check() -> None:
    assert check_rq_clocks([_sample(0, [1, 1]), _sample(100, [2, 2])], 2).verdict == "passed"
    verdict, why = check_rq_clocks([_sample(0, [1, 1]), _sample(100, [2, 1])], 2)
    assert verdict == "failed" and "[1]" in why
    assert check_rq_clocks([_sample(0, [1, 1])], 2).verdict == "error"  # too few samples
    unseen = check_rq_clocks([_sample(0, [1]), _sample(1, [2])], 2)  # CPU 1 never seen
    assert unseen.verdict == "error" and "[1] missing" in unseen.reason


def test_an_idle_cpu_whose_clock_stands_still_is_not_a_stall() -> None:
    verdict, why = check_rq_clocks([_sample(0, [1, 5], [1, 0]), _sample(100, [2, 5], [1, 0])], 2)
    assert verdict == "passed" and "idle CPU(s) [1] not judged" in why
    # Runnable at any point of the window and the clock stood still: stuck.
    verdict, why = check_rq_clocks([_sample(0, [1, 5], [1, 0]), _sample(100, [2, 5], [1, 2])], 2)
    assert verdict == "failed" and "[1]" in why


def test_malformed_monitor_lines_are_not_samples(tmp_path: Path) -> None:
    good = [_sample(0, [1, 1]), _sample(100, [2, 2])]
    text = "".join(json.dumps(s) + "\n" for s in good) + '{"elapsed_ms": "x", "cpus": 3}\n[1]\n'
    (tmp_path / "monitor-monitor.jsonl").write_text(text)
    r, code = _judge(tmp_path, guest_result=GOOD, guest_exit_code=0, vm_exit_reason="guest-exit")
    assert code == RunExit.PASSED and r["monitor"]["instances"] == {"monitor": 2}


# --- passing and judged failures -----------------------------------------------------------


def test_passed_needs_everything(tmp_path: Path) -> None:
    _write_monitor(tmp_path, [_sample(0, [1, 1]), _sample(100, [2, 2])], torn=True)
    r, code = _judge(tmp_path, guest_result=GOOD, guest_exit_code=0, vm_exit_reason="guest-exit")
    assert code == RunExit.PASSED and r["passed"] and r["reasons"] == [] and r["reason"] == ""
    assert r["workers"] == [
        {"cgroup": "cg0", "pid": 5, "work_units": 10, "cpu_time_ns": 5, "max_gap_ms": 1.0}
    ]
    assert (
        len(r["monitor"]["samples"]) == 2 and r["monitor"]["samples"][1]["cpus"][0]["rq_clock"] == 2
    )


def test_guest_verdict_and_kernel_crash_during_the_test_are_failures(tmp_path: Path) -> None:
    _good_monitor(tmp_path)
    bad = dict(GOOD, passed=False, reason="starved")
    r, code = _judge(
        tmp_path,
        guest_result=bad,
        guest_exit_code=ExitCode.TEST_FAILED,
        vm_exit_reason="guest-exit",
    )
    assert code == RunExit.FAILED and r["reason"] == "guest verdict: starved"
    r, code = _judge(
        tmp_path, vm_exit_reason="crash", vm_exit_detail="Kernel panic - not syncing: sysrq"
    )
    assert code == RunExit.FAILED and r["reason"].startswith(
        "the guest kernel crashed: Kernel panic"
    )


def test_a_stuck_busy_cpu_fails_the_test(tmp_path: Path) -> None:
    _write_monitor(tmp_path, [_sample(0, [1, 7]), _sample(100, [2, 7])])
    r, code = _judge(tmp_path, guest_result=GOOD, guest_exit_code=0, vm_exit_reason="guest-exit")
    assert code == RunExit.FAILED and "did not advance on CPU(s) [1]" in r["reason"]


def test_the_consoles_crash_text_is_evidence_however_long_the_backtrace(tmp_path: Path) -> None:
    trace = [f"[ 8.{i:04}]  ? frame_{i}+0x1/0x2" for i in range(80)]
    lines = [
        "[ 1.0] booted",
        "[ 7.9] sysrq: Trigger a crash",
        "[ 7.9] Kernel panic - not syncing: x",
        *trace,
    ]
    (tmp_path / "console.log").write_text("\n".join(lines) + "\n")
    r, code = _judge(
        tmp_path, vm_exit_reason="crash", vm_exit_detail="Kernel panic - not syncing: x"
    )
    crash = r["evidence"]["console_crash"]
    assert code == RunExit.FAILED and crash[:2] == lines[:2] and len(crash) == 60
    assert not any("sysrq" in ln for ln in r["evidence"]["console_tail"])


def test_a_kernel_oops_without_panic_fails_the_test(tmp_path: Path) -> None:
    _good_monitor(tmp_path)
    (tmp_path / "kernel.log").write_text(
        "[ 1.0] ok\n[ 2.0] BUG: kernel NULL pointer dereference, address: 0\n"
    )
    r, code = _judge(tmp_path, guest_result=GOOD, guest_exit_code=0, vm_exit_reason="guest-exit")
    assert code == RunExit.FAILED and "NULL pointer dereference" in r["reason"]
    assert r["evidence"]["oops"]


# --- could not judge: exit 2 with a one-line reason -----------------------------------------


@pytest.mark.parametrize(
    ("code", "reason", "needle"),
    [
        (
            ExitCode.BAD_IMAGE,
            "bad image: schedlab.sentinel missing (truncated)",
            "guest BAD_IMAGE: bad image",
        ),
        (
            ExitCode.BAD_SPEC,
            "bad run spec: schedlab.bogus: unknown key",
            "guest BAD_SPEC: bad run spec",
        ),
        (
            ExitCode.SETUP_FAILED,
            "cgroup setup failed: mkdir /proc/schedlab",
            "guest SETUP_FAILED: cgroup setup",
        ),
        (
            ExitCode.SHUTDOWN,
            "host requested shutdown before start",
            "guest SHUTDOWN: host requested",
        ),
    ],
)
def test_guest_setup_failures_are_errors(
    tmp_path: Path, code: ExitCode, reason: str, needle: str
) -> None:
    r, exit_code = _judge(
        tmp_path,
        guest_result={"passed": False, "reason": reason},
        guest_exit_code=code,
        vm_exit_reason="guest-exit",
    )
    assert exit_code == RunExit.ERROR and r["verdict"] == "error"
    assert r["reason"].startswith(needle) and r["reasons"][0] == r["reason"]
    assert "\n" not in r["reason"]


def test_every_guest_exit_code_is_classified() -> None:
    assert set(GUEST_EXIT) == set(ExitCode)


def test_unknown_or_hostile_guest_values_are_errors(tmp_path: Path) -> None:
    r, code = _judge(tmp_path, guest_result=GOOD, guest_exit_code=77, vm_exit_reason="guest-exit")
    assert code == RunExit.ERROR and "unknown exit code 77" in r["reason"]
    long = {"passed": False, "reason": "x\n" * 5000, "workers": "not a list"}
    r, code = _judge(
        tmp_path, guest_result=long, guest_exit_code=ExitCode.BAD_SPEC, vm_exit_reason="guest-exit"
    )
    assert (
        code == RunExit.ERROR
        and len(r["reason"]) < 400
        and "\n" not in r["reason"]
        and r["workers"] == []
    )


def test_missing_bulk_port_is_an_error_with_the_guests_com2_line(tmp_path: Path) -> None:
    (tmp_path / "diag.log").write_text("bulk port org.schedlab.bulk not found; cannot report\n")
    r, code = _judge(tmp_path, vm_exit_reason="guest-exit", sys_rdy=0.0)
    assert code == RunExit.ERROR
    assert r["reason"] == (
        "the guest exited without a test result; its last COM2 line: "
        "bulk port org.schedlab.bulk not found; cannot report"
    )
    assert r["reasons"] == [r["reason"]]  # no monitor noise before the guest was ready


def test_pid1_panic_lines_are_an_error_whatever_the_vm_did(tmp_path: Path) -> None:
    (tmp_path / "diag.log").write_text(
        "PANIC: init crashed: Traceback (most recent call last):\n"
        "PANIC:   File x\nPANIC: RuntimeError: boom\n"
    )
    for vm in ("guest-exit", "crash"):  # a native fault kills PID 1 and the kernel panics
        r, code = _judge(tmp_path, vm_exit_reason=vm, vm_exit_detail="Attempted to kill init!")
        assert (
            code == RunExit.ERROR and r["reason"] == "the guest's PID 1 crashed: RuntimeError: boom"
        )
        assert r["evidence"]["panic"]


def test_infrastructure_errors_are_errors(tmp_path: Path) -> None:
    _good_monitor(tmp_path)
    r, code = _judge(tmp_path, vm_exit_reason="error", vm_exit_detail="qemu died")
    assert code == RunExit.ERROR and r["reason"] == "VM engine failed: qemu died"
    r, code = _judge(tmp_path, vm_exit_reason="guest-exit")
    assert code == RunExit.ERROR and "without a test result" in r["reason"]
    r, code = _judge(
        tmp_path, vm_exit_reason="crash", vm_exit_detail="VFS: Unable to mount root", sys_rdy=0.0
    )
    assert code == RunExit.ERROR and "crashed while booting" in r["reason"]
    r, code = _judge(tmp_path, errors=["collector_proc failed (exit 1): boom"])
    assert code == RunExit.ERROR and r["reasons"] == ["collector_proc failed (exit 1): boom"]


def test_setup_error_outweighs_a_judged_failure(tmp_path: Path) -> None:
    _write_monitor(tmp_path, [_sample(0, [1, 7]), _sample(100, [2, 7])])  # a stall, too
    r, code = _judge(
        tmp_path,
        guest_result={"passed": False, "reason": "cgroup setup failed: x"},
        guest_exit_code=ExitCode.SETUP_FAILED,
        vm_exit_reason="guest-exit",
    )
    assert code == RunExit.ERROR and r["reason"].startswith("guest SETUP_FAILED")
    assert any("did not advance" in x for x in r["reasons"][1:])


# --- timeouts ------------------------------------------------------------------------------


def test_timeout_keeps_partial_reports(tmp_path: Path) -> None:
    _good_monitor(tmp_path)
    partial = dict(GOOD, passed=False, reason="stopped by host shutdown request; ok", stopped=True)
    r, code = _judge(
        tmp_path,
        guest_result=partial,
        guest_exit_code=ExitCode.SHUTDOWN,
        vm_exit_reason="guest-exit",
        timed_out_s=20.0,
    )
    assert code == RunExit.ERROR and r["reason"] == "timed out after 20 s; partial reports kept"
    assert r["workers"] and r["reasons"] == [r["reason"]] and r["timed_out_s"] == 20.0


def test_timeout_without_an_answer_from_the_guest(tmp_path: Path) -> None:
    r, code = _judge(
        tmp_path, vm_exit_reason="timeout", vm_exit_detail="stopped by the VMM", timed_out_s=20.0
    )
    assert code == RunExit.ERROR
    assert r["reason"] == (
        "timed out after 20 s; the guest did not stop on request, so the VM was stopped; "
        "no worker reports"
    )
    r, code = _judge(tmp_path, vm_exit_reason="timeout", vm_exit_detail="VM timed out")
    assert code == RunExit.ERROR and r["reason"] == "the VM hit its hard timeout: VM timed out"


# --- monitors that could not judge -----------------------------------------------------------


def test_too_few_samples_is_inconclusive(tmp_path: Path) -> None:
    _write_monitor(tmp_path, [_sample(0, [1, 1])])
    r, code = _judge(tmp_path, guest_result=GOOD, guest_exit_code=0, vm_exit_reason="guest-exit")
    assert code == RunExit.ERROR and r["reason"] == "monitor: 1 samples, need at least 2"


def test_a_vmlinux_that_does_not_match_is_inconclusive(tmp_path: Path) -> None:
    status = {
        "state": "stopped",
        "samples": 0,
        "errors": 41,
        "last_error": "TranslationError: kernel image not found in guest memory (phys_base unresolved)",
    }
    r, code = _judge(
        tmp_path,
        guest_result=GOOD,
        guest_exit_code=0,
        vm_exit_reason="guest-exit",
        monitors={"monitor": MonitorReport(status=status)},
    )
    assert code == RunExit.ERROR
    assert r["reason"].startswith(
        "monitor monitor: no valid sample; 41 reads of guest memory failed, "
        "last: TranslationError: kernel image not found"
    )
    assert "does the vmlinux match the running kernel?" in r["reason"]
    assert r["reasons"] == [r["reason"]]  # the clock check does not repeat it


def test_a_crash_looping_monitor_is_reported(tmp_path: Path) -> None:
    _good_monitor(tmp_path)
    reports = {
        "monitor": MonitorReport(restarts=1),
        "monitor1": MonitorReport(restarts=5, gave_up=True, last_log_line="ValueError: not an ELF"),
    }
    r, code = _judge(
        tmp_path,
        guest_result=GOOD,
        guest_exit_code=0,
        vm_exit_reason="guest-exit",
        monitors=reports,
        restarts={"monitor": 1, "monitor1": 5, "collector": 1},
    )
    assert code == RunExit.ERROR
    assert r["reason"] == (
        "monitor monitor1: no valid sample; it was started 6 times, then given up "
        "(last log line: ValueError: not an ELF)"
    )
    assert r["notes"] == [
        "monitor monitor restarted 1 time(s)",
        "monitor monitor1 restarted 5 time(s), then gave up",
        "collector restarted 1 time(s)",
    ]
    assert r["monitor"]["processes"]["monitor1"]["gave_up"] is True


def test_a_restarted_monitor_with_samples_still_passes(tmp_path: Path) -> None:
    _good_monitor(tmp_path)
    r, code = _judge(
        tmp_path,
        guest_result=GOOD,
        guest_exit_code=0,
        vm_exit_reason="guest-exit",
        monitors={"monitor": MonitorReport(restarts=1)},
        restarts={"monitor": 1},
    )
    assert code == RunExit.PASSED and r["notes"] == ["monitor monitor restarted 1 time(s)"]


def test_a_judged_failure_outweighs_an_inconclusive_monitor(tmp_path: Path) -> None:
    bad = dict(GOOD, passed=False, reason="starved")
    r, code = _judge(
        tmp_path,
        guest_result=bad,
        guest_exit_code=ExitCode.TEST_FAILED,
        vm_exit_reason="guest-exit",
    )
    assert code == RunExit.FAILED and r["reasons"] == [
        "guest verdict: starved",
        "monitor: 0 samples, need at least 2",
    ]
