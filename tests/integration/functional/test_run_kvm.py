"""Tier 4: ``schedlab run --engine kvm``: our own VMM boots the default kernel and the whole
system passes the same checks, with the same JSON, as on the QEMU engine.

Needs hardware-semantics /dev/kvm: elsewhere tests/conftest.py runs it inside the testbed.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.framework.run_checks import assert_complete_run
from tests.framework.schedlab_cli import default_kernel_or_skip, run_cli

pytestmark = [pytest.mark.slow, pytest.mark.in_testbed]


def test_kvm_engine_passes_the_skeleton_test(tmp_path: Path) -> None:
    default_kernel_or_skip()
    run = run_cli(
        ["run", "--engine", "kvm", "--duration", "4", "--run-dir", str(tmp_path / "run")],
        tmp_path,
        timeout=1200,
    )
    assert run.code == 0, run.stderr[-3000:]
    assert "engine kvm" in run.stderr and "hardware" in run.stderr  # the choice and its reason
    run_dir = assert_complete_run(run.result, cpus=2, engine="kvm")
    assert run.result["vm_exit"]["reason"] == "guest-exit"
    assert (run_dir / "console.log").stat().st_size > 0  # quiet, yet warnings/panics have a path
