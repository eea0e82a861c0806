"""schedlab bench workloads: the guest's SYS_RDY-to-first-worker figure; the loops' JSON."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner

from orchestrator.bench_workloads import first_worker_ms, workloads_cmd
from tests.framework.native import native_on_path


def test_first_worker_is_measured_on_the_guest_clock(tmp_path: Path) -> None:
    msgs = [{"type": "SYS_RDY", "payload": {"boot_ns": 5_000_000_000, "main_ns": 4_000_000_000}}]
    (tmp_path / "messages.jsonl").write_text("".join(json.dumps(m) + "\n" for m in msgs))
    steps = [{"workers": [{"t0_ns": 5_300_000_000, "start_ns": 5_290_000_000},
                          {"start_ns": 5_250_000_000}]}]  # fmt: skip
    result = {"run_dir": str(tmp_path), "guest": {"result": {"steps": steps}}}
    assert first_worker_ms(result) == {
        "sys_rdy_to_first_worker_ms": 250.0, "init_main_to_sys_rdy_ms": 1000.0,
    }  # fmt: skip
    assert first_worker_ms({"run_dir": str(tmp_path), "guest": {"result": None}}) is None


def test_the_loops_print_native_and_python_figures() -> None:
    native_on_path()
    out = CliRunner().invoke(workloads_cmd, ["--runs", "0", "--seconds", "0.2", "--json"])
    assert out.exit_code == 0, out.output
    loops = json.loads(out.output)["loops"]
    for what in ("pipe_wake", "timer_wake", "checkpoint"):
        assert loops[what]["native"]["n"] > 0 and loops[what]["python"]["n"] > 0
    assert loops["pipe_wake"]["native"]["p50_ns"] <= loops["pipe_wake"]["native"]["p99_ns"]
