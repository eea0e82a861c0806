"""The orchestrator asks vmm_proc's probe in a child process and reads its one JSON line."""

import sys

import pytest

from orchestrator.engine_choice import choose_engine, run_probe
from schedlab_shared.kvm_probe import KINDS, ProbeResult


def test_probe_result_round_trips_through_its_json_line():
    r = ProbeResult("emulated", 1234.5, "slow")
    assert ProbeResult.from_json(r.to_json()) == r
    assert (
        ProbeResult.from_json(
            '{"kind": "unavailable", "ns_per_iteration": null, "reason": "x"}'
        ).ns_per_iteration
        is None
    )


@pytest.mark.parametrize(
    "bad",
    [
        "[]",
        '{"kind": "fast", "reason": "x"}',
        '{"kind": "hardware", "ns_per_iteration": "1", "reason": "x"}',
        '{"kind": "hardware", "ns_per_iteration": true, "reason": "x"}',
        '{"kind": "hardware"}',
        "not json",
    ],
)
def test_anything_else_is_not_a_probe_result(bad):
    with pytest.raises(ValueError):
        ProbeResult.from_json(bad)


def test_the_real_probe_answers_from_a_child():
    r = run_probe()
    assert r.kind in KINDS and r.reason
    assert choose_engine("auto", lambda: r).engine == ("kvm" if r.kind == "hardware" else "qemu")


def test_a_probe_that_cannot_run_means_unavailable(monkeypatch):
    monkeypatch.setattr(sys, "executable", "/bin/false")
    r = run_probe()
    assert r.kind == "unavailable" and "exit 1" in r.reason
    monkeypatch.setattr(sys, "executable", "/nonexistent/python")
    assert "did not start" in run_probe().reason
