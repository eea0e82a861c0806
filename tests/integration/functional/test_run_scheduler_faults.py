"""Tier 3: a scheduler that fails, each way reported as what it is.

- scx_qmap ``-t`` (stall injection): failed, the watchdog's stall naming the task first in the
  reasons, the kernel's dump captured, the VM stopped early (not at the scenario's end);
- scx_qmap ``-e`` (scx_bpf_error): failed, "test triggering error" first in the reasons;
- a scheduler that exits at once (scx_simple ``-h`` prints its usage and exits), and one the
  kernel refuses to load (scx_qmap's bad cid override): errors that start with its output;
- one that ignores SIGINT: killed at the end, and the result says it had to be.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.framework.sched_runs import DURATION, built_examples, sched_run, sched_section

pytestmark = pytest.mark.slow

LONG = "30"  # a scenario the early stop must cut short


@pytest.fixture(scope="module")
def built():  # noqa: ANN201
    return built_examples()


def _failed_early(run, tmp_path: Path) -> dict:  # noqa: ANN001
    assert run.code == 1, (run.result or {}).get("reasons") or run.stderr[-3000:]
    r = run.result
    assert r["verdict"] == "failed" and r["vm_exit"]["reason"] == "sched-exit"
    s = sched_section(run)
    assert s["attached"] and s["stopped_early"] and s["exit"] is not None
    assert 0 < s["exit_to_stop_ms"] < 3000, s["exit_to_stop_ms"]
    assert r["timings"]["test_ms"] is None or r["timings"]["test_ms"] < float(LONG) * 1000
    return s


def test_stall_injection_fails_naming_the_task_and_stops_early(built, tmp_path: Path) -> None:
    run = sched_run(tmp_path, "--scheduler", "scx_qmap", "--sched-flag", "stall-user",
                    "--duration", LONG)  # fmt: skip
    s = _failed_early(run, tmp_path)
    e = s["exit"]
    assert (e["kind"], e["reason"]) == ("ERROR_STALL", "runnable task stall")
    assert e["task"] is not None and e["task"]["pid"] > 0 and e["stall_s"] >= 5.0
    reason = run.result["reasons"][0]
    assert reason.startswith(f"runnable task stall: {e['task']['comm']}[{e['task']['pid']}] "
                             "failed to run for ")  # fmt: skip
    run_dir = tmp_path / "run"
    dump = (run_dir / "sched_ext_dump.log").read_text(errors="replace") if s["dump"] else ""
    debug = (run_dir / s["debug_dump"]).read_text(errors="replace") if s["debug_dump"] else ""
    assert "qmap" in dump + debug, "neither the kernel's dump nor qmap's DEBUG DUMP was kept"
    assert "runnable task stall" in (run_dir / "sched.log").read_text(errors="replace")


def test_scx_bpf_error_leads_the_reasons(built, tmp_path: Path) -> None:
    run = sched_run(tmp_path, "--scheduler", "scx_qmap", "--sched-args", "-e 100",
                    "--duration", LONG)  # fmt: skip
    s = _failed_early(run, tmp_path)
    assert s["exit"]["kind"] == "ERROR_BPF"
    assert "test triggering error" in run.result["reasons"][0]
    assert run.result["reasons"][0].startswith("scx_bpf_error: ")
    assert s["dump"] == "sched_ext_dump.log"
    assert "triggered exit kind 1025" in (tmp_path / "run/sched_ext_dump.log").read_text()


def test_a_scheduler_that_exits_at_once(built, tmp_path: Path) -> None:
    run = sched_run(tmp_path, "--scheduler", "scx_simple", "--sched-args", "-h",
                    "--duration", DURATION)  # fmt: skip
    assert run.code == 2, run.stderr[-3000:]
    s = sched_section(run)
    assert not s["attached"] and s["attach_status"] == "died"
    reason = run.result["reasons"][0]
    assert reason.startswith("A simple sched_ext scheduler."), reason
    assert "exited before attaching to sched_ext (exited 0)" in reason
    assert run.result["workers"] == []  # no workload ran


@pytest.mark.parametrize("flag", ["cid-bad-dup", "cid-bad-range"])
def test_a_scheduler_the_kernel_refuses(built, tmp_path: Path, flag: str) -> None:
    run = sched_run(tmp_path, "--scheduler", "scx_qmap", "--sched-flag", flag,
                    "--duration", DURATION)  # fmt: skip
    assert run.code == 2, run.stderr[-3000:]
    s = sched_section(run)
    assert not s["attached"] and s["attach_status"] == "died", s
    reason = run.result["reasons"][0]
    assert reason.startswith("EXIT: runtime error (") and "before attaching" in reason, reason
    assert "cid" in reason
    assert run.result["verdict"] == "error"


IGNORES_SIGINT = """#!/usr/bin/python3 -S
# A scheduler that ignores SIGINT: it runs scx_simple (sent as included files) in a child
# that dies with it (PR_SET_PDEATHSIG), and waits.
import ctypes, os, signal
signal.signal(signal.SIGINT, signal.SIG_IGN)
d = "/run/schedlab/inputs/include"
pid = os.fork()
if pid == 0:
    ctypes.CDLL(None).prctl(1, signal.SIGTERM)
    os.execve(d + "/scx_simple", [d + "/scx_simple"], {"LD_LIBRARY_PATH": d})
while True:
    signal.pause()
"""


def test_a_scheduler_that_ignores_sigint_is_killed_and_reported(built, tmp_path: Path) -> None:
    script = tmp_path / "stubborn"
    script.write_text(IGNORES_SIGINT)
    script.chmod(0o755)
    simple = built.schedulers["scx_simple"].path
    libs = tmp_path / "libs"
    libs.mkdir()
    for f in _libs_of(simple):  # under their sonames: what the dynamic loader looks for
        shutil.copy(f.path, libs / f.name)
    includes = [a for p in (simple, *sorted(libs.iterdir())) for a in ("--include", str(p))]
    run = sched_run(tmp_path, "--scheduler", str(script), *includes, "--duration", DURATION)
    assert run.code == 1, (run.result or {}).get("reasons") or run.stderr[-3000:]
    s = sched_section(run)
    assert s["attached"] and s["ops"] == "simple"
    stop = s["stop"]
    assert stop["status"] == "killed" and stop["killed"]
    assert any(p.startswith("had to be killed") for p in stop["problems"]), stop
    assert run.result["reasons"][0].startswith("stubborn had to be killed: still running")


def _libs_of(binary: Path):  # noqa: ANN202
    from orchestrator.scheduler.resolve import resolve_scheduler

    skip = {"libc.so.6"}  # the image has the same one; the loader maps it already
    files = resolve_scheduler(str(binary), None).files
    return [f for f in files if f.kind == "lib" and f.name not in skip]
