"""``schedlab compare A B`` as a user runs it: exit 1 and a table on a regression, 0 for two
runs of one build, 2 with one line on bad input; run and sidecar directories alike."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from schedlab_results import sidecar
from tests.framework.recorded_results import load_fixture, slowed, write_run

ROOT = Path(__file__).resolve().parents[3]


def _cli(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "orchestrator.cli", "compare", *map(str, args)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.fixture
def runs(tmp_path: Path) -> dict[str, Path]:
    doc = load_fixture()
    for i in range(2):  # two repeats a side
        write_run(tmp_path / "base", dict(doc, run_id=f"base{i}"), f"r{i}")
        write_run(tmp_path / "same", dict(doc, run_id=f"same{i}"), f"r{i}")
        write_run(tmp_path / "slow", slowed(doc, 2.0, f"slow{i}"), f"r{i}")
    return {n: tmp_path / n for n in ("base", "same", "slow")}


def test_a_slowed_workload_exits_1_with_the_regressions(runs: dict[str, Path]) -> None:
    p = _cli(runs["base"], runs["slow"], "--json", runs["slow"] / "compare.json")
    assert p.returncode == 1, p.stderr
    assert "total_iterations" in p.stdout and "worse" in p.stdout
    assert "regressions" in p.stdout.splitlines()[-1]
    doc = json.loads((runs["slow"] / "compare.json").read_text())
    assert doc["regressions"] >= 3 and doc["changes"][0]["direction"] == "regression"


def test_two_runs_of_the_same_build_exit_0(runs: dict[str, Path]) -> None:
    p = _cli(runs["base"], runs["same"])
    assert p.returncode == 0, p.stdout + p.stderr
    assert p.stdout.strip().splitlines()[-1].startswith("no regression")


def test_sidecar_directories_compare_like_run_directories(
    runs: dict[str, Path], tmp_path: Path
) -> None:
    for name in ("base", "slow"):
        for run in sorted(runs[name].iterdir()):
            sidecar.write(run, "run/steady", dest=tmp_path / f"{name}-sidecars")
    p = _cli(tmp_path / "base-sidecars", tmp_path / "slow-sidecars", "--threshold", "10")
    assert p.returncode == 1 and "worst_gap_ms" in p.stdout


@pytest.mark.parametrize(
    "extra",
    [
        ["/nonexistent/runs"],
        ["--policy", "/nonexistent/policy.json"],
        ["--threshold", "-5"],
    ],
)
def test_bad_input_is_one_line_and_exit_2(runs: dict[str, Path], extra: list[str]) -> None:
    args: list[str | Path] = [runs["base"], runs["same"], *extra]
    if extra[0].startswith("/"):
        args = [runs["base"], *extra]
    p = _cli(*args)
    assert p.returncode == 2, p.stdout + p.stderr
    assert len(p.stderr.strip().splitlines()) == 1 and "Traceback" not in p.stderr


def test_no_shared_identity_is_bad_input(runs: dict[str, Path], tmp_path: Path) -> None:
    other = write_run(tmp_path / "other", dict(load_fixture(), run_id="o"), "r")
    sidecar.write(other, "a_different_test", dest=tmp_path / "other-side")
    p = _cli(runs["base"], tmp_path / "other-side")
    assert p.returncode == 2 and "share no test identity" in p.stderr
