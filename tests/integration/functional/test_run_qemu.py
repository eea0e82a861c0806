"""Tier 3: the whole system under the QEMU engine with TCG: real kernel, our init, all processes."""

from __future__ import annotations

import json
import shutil
from collections import Counter
from pathlib import Path

import pytest

from guest.noise import HOSTILE, real_marker
from tests.framework.prereq import require
from tests.framework.run_checks import assert_complete_run as _assert_complete_run
from tests.framework.schedlab_cli import default_kernel_or_skip, leftovers, run_cli

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def kernel():  # noqa: ANN201
    require(shutil.which("qemu-system-x86_64") is not None, "qemu-system-x86_64 is not installed")
    return default_kernel_or_skip()


def test_run_passes_and_leaves_nothing(kernel, tmp_path: Path) -> None:  # noqa: ANN001
    run = run_cli(
        ["run", "--engine", "qemu", "--duration", "3", "--run-dir", str(tmp_path / "run")], tmp_path
    )
    assert run.code == 0, run.stderr[-2000:]
    assert run.result is not None
    _assert_complete_run(run.result, cpus=2)
    assert "PASSED" in run.stderr


def test_killed_collector_and_monitor_reattach(kernel, tmp_path: Path) -> None:  # noqa: ANN001
    run = run_cli(
        [
            "run",
            "--engine",
            "qemu",
            "--duration",
            "4",
            "--run-dir",
            str(tmp_path / "run"),
            "--inject",
            "kill:collector@0.5",
            "--inject",
            "kill:monitor@1.5",
        ],
        tmp_path,
    )
    assert run.code == 0, run.stderr[-2000:]
    result = run.result
    assert result is not None and len(result["injected_faults"]) == 2
    run_dir = _assert_complete_run(result, cpus=2)
    log = (run_dir / "supervisord.log").read_text()
    assert "exited: collector (terminated by SIGKILL; not expected)" in log
    assert "exited: monitor (terminated by SIGKILL; not expected)" in log
    assert log.count("spawned: 'collector'") == 2 and log.count("spawned: 'monitor'") == 2
    # The console log is whole: boot banner through the guest's power-off, each byte once.
    console = (run_dir / "console.log").read_bytes()
    assert console.count(b"Linux version") == 1 and b"reboot" in console.lower()


def test_bigger_topology(kernel, tmp_path: Path) -> None:  # noqa: ANN001
    run = run_cli(
        [
            "run",
            "--engine",
            "qemu",
            "--duration",
            "2",
            "--topology",
            "2,1,1,1",
            "--mem",
            "512",
            "--run-dir",
            str(tmp_path / "run"),
        ],
        tmp_path,
    )
    assert run.code == 0, run.stderr[-2000:]
    _assert_complete_run(run.result, cpus=2)


def test_corrupt_truncated_and_hostile_frames_are_counted_and_skipped(
    kernel, tmp_path: Path
) -> None:  # noqa: ANN001
    rounds = 4
    run = run_cli(
        [
            "run",
            "--engine",
            "qemu",
            "--duration",
            "2",
            "--wire-noise",
            str(rounds),
            "--run-dir",
            str(tmp_path / "run"),
        ],
        tmp_path,
    )
    assert run.code == 0, run.stderr[-2000:]
    result = run.result
    run_dir = _assert_complete_run(result, cpus=2)
    d = result["decoder"]
    assert d["bad_crc"] >= rounds and d["unknown_type"] == rounds and d["oversize"] >= rounds
    assert d["garbage_bytes"] > 0
    # Valid msgpack the host must refuse: each reason counted, the run unharmed.
    for kind, n in Counter(k for k, _, _ in HOSTILE).items():
        assert d[kind] == rounds * n, kind
    assert d["internal_errors"] == 0 and d["rejected"] == rounds * (len(HOSTILE) + 1)
    log = (run_dir / "supervisord.log").read_text()
    assert log.count("spawned: 'collector'") == 1, "the collector died on guest input"
    rejected = [json.loads(x) for x in (run_dir / "rejected.jsonl").read_text().splitlines()]
    assert {(r["type"], r["kind"], r["field"]) for r in rejected} >= {
        ("RESULT", "bad_field", "workers[0].work_units"),
        ("LOG", "too_large", "msg"),
        ("PHASE", "non_finite", "f"),
    }
    msgs = [json.loads(line) for line in (run_dir / "messages.jsonl").read_text().splitlines()]
    assert [m["index"] for m in msgs] == list(range(len(msgs))) and d["frames"] == len(msgs)
    logs = [m["payload"]["msg"] for m in msgs if m["type"] == "LOG"]
    # Every real frame sent right after a hostile one arrived, in order.
    markers = [x for x in logs if x.startswith("noise ")]
    assert markers == [real_marker(i, k) for i in range(rounds) for k in range(len(HOSTILE))]
    assert any("wire noise" in x for x in logs)
    assert result["guest"]["result"]["reason"] != "forged" and result["guest"]["exit_code"] == 0


