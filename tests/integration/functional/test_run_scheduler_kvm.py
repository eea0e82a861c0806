"""Tier 4: scx_simple on our own KVM VMM: sent to the guest, attached, stopped cleanly.

Needs hardware-semantics /dev/kvm: elsewhere tests/conftest.py runs it inside the testbed.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.framework.run_checks import assert_complete_run
from tests.framework.sched_runs import DURATION, built_examples, sched_section
from tests.framework.schedlab_cli import run_cli

pytestmark = [pytest.mark.slow, pytest.mark.in_testbed]


def test_scx_simple_on_the_kvm_engine(tmp_path: Path) -> None:
    built_examples()
    run = run_cli(["run", "--engine", "kvm", "--scheduler", "scx_simple", "--duration", DURATION,
                   "--run-dir", str(tmp_path / "run")], tmp_path, timeout=1200)  # fmt: skip
    assert run.code == 0, (run.result or {}).get("reasons") or run.stderr[-3000:]
    assert_complete_run(run.result, cpus=2, engine="kvm")
    s = sched_section(run)
    assert s["attached"] and s["ops"] == "simple" and s["stop"]["status"] == "clean"
