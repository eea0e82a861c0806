"""Tier 3: every work type runs in the guest (the ``work-tour`` test scenario: one VM, one
short step per type) and reports sane figures; the host's verdict over them passes on EEVDF."""

from __future__ import annotations

from pathlib import Path

import pytest

from guest import workspec
from tests.framework.probe_runs import probe_image, probe_run

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def image():  # noqa: ANN201
    return probe_image()


# The types whose workers are woken (pipes, futexes, timers, forks): they report latencies.
WAKERS = {"io_sync", "bursty", "pipe_io", "futex_ping_pong", "cache_pipe", "fork_exit", "sequence"}


def test_every_work_type_runs_in_the_guest(image, tmp_path: Path) -> None:  # noqa: ANN001
    result, code = probe_run(image, tmp_path, "work-tour", duration_s=10.0)
    assert code == 0 and result["verdict"] == "passed", result["reasons"]
    steps = result["guest"]["result"]["steps"]
    assert len(steps) == len(workspec.TABLE)  # every type but payload, custom twice
    ran: dict[str, list[dict]] = {}
    for st in steps:
        assert st["dropped"] == 0 and all(o["ok"] for o in st["ops"])
        for w in st["workers"]:
            if w["phase"] == "hold":
                ran.setdefault(w["work"], []).append(w)
    assert set(ran) == set(workspec.TABLE) - {"payload"}
    for kind, segs in ran.items():
        for s in segs:
            assert s["work_units"] > 0 and s["iterations"] > 0, (kind, s)
            assert 0 < s["cpu_ns"] <= s["wall_ns"] * 1.05 and s["cpus"], (kind, s)
            assert s["timeline"][0] == [0, 0, 0] and s["max_gap_ns"] < 2e9, (kind, s)
        if kind in WAKERS:
            assert all(s["wake"]["n"] > 0 and s["wake"]["p50_ns"] <= s["wake"]["p99_ns"]
                       for s in segs), kind  # fmt: skip
    fan = ran["futex_fan_out"]
    assert sorted(s["extra"]["rank"] for s in fan) == list(range(len(fan)))
    assert all(s["wake"]["n"] > 0 for s in fan if s["extra"]["rank"])
    assert {s["extra"].get("exit_code") for s in ran["custom"]} == {0, None}
    wv = result["workers_verdict"]
    assert wv["passed"] and {c["name"] for c in wv["verdicts"]} >= {"complete", "ops", "starvation"}
