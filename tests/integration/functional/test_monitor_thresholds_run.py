"""Tier 3: the monitor's thresholds against real sched_ext runs under QEMU TCG.

* local DSQ depth: scx_qmap ``-F 1`` puts every enqueue on the task's CPU's local DSQ even
  when that CPU is busy, so 12 spinners on 2 CPUs queue 8-11 deep there; without it qmap
  dispatches one task at a time (depth 0-1). The same lowered limit (4: ktstr's 50 needs
  some 110 tasks, minutes of TCG start-up) fails the first run and passes the second.
* a vCPU the host did not run is not a stall: QEMU stopped (SIGSTOP) for 1.5 s in the
  middle of a qmap run freezes every rq_clock with tasks runnable, and the vCPU threads'
  run times stand still with them, so the stall check exempts those samples.

Imbalance is proven by scx_cpu0 in test_monitor_scx_run.py; the event-rate thresholds and
the default depth limit by synthetic series in tests/unit/verdicts.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from schedlab_shared.monitor_schema import check_sample
from tests.framework.prereq import require
from tests.framework.schedlab_cli import ROOT, default_kernel_or_skip, run_cli

pytestmark = pytest.mark.slow

DEPTH_LIMIT = 4
PAUSE_S = 1.5


@pytest.fixture(scope="module")
def kernel():  # noqa: ANN201
    require(shutil.which("qemu-system-x86_64") is not None, "qemu-system-x86_64 is not installed")
    k = default_kernel_or_skip()
    require(k.enabled("SCHED_CLASS_EXT"), f"kernel {k.version} has no sched_ext")
    return k


def _samples(run_dir: Path) -> list[dict]:
    return [
        check_sample(json.loads(x))
        for x in (run_dir / "monitor-monitor.jsonl").read_text().splitlines()
    ]


def _qmap_run(tmp_path: Path, *extra: str) -> tuple[dict, int, list[dict], str]:
    run = run_cli(
        [
            "run",
            "--engine",
            "qemu",
            "--duration",
            "6",
            "--topology",
            "1,1,2,1",
            "--workers",
            "6",
            "--scheduler",
            "scx_qmap",
            "--threshold",
            f"max_local_dsq_depth={DEPTH_LIMIT}",
            "--run-dir",
            str(tmp_path / "run"),
            *extra,
        ],
        tmp_path,
    )
    result = run.result
    assert result is not None, run.stderr[-3000:]
    assert result["scheduler"]["attached"], result["scheduler"]
    attached = [s for s in _samples(Path(result["run_dir"])) if "scx" in s]
    return result, run.code, attached, run.stderr  # (the summary is on stderr)


def test_qmap_queueing_on_busy_cpus_violates_the_local_dsq_depth(kernel, tmp_path: Path) -> None:  # noqa: ANN001
    result, code, attached, _out = _qmap_run(tmp_path, "--sched-args", "-F 1")
    viol = [v for v in result["monitor"]["violations"] if v["check"] == "local_dsq_depth"]
    assert viol, result["monitor"]["violations"]
    v = viol[0]
    assert v["cpu"] in (0, 1) and v["value"] > DEPTH_LIMIT and v["limit"] == DEPTH_LIMIT
    assert v["samples"] >= 5  # sustained_samples
    inside = [p for p in v["around"] if "value" in p]
    assert inside and all(p["local_dsq_nr"] > DEPTH_LIMIT for p in inside)
    assert result["verdict"] == "failed" and code == 1
    assert any("local_dsq_depth" in r for r in result["reasons"]), result["reasons"]
    assert max(c["local_dsq_nr"] for s in attached for c in s["cpus"]) > DEPTH_LIMIT


def test_qmap_dispatching_normally_stays_within_the_same_depth(kernel, tmp_path: Path) -> None:  # noqa: ANN001
    result, code, attached, out = _qmap_run(tmp_path)
    checks = result["monitor"]["checks"]
    assert checks["status"] == "passed" and checks["judged_samples"] > 10, checks
    assert result["monitor"]["violations"] == []
    assert max(c["local_dsq_nr"] for s in attached for c in s["cpus"]) <= DEPTH_LIMIT
    assert max(c["scx_nr_running"] for s in attached for c in s["cpus"]) > DEPTH_LIMIT
    assert code == 0, result["reasons"]
    # the summary's per-CPU table: sched_ext's depths and each CPU's runs over the run
    lines = out.splitlines()
    head = lines.index(next(x for x in lines if x.split()[:3] == ["cpu", "nr_running", "rq_clock"]))
    assert lines[head].split()[3:] == ["scx", "nr", "local", "dsq", "runs"], lines[head]
    runs = [int(lines[head + 1 + c].split()[-1].replace(",", "")) for c in (0, 1)]
    assert all(r > 0 for r in runs), lines[head : head + 3]
    n = len(result["monitor"]["samples"])
    assert f"{n} monitor samples ({result['monitor']['checks']['judged_samples']} judged)" in out


def _descendants(pid: int) -> list[int]:
    """Every process below ``pid`` (from /proc's parent links)."""
    parent: dict[int, int] = {}
    for p in os.listdir("/proc"):
        if p.isdigit():
            try:
                stat = Path(f"/proc/{p}/stat").read_text()
            except OSError:
                continue
            parent[int(p)] = int(stat.rsplit(")", 1)[1].split()[1])
    out, todo = [], [pid]
    while todo:
        kids = [c for c, pp in parent.items() if pp == todo[-1]]
        todo.pop()
        out += kids
        todo += kids
    return out


def _qemu_of(pid: int) -> int | None:
    for p in _descendants(pid):
        try:
            if Path(f"/proc/{p}/comm").read_text().startswith("qemu-system"):
                return p
        except OSError:
            continue
    return None


def _attached_span_s(run_dir: Path) -> float:
    path = run_dir / "monitor-monitor.jsonl"
    if not path.exists():
        return 0.0
    ms = []
    for line in path.read_text().splitlines():
        try:
            s = json.loads(line)
        except ValueError:
            continue  # the line being written
        if "scx" in s:
            ms.append(s["elapsed_ms"])
    return (ms[-1] - ms[0]) / 1000 if ms else 0.0


def test_a_vm_the_host_paused_is_not_a_stall(kernel, tmp_path: Path) -> None:  # noqa: ANN001
    run_dir = tmp_path / "run"
    argv = [sys.executable, "-m", "orchestrator.cli", "run", "--engine", "qemu"]
    argv += ["--duration", "10", "--topology", "1,1,2,1", "--scheduler", "scx_qmap"]
    argv += ["--run-dir", str(run_dir), "--json", str(tmp_path / "result.json")]
    cli = subprocess.Popen(
        argv,
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "COLUMNS": "200"},
    )
    qemu = None
    try:
        deadline = time.monotonic() + 240
        # past the 2 s warm-up with a second judged before the pause
        while _attached_span_s(run_dir) < 3.0 and cli.poll() is None:
            assert time.monotonic() < deadline, "the scheduler's samples never came"
            time.sleep(0.2)
        qemu = _qemu_of(cli.pid)
        assert qemu is not None, "no QEMU below the CLI"
        os.kill(qemu, signal.SIGSTOP)
        time.sleep(PAUSE_S)
    finally:
        if qemu is not None:
            os.kill(qemu, signal.SIGCONT)
    _out, err = cli.communicate(timeout=300)
    result = json.loads((tmp_path / "result.json").read_text())
    assert result["scheduler"]["attached"], err[-3000:]
    attached = [s for s in _samples(run_dir) if "scx" in s]
    # The pause is in the samples: every CPU's clock stood with tasks runnable for ~1.5 s
    # while the vCPU threads' run times stood too.
    frozen = []
    for a, b in zip(attached, attached[1:], strict=False):
        ca, cb = a["cpus"], b["cpus"]
        if all(x["rq_clock"] == y["rq_clock"] for x, y in zip(ca, cb, strict=True)) and any(
            y["nr_running"] > 0 for y in cb
        ):
            frozen.append(b)
    assert frozen and frozen[-1]["elapsed_ms"] - frozen[0]["elapsed_ms"] >= 1000 * (PAUSE_S - 0.5)
    runs = [[c["vcpu_run_ns"] for c in s["cpus"]] for s in frozen if "vcpus" in s]
    assert len(runs) >= 3, runs  # (the first may have been read as QEMU stopped)
    assert all(last - first < 1_000_000 for first, last in zip(runs[1], runs[-1], strict=True))
    checks = result["monitor"]["checks"]
    assert checks["status"] == "passed", (checks, result["monitor"]["violations"])
    assert not [v for v in result["monitor"]["violations"] if v["check"] == "stall"]
