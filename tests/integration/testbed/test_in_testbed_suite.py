"""Runs every ``in_testbed`` test inside the KVM-in-TCG testbed (one L1 boot for all).

On this project's machines /dev/kvm emulates kernel code, so tests/conftest.py deselects
those tests from the host run; here they run where /dev/kvm has hardware semantics, and
none may fail or skip. A crash of the testbed's own L1 kernel (infrastructure, not the code
under test) is retried once and says so.
"""

from __future__ import annotations

import io
import re
import shutil
import sys
from pathlib import Path

import pytest

from tests.framework.prereq import require

pytestmark = [pytest.mark.slow, pytest.mark.testbed]

REPO = Path(__file__).resolve().parents[3]
_MARKED = re.compile(r"mark\.in_testbed\b")


def _marked_files() -> list[str]:
    """The test files that carry the marker: L1's CPU (qemu64) lacks instructions that some
    wheels need (numpy's x86-64-v2 baseline), so collecting the whole tree there could die
    with SIGILL importing a test that never runs there."""
    here = Path(__file__).resolve()
    return sorted(
        str(p.relative_to(REPO))
        for p in (REPO / "tests").rglob("test_*.py")
        if p.resolve() != here and _MARKED.search(p.read_text(errors="replace"))
    )


def test_in_testbed_tests_pass_inside_the_testbed(monkeypatch: pytest.MonkeyPatch) -> None:
    require(shutil.which("qemu-system-x86_64") is not None, "qemu-system-x86_64 is not installed")
    from orchestrator.testbed.l1kernel import L1KernelError, ensure_l1_kernel
    from orchestrator.testbed.run import TestbedError, run_in_testbed

    try:
        ensure_l1_kernel()
    except L1KernelError as exc:
        require(False, f"L1 kernel unavailable: {exc}")
    monkeypatch.chdir(REPO)  # L1 hides the host's /tmp
    monkeypatch.setenv("SCHEDLAB_IN_TESTBED", "1")
    cmd = [
        sys.executable,
        "-m",
        "pytest",
        "-q",
        "-p",
        "no:cacheprovider",
        "-rs",
        "-m",
        "in_testbed",
        *_marked_files(),
    ]
    for attempt in (1, 2):
        out = io.BytesIO()
        try:
            r = run_in_testbed(cmd, timeout=2400, stdout=out, stderr=out)
            break
        except TestbedError as exc:
            if attempt == 2:
                raise
            print(f"testbed infrastructure failure, retrying once: {exc}")
    text = out.getvalue().decode(errors="replace")
    print(text[-3000:])
    assert r.exit_code == 0, text[-6000:]
    passed = re.search(r"(\d+) passed", text)
    assert passed and int(passed.group(1)) >= 3, text[-3000:]
    assert "skipped" not in text and "deselected" in text, text[-3000:]
