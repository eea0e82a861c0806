"""Tier 3: the guest's BPF programs and maps read from the host, live, on the real 7.2
kernel under QEMU TCG with scx_qmap on 1,1,4,1 and two monitors.

`schedlab attach RUN_DIR bpf progs` names qmap's callbacks with their verified instruction
counts; `bpf read` shows qmap's counters by name (on 7.2 they live in its arena, ``qa``)
increasing between two reads; `bpf write` of an ARRAY value (an unused slot of qmap's
``.bss`` ``cid_override_cpu_to_cid``) is visible in the next read; the result's
``monitor.bpf`` and both monitors' sample lines carry the listing.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from schedlab_shared.monitor_schema import check_bpf, check_sample
from tests.framework.prereq import require
from tests.framework.schedlab_cli import ROOT, default_kernel_or_skip, leftovers

pytestmark = pytest.mark.slow

COUNTERS = ("nr_enqueued", "nr_dispatched", "nr_dequeued", "nr_ddsp_from_enq")
SLOT = 200  # cid_override_cpu_to_cid[200]: no CPU of a 4-CPU guest reads it


def _cli(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "orchestrator.cli", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def _attach(run_dir: Path, *args: str) -> Any:  # noqa: ANN401
    res = _cli("attach", str(run_dir), "bpf", *args)
    assert res.returncode == 0, res.stderr
    return json.loads(res.stdout) if args[0] != "write" else res.stdout.strip()


def _qmap_loaded(run_dir: Path, deadline: float) -> dict:
    """The program list once qmap is attached (the run's monitor has seen its ops)."""
    samples = run_dir / "monitor-monitor.jsonl"
    while time.monotonic() < deadline:
        if samples.exists() and b'"ops":"qmap"' in samples.read_bytes():
            return _attach(run_dir, "progs", "--json")
        time.sleep(1.0)
    raise AssertionError("qmap never attached (no monitor sample with its ops)")


def test_qmap_programs_counters_and_a_host_write(tmp_path: Path) -> None:
    require(shutil.which("qemu-system-x86_64") is not None, "qemu-system-x86_64 is not installed")
    kernel = default_kernel_or_skip()
    require(kernel.enabled("SCHED_CLASS_EXT"), f"kernel {kernel.version} has no sched_ext")
    run_dir = tmp_path / "run"
    main = subprocess.Popen(
        [sys.executable, "-m", "orchestrator.cli", "run", "--engine", "qemu", "--duration", "25",
         "--topology", "1,1,4,1", "--scheduler", "scx_qmap", "--monitors", "2",
         "--run-dir", str(run_dir), "--json", str(tmp_path / "r.json")],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        progs = _qmap_loaded(run_dir, time.monotonic() + 240)
        ops = {p["name"]: p for p in progs["progs"] if p.get("type") == "STRUCT_OPS"}
        assert {"qmap_enqueue", "qmap_dispatch", "qmap_init"} <= ops.keys(), ops.keys()
        assert all(p["verified_insns"] > 0 and p["insns"] > 0 for p in ops.values()), ops
        maps = {m["name"]: m for m in _attach(run_dir, "maps", "--json")["maps"]}
        assert maps["scx_qmap.bss"]["type"] == "ARRAY" and maps["arena"]["type"] == "ARENA"

        first = _attach(run_dir, "read", "arena")["entries"][0]["value"]["qa"]
        time.sleep(4)
        second = _attach(run_dir, "read", "arena")["entries"][0]["value"]["qa"]
        assert all(second[k] >= first[k] for k in COUNTERS), (first, second)
        assert sum(second[k] for k in COUNTERS) > sum(first[k] for k in COUNTERS), second
        assert [f["idx"] for f in second["fifos"]] == [0, 1, 2, 3, 4]  # the layout is right

        before = _attach(run_dir, "read", "scx_qmap.bss", "0")["entries"][0]["value"]
        assert before["cid_override_cpu_to_cid"][SLOT] == 0
        line = _attach(run_dir, "write", "scx_qmap.bss", "0", f"cid_override_cpu_to_cid.{SLOT}=777")
        assert line == f"scx_qmap.bss[0].cid_override_cpu_to_cid.{SLOT}: 0 -> 777 (read back)"
        after = _attach(run_dir, "read", "scx_qmap.bss", "0")["entries"][0]["value"]
        assert after["cid_override_cpu_to_cid"][SLOT] == 777

        bad = _cli("attach", str(run_dir), "bpf", "read", "no_such_map")
        assert bad.returncode == 2 and "no BPF map 'no_such_map'" in bad.stderr
        assert bad.stderr.count("schedlab:") == 1
        _out, err = main.communicate(timeout=300)
    finally:
        if main.poll() is None:
            main.kill()
            main.wait()
    result = json.loads((tmp_path / "r.json").read_text())
    assert result["scheduler"]["attached"], result["scheduler"]
    assert main.returncode == 0, (result["reasons"], err[-2000:])
    listing = check_bpf(result["monitor"]["bpf"])
    assert {"qmap_enqueue", "qmap_dispatch"} <= {p.get("name") for p in listing["progs"]}
    arena = next(m for m in listing["maps"] if m.get("name") == "arena")
    assert arena["values"]["qa"]["nr_enqueued"] >= first["nr_enqueued"]
    assert set(result["monitor"]["instances"]) == {"monitor", "monitor1"}, result["monitor"]
    for name in result["monitor"]["instances"]:
        lines = [
            check_sample(json.loads(x))
            for x in (run_dir / f"monitor-{name}.jsonl").read_text().splitlines()
        ]
        listed = [s["bpf"] for s in lines if "bpf" in s]
        assert len(listed) >= 2 and all("error" not in b for b in listed[1:]), name
    assert leftovers(result["run_id"]) == []
