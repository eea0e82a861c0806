"""A run of one of the guest's test scenarios (guest.probes) through a real session, in process."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from schedlab_shared.topology import Topology

from .prereq import require
from .schedlab_cli import default_kernel_or_skip, leftovers

__all__ = ("probe_image", "probe_run")


def probe_image() -> tuple[Any, Path]:
    """The default kernel and a guest image for it (a skip, or a CI failure, without QEMU)."""
    require(shutil.which("qemu-system-x86_64") is not None, "qemu-system-x86_64 is not installed")
    from orchestrator.initramfs.builder import build_initramfs

    kernel = default_kernel_or_skip()
    return kernel, build_initramfs(kernel)


def probe_run(
    image: Any,
    tmp_path: Path,
    probe: str,
    duration_s: float = 2.0,
    hooks: Any = None,
    **limits: Any,
) -> tuple[dict[str, Any], int]:
    """A run of ``probe`` (a guest.probes name, or ``cgroup-spinners``) with the test's
    worker limits (:class:`orchestrator.request.VerdictLimits` fields) and test hooks."""
    from orchestrator.request import Hooks, RunRequest, Scenario, VerdictLimits, VmShape
    from orchestrator.session import RunSession

    kernel, initrd = image
    vm = VmShape(
        engine="qemu", engine_reason="tier 3", kernel=kernel, initrd=initrd,
        topology=Topology.parse("1,1,2,1"),
    )  # fmt: skip
    req = RunRequest(
        vm=vm,
        scenario=Scenario(name=probe, duration_s=duration_s),
        limits=VerdictLimits(**limits),
        run_dir=tmp_path / "run",
        hooks=hooks or Hooks(),
    )
    result, code = RunSession(req).run()
    assert leftovers(result["run_id"]) == []
    return result, code
