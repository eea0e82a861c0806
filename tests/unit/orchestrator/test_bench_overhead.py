"""The overhead figure: medians of phases, and the median of each round's ratio."""

from __future__ import annotations

import pytest

from orchestrator.bench_overhead import _Engine, _summary


def test_ratio_is_fixed_cost_over_bare_lifetime() -> None:
    eng = _Engine("qemu", "tcg")
    for bare, total, test, wall in (
        (4000, 7000, 1000, 8000),
        (5000, 8000, 1500, 9000),
        (4000, 9000, 1000, 9500),
    ):
        eng.rows.append(
            {
                "bare_ms": bare,
                "total_ms": total,
                "test_ms": test,
                "wall_ms": wall,
                "teardown_ms": 100.0,
            }
        )
    s = _summary(eng)
    assert s["median_ms"]["bare_ms"] == 4000 and s["median_ms"]["total_ms"] == 8000
    assert s["ratios"]["(total - test) / bare"] == pytest.approx(1.5)  # of 1.5, 1.3, 2.0
    assert s["ratios"]["(CLI wall - test) / bare"] == pytest.approx(1.75)  # of 1.75, 1.5, 2.125
    assert s["runs"] == 3 and s["engine"] == "qemu"


def test_a_phase_missing_in_a_round_is_left_out() -> None:
    eng = _Engine(
        "qemu",
        "tcg",
        rows=[
            {"bare_ms": 1.0, "total_ms": 3.0, "test_ms": 1.0, "wall_ms": 4.0},
            {"bare_ms": 1.0, "total_ms": 3.0, "test_ms": 1.0, "wall_ms": 4.0, "exit_ms": 5.0},
        ],
    )
    assert "exit_ms" not in _summary(eng)["median_ms"]
