"""The bare-VM reference of ``bench overhead`` boots the real kernel and powers off."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from orchestrator.initramfs.busybox import BARE_INIT_MARKER, BusyboxMissing, build_busybox_initramfs
from schedlab_shared.topology import Topology
from schedlab_shared.vm_config import VmConfig
from tests.framework.prereq import require
from tests.framework.schedlab_cli import default_kernel_or_skip, leftovers
from vmm_proc.bench.bare_vm import run_bare_vm


@pytest.mark.slow
def test_bare_busybox_vm_runs_its_init_and_exits(tmp_path: Path) -> None:
    kernel = default_kernel_or_skip()
    require(shutil.which("qemu-system-x86_64") is not None, "qemu-system-x86 is not installed")
    try:
        image = build_busybox_initramfs(tmp_path / "bare.cpio")
    except BusyboxMissing as exc:
        require(False, str(exc))
    cfg = VmConfig(
        run_id="bare-test",
        engine="qemu",
        kernel=str(kernel.vmlinuz),
        initrd=str(image),
        cmdline="console=ttyS0 panic=-1 nokaslr rdinit=/init",
        topology=Topology.parse("1,1,2,1"),
        timeout_s=300,
    )
    result = run_bare_vm(cfg)
    assert result.exit_reason == "guest-exit", result.exit_detail
    assert BARE_INIT_MARKER in result.console_tail
    assert "reboot: Power down" in result.console_tail
    assert 0 < result.lifetime_s < 300
    assert not leftovers("bare-test")
