"""Tier 3: each of the host's worker verdicts catches its failure on a real guest under TCG.

On EEVDF (a correct scheduler) the probes of :mod:`guest.probes` must fail their check, with
the evidence naming the worker: a nice-10 worker beside a nice-0 one in one cgroup (fairness),
a SCHED_IDLE worker pinned beside spinners (starvation), a worker that leaves its cgroup and
runs outside its cpuset (isolation). An expected error passes only when the named check fails.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.framework.probe_runs import probe_image, probe_run

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def image():  # noqa: ANN201
    return probe_image()


def _check(result: dict[str, Any], name: str) -> dict[str, Any]:
    return next(c for c in result["workers_verdict"]["verdicts"] if c["name"] == name)


def test_a_nice_10_worker_beside_a_nice_0_one_is_unfair(image, tmp_path: Path) -> None:  # noqa: ANN001
    result, code = probe_run(image, tmp_path, "verdict-unfair")
    assert code == 1 and result["verdict"] == "failed", result["reasons"]
    fair = _check(result, "fairness")
    assert not fair["passed"]
    (line,) = [e for e in fair["evidence"] if e.startswith("cg_0 step 0")]
    shares = [float(x.split()[-1].rstrip("%")) for x in line.rsplit(": ", 1)[1].split(", ")]
    assert max(shares) > 75 and min(shares) < 40, line  # nice 10 hardly ran; nice 0 ran
    assert _check(result, "starvation")["passed"]  # unfair, not starved: units on both
    assert result["reasons"][0].startswith("workers: fairness")


def test_an_idle_worker_pinned_beside_spinners_starves(image, tmp_path: Path) -> None:  # noqa: ANN001
    result, code = probe_run(image, tmp_path, "verdict-starve")
    assert code == 1 and result["verdict"] == "failed", result["reasons"]
    starved = _check(result, "starvation")
    assert not starved["passed"]
    assert starved["evidence"] and all("0 work units" in e for e in starved["evidence"])
    assert any(e.startswith("cg_0/") for e in starved["evidence"])


def test_a_worker_outside_its_cpuset_is_an_isolation_escape(image, tmp_path: Path) -> None:  # noqa: ANN001
    result, code = probe_run(image, tmp_path, "verdict-escape", other=(("isolation", True),))
    assert code == 1 and result["verdict"] == "failed", result["reasons"]
    iso = _check(result, "isolation")
    assert not iso["passed"] and iso["detail"].startswith("1 escape"), iso
    (line,) = iso["evidence"]
    assert line.startswith("cg_0/pid ") and "ran on cpu 1 outside its cpuset 0" in line, line
    assert result["reasons"][0].startswith("workers: isolation")
    assert _check(result, "starvation")["passed"]  # it ran, just not where it may


def test_an_expected_error_passes_only_when_it_happens(image, tmp_path: Path) -> None:  # noqa: ANN001
    result, code = probe_run(image, tmp_path, "verdict-unfair", expect_error="fairness")
    assert code == 0 and result["verdict"] == "passed", result["reasons"]
    assert result["workers_verdict"]["reason"].startswith("expected failure happened: fairness")
