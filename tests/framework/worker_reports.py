"""Synthetic worker reports (guest.workreport.REPORT) for verdict and result tests."""

from __future__ import annotations

__all__ = ("S", "T0", "report", "seg")

S = 1_000_000_000
T0 = 1000 * S  # the guest's CLOCK_MONOTONIC at the start


def seg(cpu_share: float = 0.5, wall_s: float = 2.0, start: int = T0, step: int = 0, **kw):  # noqa: ANN003, ANN201
    """A segment whose worker ran ``cpu_share`` of the time, evenly (a 10-point timeline)."""
    wall = int(wall_s * S)
    cpu = int(wall * cpu_share)
    tl = [[int(wall * i / 10) // 1000, int(cpu * i / 10) // 1000, 100 * i] for i in range(11)]
    out = {
        "step": step,
        "start_ns": start,
        "end_ns": start + wall,
        "wall_time_ns": wall,
        "cpu_time_ns": cpu,
        "off_cpu_ns": wall - cpu,
        "work_units": 1000,
        "iterations": 1000,
        "migrations": 2,
        "cpus": [0, 1],
        "max_gap_ns": 5_000_000,
        "max_gap_cpu": 0,
        "max_gap_at_ns": start,
        "timeline": tl,
    }
    out.update(kw)
    return out


def report(cg: str = "cg0", pid: int = 1, segs=None, kind: str = "spin", **kw):  # noqa: ANN001, ANN003, ANN201
    segs = segs or [seg()]
    out = {
        "cgroup": cg,
        "pid": pid,
        "kind": kind,
        "index": 0,
        "work_units": sum(s["work_units"] for s in segs),
        "cpu_time_ns": sum(s["cpu_time_ns"] for s in segs),
        "max_gap_ms": max(s["max_gap_ns"] for s in segs) / 1e6,
        "error": "",
        "segments": segs,
    }
    out.update(kw)
    return out
