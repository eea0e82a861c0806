"""The whole suite's two phases: when they apply, their order, their exit status."""

from __future__ import annotations

import sys

import pytest

from orchestrator import suite_phases
from orchestrator.suite_phases import TESTBED_TEST, _combine, phased


def test_only_the_whole_suite_runs_in_phases():
    assert phased([]) and phased(["-p", "no:cacheprovider"]) and phased(["-q", "-rs"])
    assert not phased(["tests/unit"])  # a path
    assert not phased(["-k", "engine"]) and not phased(["-m", "slow"]) and not phased(["-x"])
    assert not phased(["--deselect=tests/unit/x.py::t"]) and not phased(["-n", "2"])


@pytest.mark.parametrize(
    ("codes", "want"),
    [
        ([0, 0, 0], 0),
        ([0, 5, 0], 0),
        ([5, 5, 5], 5),
        ([0, 1, 0], 1),
        ([2, 1, 0], 2),
        ([0, 0, 1], 1),
    ],
)
def test_the_first_failing_phase_gives_the_status(codes, want):  # noqa: ANN001
    assert _combine(codes) == want


def test_the_testbed_runs_beside_the_quick_tiers_and_its_output_is_kept(monkeypatch, capfd):  # noqa: ANN001
    ran: list[list[str]] = []

    def fake(*args: str) -> list[str]:
        ran.append(list(args))
        # the testbed: slow, still running when the quick phase ends
        if TESTBED_TEST in args and "--ignore" not in args:
            code = "import time; time.sleep(0.5); print('TESTBED OUT'); raise SystemExit(1)"
        else:
            code = f"print('PHASE', {' '.join(args)!r})"
        return [sys.executable, "-c", code]

    monkeypatch.setattr(suite_phases, "_pytest", fake)
    assert suite_phases.main(["-q"]) == 1  # the testbed's failure, though both others passed
    assert ran == [
        ["-q", TESTBED_TEST],
        ["-q", "-m", "not slow"],
        ["-q", "-m", "slow", "--ignore", TESTBED_TEST],
    ]
    out = capfd.readouterr().out
    assert (
        out.index("PHASE -q -m not slow") < out.index("TESTBED OUT") < out.index("PHASE -q -m slow")
    )
