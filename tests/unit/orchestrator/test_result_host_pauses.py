"""result.json's host_pauses: the monitor's samples and the frames' clock anchors, joined."""

from __future__ import annotations

from pathlib import Path

import pytest

from orchestrator.result import RunOutcome, host_pauses
from orchestrator.session import _anchors

MS = 1_000_000


def _sample(ms: float, run_ns: int) -> dict:
    cpus = [{"cpu": i, "nr_running": 1, "rq_clock": 1, "curr_pid": 100 + i} for i in range(2)]
    return {
        "elapsed_ms": ms,
        "cpus": cpus,
        "vcpus": {"at_s": ms / 1000, "run_ns": [run_ns] * 2, "shared": 2},
    }


def test_the_frames_anchor_the_pauses_on_the_guest_clock(tmp_path: Path) -> None:
    messages = [
        {"type": "SYS_RDY", "host_time": 1010.0, "payload": {"boot_ns": 6000 * MS}},
        {"type": "PHASE", "host_time": 1010.502, "payload": {"name": "setup", "t_ns": 6500 * MS}},
        {"type": "STDOUT", "host_time": 1011.0},
        {"type": "PHASE", "host_time": "bad", "payload": {"t_ns": 1}},
    ]
    anchors = _anchors(messages)
    assert anchors == [(1010.0, 6000 * MS), (1010.502, 6500 * MS)]
    # the VM started at host 1000: the guest's clock read 6 s at host 1010, so -4 s at the start
    o = RunOutcome("qemu", "", {}, {}, tmp_path, vm_started_at=1000.0, clock_anchors=anchors)
    run, samples = 0, []
    for i in range(30):  # the shared thread gets nothing from 1000 to 2200 ms
        samples.append(_sample(i * 100.0, run))
        run += 0 if 10 <= i < 22 else 90 * MS
    section = host_pauses(o, samples)
    assert section["clock_base_ns"] == pytest.approx(-4000 * MS, abs=1000)
    (p,) = section["pauses"]
    assert p["vcpus"] == [0, 1] and p["at_ms"] == 1000.0
    assert p["guest_from_ns"] == pytest.approx(-3000 * MS, abs=1000)
    # without the VM's start time the pause is reported, but not placed (it excuses nothing)
    o.vm_started_at = 0.0
    (p,) = host_pauses(o, samples)["pauses"]
    assert p["guest_from_ns"] is None
