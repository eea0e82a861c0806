"""Tier 3: every setup failure, in the guest or on the host, is exit 2 with its one-line reason.

Each test breaks one thing for real (the image, the run spec, the guest's cgroups, the bulk
port, the monitor's vmlinux) through a hidden test hook or a crafted kernel directory, and
reads the result document as a user would.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

from orchestrator.monitor_watch import MAX_RESTARTS
from tests.framework.prereq import require
from tests.framework.schedlab_cli import CliRun, default_kernel_or_skip, leftovers, run_cli

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def kernel():  # noqa: ANN201
    require(shutil.which("qemu-system-x86_64") is not None, "qemu-system-x86_64 is not installed")
    return default_kernel_or_skip()


def _inconclusive(run: CliRun) -> dict:
    """Exit 2, verdict error, one reason line first, no traceback, nothing left behind."""
    assert run.code == 2, run.stderr[-2000:]
    assert "Traceback" not in run.stderr
    r = run.result
    assert r is not None and r["verdict"] == "error" and not r["passed"]
    assert r["reason"] == r["reasons"][0] and "\n" not in r["reason"]
    assert r["reason"] in run.stderr  # the summary shows it
    assert leftovers(r["run_id"]) == []
    return r


@pytest.mark.parametrize(
    ("hook", "needle"),
    [
        # The sentinel is the image's last entry: 200 bytes cut it and the trailer only.
        (["--truncate-image", "200"], "guest BAD_IMAGE: bad image: "),
        (
            ["--corrupt-spec"],
            "the guest refused the run's inputs: bad run document: hooks.corrupt_spec_hook: unknown",
        ),
        (["--crash-guest", "cgroup"], "guest SETUP_FAILED: cgroup setup failed: "),
        (["--hide-bulk-port"], "bulk port org.schedlab.bulk not found"),
    ],
    ids=["truncated-image", "bad-run-spec", "cgroup-setup", "missing-bulk-port"],
)
def test_guest_setup_failure_exits_2_with_its_reason(
    kernel, tmp_path: Path, hook: list[str], needle: str
) -> None:  # noqa: ANN001
    run = run_cli(
        ["run", "--engine", "qemu", "--duration", "2", "--run-dir", str(tmp_path / "run"), *hook],
        tmp_path,
    )
    r = _inconclusive(run)
    assert needle in r["reason"], r["reasons"]
    assert r["vm_exit"]["reason"] == "guest-exit"  # the guest reported and powered off on its own


def _kernel_dir_with_foreign_vmlinux(kernel, root: Path) -> Path:  # noqa: ANN001
    """The real kernel, beside a vmlinux whose banner differs: the image the monitor trusts
    does not match the kernel in guest memory, as with a vmlinux of another build."""
    root.mkdir()
    (root / "vmlinuz").symlink_to(kernel.vmlinuz)
    if kernel.modules_dir is not None:
        (root / "modules").symlink_to(kernel.modules_dir)
    config = kernel.root / "config"
    if config.is_file():
        shutil.copy(config, root / "config")
    data = kernel.vmlinux.read_bytes()
    assert b"Linux version " in data
    (root / "vmlinux").write_bytes(data.replace(b"Linux version ", b"Linux VERSION "))
    return root / "vmlinuz"


def test_a_vmlinux_that_does_not_match_is_inconclusive(kernel, tmp_path: Path) -> None:  # noqa: ANN001
    vmlinuz = _kernel_dir_with_foreign_vmlinux(kernel, tmp_path / "k")
    run = run_cli(
        [
            "run",
            "--engine",
            "qemu",
            "--duration",
            "3",
            "--kernel",
            str(vmlinuz),
            "--run-dir",
            str(tmp_path / "run"),
        ],
        tmp_path,
    )
    r = _inconclusive(run)
    assert r["reason"].startswith("monitor monitor: no valid sample; "), r["reasons"]
    assert "does the vmlinux match the running kernel?" in r["reason"]
    assert r["guest"]["exit_code"] == 0 and r["workers"]  # the guest itself ran the test
    assert r["monitor"]["samples"] == [] and r["monitor"]["processes"]["monitor"]["errors"] > 0


def test_a_crash_looping_monitor_is_stopped_and_reported(kernel, tmp_path: Path) -> None:  # noqa: ANN001
    vmlinuz = _kernel_dir_with_foreign_vmlinux(kernel, tmp_path / "k")
    (vmlinuz.parent / "vmlinux").write_bytes(b"not an ELF at all\n")  # the monitor dies loading it
    run = run_cli(
        [
            "run",
            "--engine",
            "qemu",
            "--duration",
            "15",
            "--kernel",
            str(vmlinuz),
            "--run-dir",
            str(tmp_path / "run"),
        ],
        tmp_path,
    )
    r = _inconclusive(run)
    # supervisord restarts it faster than the orchestrator looks: at least MAX_RESTARTS.
    m = re.match(
        r"monitor monitor: no valid sample; it was started (\d+) times, then given up "
        r"\(last log line: .*ImageError",
        r["reason"],
    )
    assert m and int(m.group(1)) > MAX_RESTARTS, r["reasons"]
    restarts = int(m.group(1)) - 1
    assert f"monitor monitor restarted {restarts} time(s), then gave up" in r["notes"]
    assert (
        r["restarts"]["monitor"] == restarts
        and r["monitor"]["processes"]["monitor"]["gave_up"] is True
    )
    assert r["guest"]["exit_code"] == 0  # the test itself ran; only the monitor could not judge
