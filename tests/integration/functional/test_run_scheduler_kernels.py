"""Tier 3: a scheduler on a kernel without sched_ext (Debian trixie's 6.12 cloud kernel).

With the kernel's config known, the run is refused before anything is built or booted; with
the same image and no config beside it, the guest finds sysfs without sched_ext and the run
ends the same way. Either way: exit 2 naming CONFIG_SCHED_CLASS_EXT, nothing left behind.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.framework.prereq import require, under_ci
from tests.framework.sched_runs import DURATION, built_examples, sched_run, sched_section

pytestmark = pytest.mark.slow

NO_SCHED_EXT = "this kernel has no sched_ext (CONFIG_SCHED_CLASS_EXT"


@pytest.fixture(scope="module")
def trixie():  # noqa: ANN201
    """The trixie cloud kernel (``schedlab kernel fetch --suite trixie``; fetched under CI)."""

    from orchestrator.kernel.artifacts import KernelError, list_cached
    from orchestrator.kernel.fetch import fetch_default

    found = [k for k in list_cached() if k.meta.get("source") == "debian-trixie"]
    if not found and under_ci():
        try:
            found = [fetch_default(suite="trixie")]
        except KernelError as exc:
            require(False, f"cannot fetch trixie's kernel: {exc}")
    require(bool(found), "no trixie kernel cached (schedlab kernel fetch --suite trixie)")
    k = found[-1]
    assert k.config_known and not k.has_sched_ext
    return k


def test_refused_before_boot_when_the_config_says_so(trixie, tmp_path: Path) -> None:
    run = sched_run(tmp_path, "--kernel", trixie.version, "--scheduler", "scx_simple",
                    "--duration", DURATION)  # fmt: skip
    assert run.code == 2, run.stderr[-2000:]
    assert NO_SCHED_EXT in run.stderr and trixie.version in run.stderr
    assert "Traceback" not in run.stderr and run.result is None  # nothing ran
    assert not (tmp_path / "run").exists()


def test_the_guest_finds_out_when_no_config_is_known(trixie, tmp_path: Path) -> None:
    built = built_examples()
    alone = tmp_path / "kernel"
    alone.mkdir()
    shutil.copy(trixie.vmlinuz, alone / "vmlinuz")  # no config, no System.map beside it
    mine = tmp_path / "scx_simple"
    shutil.copy(built.schedulers["scx_simple"].path, mine)
    run = sched_run(tmp_path, "--kernel", str(alone / "vmlinuz"), "--scheduler", str(mine),
                    "--duration", DURATION)  # fmt: skip
    assert run.code == 2, (run.result or {}).get("reasons") or run.stderr[-3000:]
    s = sched_section(run)
    assert s["attach_status"] == "sysfs_absent" and not s["attached"]
    assert run.result["reasons"][0].startswith(NO_SCHED_EXT)
    assert run.result["workers"] == []
