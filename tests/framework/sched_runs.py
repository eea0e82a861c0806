"""Shared by the tier-3 scheduler tests: a short ``schedlab run --scheduler`` and its checks."""

from __future__ import annotations

import shutil
from pathlib import Path

from orchestrator.result_schema import load_result
from tests.framework.prereq import require
from tests.framework.schedlab_cli import CliRun, default_kernel_or_skip, leftovers, run_cli

__all__ = ("DURATION", "built_examples", "sched_run", "sched_section")

DURATION = "2"  # seconds of workload: every check here is about the scheduler, not the load


def built_examples():  # noqa: ANN201 - BuildCache
    """The default kernel's example schedulers (built on first use; a missing toolchain skips)."""
    require(shutil.which("qemu-system-x86_64") is not None, "qemu-system-x86_64 is not installed")
    kernel = default_kernel_or_skip()
    from orchestrator.scheduler.cache import ensure_built
    from orchestrator.scheduler.errors import SchedulerError

    try:
        return ensure_built(kernel)
    except SchedulerError as exc:
        require(False, f"the example schedulers cannot be built here: {exc}")


def sched_run(tmp: Path, *args: str, timeout: float = 900) -> CliRun:
    """``schedlab run --engine qemu ARGS`` into ``tmp/run``; its result read back through the
    schema; nothing of it may be left running."""
    run = run_cli(["run", "--engine", "qemu", "--run-dir", str(tmp / "run"), *args], tmp,
                  timeout=timeout)  # fmt: skip
    if run.result is not None:
        run.result = load_result(tmp / "result.json")  # the schema holds
        assert leftovers(run.result["run_id"]) == []
    return run


def sched_section(run: CliRun) -> dict:
    assert run.result is not None, run.stderr[-3000:]
    return run.result["scheduler"]
