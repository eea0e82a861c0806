"""Tier 4: the micro-guest suite again, inside the testbed (L1 with hardware KVM semantics).

The host's /dev/kvm here is a software hypervisor; this proves the same exits, kick and
long-mode entry on kvm_amd with nested paging. Boots L1 (~10 s) plus the suite.
"""

import io
import re
import shutil
import sys
from pathlib import Path

import pytest

from tests.framework.prereq import require

pytestmark = [pytest.mark.slow, pytest.mark.testbed]

REPO = Path(__file__).resolve().parents[3]
SUITE = "tests/integration/functional/test_microguest_kvm.py"


def test_microguest_suite_passes_on_hardware_kvm_semantics(monkeypatch):
    require(shutil.which("qemu-system-x86_64") is not None, "qemu-system-x86_64 missing")
    from orchestrator.testbed.l1kernel import L1KernelError, ensure_l1_kernel
    from orchestrator.testbed.run import run_in_testbed

    try:
        ensure_l1_kernel()
    except L1KernelError as exc:
        require(False, f"L1 kernel unavailable: {exc}")
    monkeypatch.chdir(REPO)  # L1 hides the host's /tmp, where pytest runs from otherwise
    out = io.BytesIO()
    cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-rs", SUITE]
    r = run_in_testbed(cmd, timeout=900, stdout=out, stderr=out)
    text = out.getvalue().decode(errors="replace")
    assert r.exit_code == 0, text
    summary = re.search(r"(\d+) passed", text)
    assert summary and int(summary.group(1)) >= 8, text
    assert "skipped" not in text, text
