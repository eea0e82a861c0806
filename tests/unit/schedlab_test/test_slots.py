"""The slot allocator with real processes contending for one directory of slot files."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from schedlab_test.slots import MEM_SLOT_MIB, Slots, SlotsError

_CHILD = """
import json, sys, time
from pathlib import Path
from schedlab_test.slots import Slots
root, cpus, vcpus, hold, out = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4]), sys.argv[5]
waits = []
s = Slots(cpus=cpus, mem_mib=2048, root=Path(root))
with s.take(vcpus, 256, notify=waits.append) as lease:
    t0 = time.time()
    time.sleep(hold)
    t1 = time.time()
Path(out).write_text(json.dumps({"t0": t0, "t1": t1, "cpu": lease.cpu, "waits": waits}))
"""


def _spawn(tmp: Path, name: str, cpus: int, vcpus: int, hold: float) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[3])}
    return subprocess.Popen(
        [
            sys.executable,
            "-c",
            _CHILD,
            str(tmp / "slots"),
            str(cpus),
            str(vcpus),
            str(hold),
            str(tmp / f"{name}.json"),
        ],
        env=env,
    )


def _overlap(a: dict, b: dict) -> bool:
    return a["t0"] < b["t1"] and b["t0"] < a["t1"]


def _peak(runs: list[dict]) -> int:
    """Most CPU slots held at one instant (releases sort before acquisitions at a tie)."""
    events = sorted(
        [(r["t0"], 1, len(r["cpu"])) for r in runs] + [(r["t1"], 0, -len(r["cpu"])) for r in runs]
    )
    held = peak = 0
    for _, _, d in events:
        held += d
        peak = max(peak, held)
    return peak


def test_vms_never_hold_more_cpu_slots_than_the_host_has(tmp_path: Path) -> None:
    # 4 slots; six VMs of 2 vCPUs: at most two at once, and some of them wait, saying so.
    procs = [_spawn(tmp_path, f"p{i}", 4, 2, 0.6) for i in range(6)]
    assert all(p.wait(timeout=60) == 0 for p in procs)
    runs = [json.loads((tmp_path / f"p{i}.json").read_text()) for i in range(6)]
    assert _peak(runs) <= 4
    for r in runs:  # a slot is never held twice at once
        assert all(not set(r["cpu"]) & set(o["cpu"]) for o in runs if o is not r and _overlap(r, o))
    waited = [r for r in runs if r["waits"]]
    assert len(waited) >= 2
    assert "waiting for 2 of 4 CPU slots" in waited[0]["waits"][0]
    # Two at once really happened (the budget is used, not serialised).
    assert any(_overlap(a, b) for a in runs for b in runs if a is not b)


def test_a_vm_larger_than_the_host_takes_every_slot(tmp_path: Path) -> None:
    procs = [_spawn(tmp_path, f"p{i}", 2, 16, 0.4) for i in range(3)]
    assert all(p.wait(timeout=60) == 0 for p in procs)
    runs = [json.loads((tmp_path / f"p{i}.json").read_text()) for i in range(3)]
    assert all(len(r["cpu"]) == 2 for r in runs)
    assert not any(_overlap(a, b) for a in runs for b in runs if a is not b)


def test_a_killed_holder_frees_its_slots(tmp_path: Path) -> None:
    holder = _spawn(tmp_path, "holder", 2, 2, 60)
    s = Slots(cpus=2, mem_mib=2048, root=tmp_path / "slots")
    deadline = time.monotonic() + 20
    while not list((tmp_path / "slots").glob("cpu-*.slot")) and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(0.5)
    with pytest.raises(SlotsError, match="no free slots"):
        s.acquire(1, 256, timeout_s=0.5)
    holder.send_signal(signal.SIGKILL)
    holder.wait()
    lease = s.acquire(2, 256, timeout_s=5)
    assert lease.cpu == [0, 1]
    lease.release()


def test_memory_is_budgeted_too(tmp_path: Path) -> None:
    s = Slots(cpus=8, mem_mib=4 * MEM_SLOT_MIB, root=tmp_path)
    a = s.acquire(1, 3 * MEM_SLOT_MIB)
    with pytest.raises(SlotsError, match="no free slots"):
        s.acquire(1, 2 * MEM_SLOT_MIB, timeout_s=0.3)
    a.release()
    s.acquire(1, 2 * MEM_SLOT_MIB, timeout_s=1).release()
    with pytest.raises(SlotsError, match="exceeds the host's VM memory budget"):
        s.acquire(1, 5 * MEM_SLOT_MIB)
