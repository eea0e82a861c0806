"""Tier 4: ``schedlab shell --exec`` on our own KVM VMM: the third virtio-console port (the
shell's) works there as on QEMU, stdin in, stdout and stderr apart, the command's status out.

Needs hardware-semantics /dev/kvm: elsewhere tests/conftest.py runs it inside the testbed.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.framework.schedlab_cli import ROOT, default_kernel_or_skip, leftovers

pytestmark = [pytest.mark.slow, pytest.mark.in_testbed]


def test_exec_on_the_kvm_engine_keeps_streams_and_status(tmp_path: Path) -> None:
    default_kernel_or_skip()
    run_dir = tmp_path / "run"
    proc = subprocess.run(
        [sys.executable, "-m", "orchestrator.cli", "shell", "--engine", "kvm",
         "--run-dir", str(run_dir), "--exec", "cat; echo hi; echo to-stderr >&2; exit 3"],
        cwd=ROOT, input=b"piped-in\n", capture_output=True, timeout=1200,
    )  # fmt: skip
    err = proc.stderr.decode(errors="replace")
    assert proc.returncode == 3, err[-3000:]
    assert proc.stdout == b"piped-in\nhi\n"
    assert "to-stderr" in err and "(kvm" in err and "Traceback" not in err
    result = json.loads((run_dir / "result.json").read_text())
    assert result["engine"] == "kvm" and result["verdict"] == "passed"
    assert (run_dir / "shell.raw").stat().st_size > 0
    assert leftovers(result["run_id"]) == []
