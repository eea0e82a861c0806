"""compare: the same scenario slowed is a regression, two runs of one build are not; the
two gates, repeats averaged, the join, --threshold and --policy."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from schedlab_results import sidecar
from schedlab_results.compare import compare, significant
from schedlab_results.metrics import METRICS
from schedlab_results.policy import Gate, PolicyError, gates
from tests.framework.recorded_results import slowed


def _side(doc: dict[str, Any], test: str = "t", **metrics: float) -> dict[str, Any]:
    s = sidecar.build(doc, test, project_commit="c", host="h")
    s["metrics"].update(metrics)
    return s


def test_an_artificially_slowed_workload_is_a_regression(eevdf_doc: dict[str, Any]) -> None:
    a = [_side(eevdf_doc)]
    b = [_side(slowed(eevdf_doc, 2.0, "slow"))]
    c = compare(a, b, gates())
    names = {ch.metric for ch in c.regressions}
    assert {"total_iterations", "worst_gap_ms", "worst_iterations_per_worker"} <= names
    it = next(ch for ch in c.changes if ch.metric == "total_iterations")
    assert it.b < it.a and it.regression  # fewer iterations: higher is better, so worse
    assert not [ch for ch in c.changes if not ch.regression]


def test_two_runs_of_the_same_build_pass(eevdf_doc: dict[str, Any]) -> None:
    other = copy.deepcopy(eevdf_doc)
    other["run_id"] = "again"
    for w in other["workers"]:  # run-to-run noise well inside the gates
        w["work_units"] = int(w["work_units"] * 1.03)
        w["max_gap_ms"] *= 1.2
    c = compare([_side(eevdf_doc)], [_side(other)], gates())
    assert c.joined == 1 and c.regressions == []


def test_both_gates_must_be_cleared() -> None:
    g = Gate(abs_gate=500, rel_gate=0.5)
    assert not significant(100, 550, g)  # +450: under the absolute gate
    assert not significant(2000, 2600, g)  # +600 but +30%: under the relative gate
    assert significant(1000, 1600, g)
    assert significant(0, 600, g)  # from zero: relatively infinite


def test_repeats_are_averaged_before_gating(eevdf_doc: dict[str, Any]) -> None:
    a = [_side(eevdf_doc, worst_gap_ms=100), _side(eevdf_doc, worst_gap_ms=100)]
    # one slow repeat of two: mean 400 (+300) is under the 500 ms absolute gate
    b = [_side(eevdf_doc, worst_gap_ms=100), _side(eevdf_doc, worst_gap_ms=700)]
    assert not [ch for ch in compare(a, b, gates()).changes if ch.metric == "worst_gap_ms"]
    b.append(_side(eevdf_doc, worst_gap_ms=2500))  # mean 1100: past both gates
    ch = [ch for ch in compare(a, b, gates()).changes if ch.metric == "worst_gap_ms"]
    assert len(ch) == 1 and ch[0].b == pytest.approx(1100) and ch[0].n_b == 3


def test_the_join_keeps_identities_apart_and_reports_the_unmatched(
    eevdf_doc: dict[str, Any],
) -> None:
    a = [_side(eevdf_doc, "x"), _side(eevdf_doc, "y")]
    b = [_side(eevdf_doc, "x", total_iterations=10), _side(eevdf_doc, "z")]
    c = compare(a, b, gates())
    assert c.joined == 1
    assert [k[0] for k in c.only_a] == ["y"] and [k[0] for k in c.only_b] == ["z"]
    assert [ch.key[0] for ch in c.regressions] == ["x"]


def test_a_test_that_starts_failing_is_a_regression(eevdf_doc: dict[str, Any]) -> None:
    bad = _side(eevdf_doc)
    bad["run"].update(passed=False, verdict="failed")
    c = compare([_side(eevdf_doc)], [bad], gates())
    assert [ch.metric for ch in c.regressions] == ["passed"]


def test_threshold_and_policy_override_the_gates(tmp_path: Path) -> None:
    assert gates()["worst_gap_ms"] == Gate(500, 0.5)
    assert all(g.rel_gate == 0.05 for g in gates(5).values())
    pol = tmp_path / "p.json"
    pol.write_text(json.dumps({"threshold_percent": 40, "metrics": {"worst_gap_ms": {"abs": 1}}}))
    g = gates(None, pol)
    assert g["worst_gap_ms"] == Gate(1, 0.4) and g["stall_count"] == Gate(1, 0.4)
    assert gates(10, pol)["total_fallback"].rel_gate == pytest.approx(0.1)  # the flag wins
    assert set(gates()) == set(METRICS)


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ("{", "policy"),
        ('{"metrics": {"worst_gapms": {"abs": 1}}}', "no such metric"),
        ('{"metrics": {"worst_gap_ms": {"abs": -1}}}', "want a number >= 0"),
        ('{"metrics": {"worst_gap_ms": {"absolute": 1}}}', "abs and/or rel"),
        ('{"gates": {}}', "want a map"),
    ],
)
def test_a_bad_policy_is_refused_with_one_line(tmp_path: Path, text: str, why: str) -> None:
    pol = tmp_path / "p.json"
    pol.write_text(text)
    with pytest.raises(PolicyError, match=why) as e:
        gates(None, pol)
    assert "\n" not in str(e.value)
