"""What a complete, passing ``schedlab run`` result looks like (shared by tiers 3 and 4)."""

from __future__ import annotations

import json
from pathlib import Path

from .schedlab_cli import leftovers

__all__ = ("assert_complete_run",)


def assert_complete_run(result: dict, cpus: int, engine: str = "qemu") -> Path:
    """The checks every passing run must meet, whatever the engine."""
    assert result["passed"], result["reasons"]
    assert result["engine"] == engine and result["kernel"]["version"]
    assert result["topology"]["cpus"] == cpus
    assert len(result["workers"]) == 4 and all(w["work_units"] > 0 for w in result["workers"])
    assert all(w["cpu_time_ns"] > 0 and w["max_gap_ms"] >= 0 for w in result["workers"])
    samples = result["monitor"]["samples"]
    assert len(samples) >= 2
    for cpu in range(cpus):
        clocks = [c["rq_clock"] for s in samples for c in s["cpus"] if c["cpu"] == cpu]
        assert clocks[-1] > clocks[0], f"rq_clock of CPU {cpu} did not advance"
    t = result["timings"]
    assert 0 < t["vm_start_to_sys_rdy_ms"] < t["total_ms"] and t["test_ms"] > 0
    run_dir = Path(result["run_dir"])
    if result["engine"] == "qemu":
        assert b"Linux version" in (run_dir / "console.log").read_bytes()
    assert b"Linux version" in (run_dir / "kernel.log").read_bytes()  # via /dev/kmsg, any engine
    msgs = [json.loads(line) for line in (run_dir / "messages.jsonl").read_text().splitlines()]
    assert [m["index"] for m in msgs] == list(range(len(msgs)))
    types = [m["type"] for m in msgs]
    assert types[0] == "SYS_RDY" and "RESULT" in types and types[-1] == "EXIT"
    assert leftovers(result["run_id"]) == []
    return run_dir