def test_kernel_panic_is_a_failure_with_evidence(kernel, tmp_path: Path) -> None:  # noqa: ANN001
    run = run_cli(
        [
            "run",
            "--engine",
            "qemu",
            "--duration",
            "5",
            "--crash-guest",
            "kernel",
            "--run-dir",
            str(tmp_path / "run"),
        ],
        tmp_path,
    )
    assert run.code == 1, run.stderr[-2000:]
    r = run.result
    assert r["verdict"] == "failed" and r["vm_exit"]["reason"] == "crash"
    assert (
        "Kernel panic" in r["vm_exit"]["detail"]
        and "sysrq" in " ".join(r["evidence"]["console_crash"]).lower()
    )
    assert leftovers(r["run_id"]) == []


def test_init_crash_is_reported_from_com2(kernel, tmp_path: Path) -> None:  # noqa: ANN001
    run = run_cli(
        [
            "run",
            "--engine",
            "qemu",
            "--duration",
            "5",
            "--crash-guest",
            "init",
            "--run-dir",
            str(tmp_path / "run"),
        ],
        tmp_path,
    )
    assert run.code == 2, run.stderr[-2000:]
    r = run.result
    assert r["verdict"] == "error" and any(
        "PID 1 crashed" in x and "deliberate crash" in x for x in r["reasons"]
    )
    assert any("Traceback" in ln for ln in r["evidence"]["panic"])
    assert leftovers(r["run_id"]) == []


def test_native_fault_in_init_is_an_error_with_panic_evidence(kernel, tmp_path: Path) -> None:  # noqa: ANN001
    # A SIGSEGV in the init process: PID 1 survives, reports it on COM2 and COM1, powers off.
    run = run_cli(
        [
            "run",
            "--engine",
            "qemu",
            "--duration",
            "5",
            "--crash-guest",
            "native",
            "--run-dir",
            str(tmp_path / "run"),
        ],
        tmp_path,
    )
    assert run.code == 2, run.stderr[-2000:]
    r = run.result
    assert r["verdict"] == "error" and r["vm_exit"]["reason"] == "guest-exit"
    assert any("PID 1 crashed" in x and "killed by SIGSEGV" in x for x in r["reasons"]), r[
        "reasons"
    ]
    panic = r["evidence"]["panic"]
    assert any("Fatal Python error: Segmentation fault" in ln for ln in panic), panic
    assert any("_crash_on_purpose" in ln for ln in panic), panic
    console = (Path(r["run_dir"]) / "console.log").read_text(errors="replace")
    assert "PANIC: init process (pid" in console and "Kernel panic" not in console
    assert leftovers(r["run_id"]) == []


def test_a_stall_beyond_the_limit_fails_the_test(kernel, tmp_path: Path) -> None:  # noqa: ANN001
    # Under TCG a worker's checkpoints are never 1 ms apart everywhere: the verdict must fail.
    run = run_cli(
        [
            "run",
            "--engine",
            "qemu",
            "--duration",
            "2",
            "--max-gap-ms",
            "1",
            "--run-dir",
            str(tmp_path / "run"),
        ],
        tmp_path,
    )
    assert run.code == 1, run.stderr[-2000:]
    r = run.result
    assert r["verdict"] == "failed" and r["vm_exit"]["reason"] == "guest-exit"
    # The host judged (the guest only reported): "stuck N ms on cpuK at +T s" per worker.
    assert any("gap" in x for x in r["reasons"]) and r["guest"]["exit_code"] == 0
    gap = next(c for c in r["workers_verdict"]["verdicts"] if c["name"] == "max_gap")
    assert not gap["passed"] and all(" ms on cpu" in e and " at +" in e for e in gap["evidence"])
    assert all(w["work_units"] > 0 for w in r["workers"])
