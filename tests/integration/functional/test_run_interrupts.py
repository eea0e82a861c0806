"""Tier 3: Ctrl-C and timeouts stop everything, keep what was collected, and leave nothing."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.framework.schedlab_cli import ROOT, default_kernel_or_skip, leftovers, run_cli

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def kernel():  # noqa: ANN201
    return default_kernel_or_skip()


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_signal_mid_run(kernel, tmp_path: Path, sig: int) -> None:  # noqa: ANN001
    run_dir = tmp_path / "run"
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "orchestrator.cli",
            "run",
            "--engine",
            "qemu",
            "--duration",
            "30",
            "--run-dir",
            str(run_dir),
            "--json",
            str(tmp_path / "r.json"),
        ],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 180
        msgs = run_dir / "messages.jsonl"
        while time.monotonic() < deadline and not (
            msgs.exists() and b"SYS_RDY" in msgs.read_bytes()
        ):
            time.sleep(0.2)
        assert msgs.exists(), "the guest never became ready"
        time.sleep(1.0)
        proc.send_signal(sig)
        _out, err = proc.communicate(timeout=90)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 130, err[-2000:]
    assert "Traceback" not in err
    result = json.loads((tmp_path / "r.json").read_text())
    assert result["verdict"] == "error" and any("interrupted" in r for r in result["reasons"])
    assert b"Linux version" in (run_dir / "console.log").read_bytes()  # what was collected stays
    assert leftovers(result["run_id"]) == []
    assert not [
        p for p in os.listdir("/tmp") if p.startswith("schedlab-run-") and result["run_id"] in p
    ]


def test_vm_timeout_keeps_partial_worker_reports(kernel, tmp_path: Path) -> None:  # noqa: ANN001
    # The timeout fires mid-workload: the guest is asked to stop, its workers report what
    # they did, and the run is an error (the harness could not complete the test).
    run = run_cli(
        [
            "run",
            "--engine",
            "qemu",
            "--duration",
            "300",
            "--timeout",
            "60",
            "--run-dir",
            str(tmp_path / "run"),
        ],
        tmp_path,
    )
    assert run.code == 2, run.stderr[-2000:]
    r = run.result
    assert r is not None and r["verdict"] == "error" and r["timed_out_s"] == 60
    assert r["reason"] == "timed out after 60 s; partial reports kept", r["reasons"]
    assert r["vm_exit"]["reason"] == "guest-exit"  # a graceful stop, not the hard timeout
    assert r["guest"]["result"]["stopped"] is True and r["guest"]["exit_code"] == 5  # SHUTDOWN
    assert len(r["workers"]) == 4 and all(
        w["work_units"] > 0 and w["cpu_time_ns"] > 0 for w in r["workers"]
    )
    assert r["timings"]["total_ms"] < (60 + 15) * 1000  # before the hard timeout
    assert leftovers(r["run_id"]) == []


def test_vmm_killed_mid_run_is_an_error_and_leaves_nothing(kernel, tmp_path: Path) -> None:  # noqa: ANN001
    run = run_cli(
        [
            "run",
            "--engine",
            "qemu",
            "--duration",
            "10",
            "--inject",
            "kill:vmm@1",
            "--run-dir",
            str(tmp_path / "run"),
        ],
        tmp_path,
    )
    assert run.code == 2, run.stderr[-2000:]
    r = run.result
    assert r["verdict"] == "error" and any("vmm_proc failed" in x for x in r["reasons"])
    assert b"Linux version" in (Path(r["run_dir"]) / "console.log").read_bytes()  # kept
    assert leftovers(r["run_id"]) == []
