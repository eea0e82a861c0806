"""Tier 3: attach to a live run: status, a dump request, an extra monitor, a second collector
over TCP (as from another host) whose logs equal the supervised collector's."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.framework.schedlab_cli import ROOT, default_kernel_or_skip, leftovers

pytestmark = pytest.mark.slow


def _cli(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "orchestrator.cli", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def test_attach_to_live_run(tmp_path: Path) -> None:
    default_kernel_or_skip()
    run_dir = tmp_path / "run"
    main = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "orchestrator.cli",
            "run",
            "--engine",
            "qemu",
            "--duration",
            "12",
            "--listen",
            "127.0.0.1",
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
    second = None
    try:
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline and not (run_dir / "endpoints.json").exists():
            time.sleep(0.1)
        endpoints = json.loads((run_dir / "endpoints.json").read_text())
        assert endpoints["vmm_ctl"].startswith("tcp://127.0.0.1:")
        # A second collector from the start of the run, over TCP.
        second = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "orchestrator.cli",
                "attach",
                str(run_dir),
                "collect",
                "--run-dir",
                str(tmp_path / "remote"),
            ],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        msgs = run_dir / "messages.jsonl"
        while time.monotonic() < deadline and not (
            msgs.exists() and b"SYS_RDY" in msgs.read_bytes()
        ):
            time.sleep(0.2)
        status = json.loads(_cli("attach", str(run_dir), "status").stdout)
        assert status["vmm"]["state"] == "running" and status["collector"]["sys_rdy"] > 0
        assert _cli("attach", str(run_dir), "dump").returncode == 0
        assert _cli("attach", str(run_dir), "procdump").returncode == 0
        mon = _cli("attach", str(run_dir), "monitor", "--name", "extra", "--samples", "5")
        assert mon.returncode == 0, mon.stderr[-2000:]
        _out, err = main.communicate(timeout=300)
        assert main.returncode == 0, err[-3000:]
        s_out, s_err = second.communicate(timeout=60)
        assert second.returncode == 0, s_err[-2000:]
    finally:
        for p in (main, second):
            if p is not None and p.poll() is None:
                p.kill()
                p.wait()
    extra = (run_dir / "monitor-extra.jsonl").read_text().splitlines()
    assert len(extra) == 5 and all(json.loads(x)["monitor"] == "extra" for x in extra)
    msgs = [json.loads(x) for x in (run_dir / "messages.jsonl").read_text().splitlines()]
    sources = {m["payload"]["source"] for m in msgs if m["type"] == "DUMP"}
    assert {"sched_ext_dump", "/proc/schedstat"} <= sources  # SysRq-D and the /proc snapshot
    assert (run_dir / "sched_ext_dump.log").read_text().startswith("=== sched_ext_dump (sysrq) ===")
    assert "=== /proc/schedstat ===" in (run_dir / "dumps.log").read_text()
    for name in ("console.log", "bulk.raw", "messages.jsonl"):
        if name == "messages.jsonl":  # host_time differs per collector; compare the rest
            a = [
                {k: v for k, v in json.loads(x).items() if k != "host_time"}
                for x in (run_dir / name).read_text().splitlines()
            ]
            b = [
                {k: v for k, v in json.loads(x).items() if k != "host_time"}
                for x in (tmp_path / "remote" / name).read_text().splitlines()
            ]
            assert a == b
        else:
            assert (run_dir / name).read_bytes() == (tmp_path / "remote" / name).read_bytes()
    result = json.loads((tmp_path / "r.json").read_text())
    assert result["passed"] and result["monitor"]["instances"]["extra"] == 5
    assert not (run_dir / "endpoints.json").exists()
    assert leftovers(result["run_id"]) == []
