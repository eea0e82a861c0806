"""guest.workreport: the worker report schema, shared by the guest, the collector and verdicts."""

from __future__ import annotations

import copy

import pytest

from guest.schema import SchemaError
from guest.wire import FrameType, check_payload
from guest.workreport import MAX_SEGMENTS, check_report, off_cpu_share, segments

SEG = {
    "step": 0,
    "start_ns": 10,
    "end_ns": 1_000_010,
    "wall_time_ns": 1_000_000,
    "cpu_time_ns": 400_000,
    "off_cpu_ns": 600_000,
    "work_units": 5,
    "iterations": 5,
    "migrations": 1,
    "cpus": [0, 1],
    "max_gap_ns": 300_000,
    "max_gap_cpu": 1,
    "max_gap_at_ns": 20,
    "timeline": [[0, 0, 0], [1000, 400, 5]],
    "wake": {"n": 3, "p50_ns": 10, "p99_ns": 20, "max_ns": 30, "mean_ns": 15.0, "cv": 0.5},
    "run_delay_ns": 7,
    "timeslices": 2,
}
REPORT = {
    "cgroup": "cg0",
    "pid": 42,
    "kind": "spin",
    "index": 0,
    "work_units": 5,
    "cpu_time_ns": 400_000,
    "max_gap_ms": 0.3,
    "error": "",
    "native": True,
    "segments": [SEG],
}


def test_a_full_report_passes_and_travels_in_a_result_frame() -> None:
    check_report(REPORT)
    check_payload(FrameType.RESULT, {"passed": True, "reason": "", "workers": [REPORT]})
    assert segments(REPORT) == [SEG] and off_cpu_share(SEG) == 0.6


def test_an_old_style_report_without_segments_passes() -> None:
    old = {k: REPORT[k] for k in ("cgroup", "pid", "work_units", "cpu_time_ns", "max_gap_ms")}
    check_report(old)
    assert segments(old) == []


@pytest.mark.parametrize(
    ("mutate", "field"),
    [
        (lambda r: r.update(work_units=-1), "work_units"),
        (lambda r: r["segments"][0].update(cpus=[5000]), "segments[0].cpus[0]"),
        (lambda r: r["segments"][0].update(max_gap_cpu=-2), "segments[0].max_gap_cpu"),
        (lambda r: r["segments"][0]["wake"].update(n=0), "segments[0].wake.n"),
        (lambda r: r["segments"][0].update(timeline=[[1, 2]] * 40), "segments[0].timeline"),
        (lambda r: r["segments"][0].pop("wall_time_ns"), "segments[0].wall_time_ns"),
        (lambda r: r.update(segments=[SEG] * (MAX_SEGMENTS + 1)), "segments"),
        (lambda r: r.update(cgroup="x" * 300), "cgroup"),
        (lambda r: r["segments"][0].update(cpu_time_ns=1.5), "segments[0].cpu_time_ns"),
    ],
)
def test_a_bad_field_is_named(mutate, field: str) -> None:  # noqa: ANN001
    r = copy.deepcopy(REPORT)
    mutate(r)
    with pytest.raises(SchemaError) as e:
        check_report(r)
    assert e.value.field == field


def test_an_empty_segment_has_no_share() -> None:
    assert off_cpu_share({**SEG, "wall_time_ns": 0}) == 0.0
