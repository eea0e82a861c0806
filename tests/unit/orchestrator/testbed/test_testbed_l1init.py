"""l1init: the L1 init script and the initramfs layout."""

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from orchestrator.testbed.l1init import (
    BUSYBOX,
    CHROOT_SCRIPT,
    build_initramfs,
    ensure_initramfs,
    init_script,
)
from orchestrator.testbed.l1kernel import L1Kernel
from orchestrator.testbed.protocol import PORT_STATUS, PORT_STDERR, PORT_STDOUT
from tests.framework.prereq import missing


def _need(tool):
    if shutil.which(tool) is None and not Path(tool).exists():
        missing(f"{tool} missing")


def test_placeholders_all_filled_and_names_present():
    text = init_script()
    assert not re.search(r"@[A-Z_]+@", text)
    for name in (PORT_STATUS, PORT_STDOUT, PORT_STDERR, CHROOT_SCRIPT):
        assert name in text
    assert text.startswith("#!/bin/sh\n")


def test_mount_options_follow_the_recipe():
    text = init_script()
    assert "trans=virtio,version=9p2000.L,msize=512000,cache=loose,ro hostroot /host" in text
    assert 'cache=loose,rw "$tag" "/host$path"' in text
    for d in ("proc", "sys", "dev"):
        assert 'mount --bind "/$d" "/host/$d"' in text or f"/host/{d}" in text
    assert "tmpfs /host/tmp" in text and "tmpfs /host/dev/shm" in text


def test_init_script_is_valid_busybox_sh(tmp_path):
    _need(str(BUSYBOX))
    script = tmp_path / "init"
    script.write_text(init_script())
    proc = subprocess.run([str(BUSYBOX), "sh", "-n", str(script)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr


def test_kvm_and_nested_paging_are_checked_after_modules():
    text = init_script()
    assert text.index("insmod") < text.index("[ -c /dev/kvm ]")
    assert text.index("[ -c /dev/kvm ]") < text.index("parameters/npt")
    assert text.index("parameters/npt") < text.index("phase mounts")


def test_exit_status_is_reported_before_poweroff():
    lines = init_script().splitlines()
    run = next(i for i, ln in enumerate(lines) if "chroot /host" in ln)
    exit_line = lines.index('status "exit $rc"')
    assert run < exit_line < max(i for i, ln in enumerate(lines) if ln.strip() == "halt_l1")


def test_initramfs_layout(tmp_path):
    _need("cpio")
    mods = []
    for name in ("irqbypass", "kvm", "kvm_amd"):
        mods.append(tmp_path / f"{name}.ko")
        mods[-1].write_bytes(name.encode())
    fake_busybox = tmp_path / "busybox"
    fake_busybox.write_bytes(b"\x7fELFbusybox")
    k = L1Kernel("p", "1", "r", tmp_path / "vmlinuz", tuple(mods))
    data = build_initramfs(k, fake_busybox)
    listing = subprocess.run(
        ["cpio", "-t", "-v", "--quiet"], input=data, capture_output=True, check=True
    ).stdout.decode()
    names = [line.split()[-1] for line in listing.splitlines() if "->" not in line]
    assert "init" in names and "bin/busybox" in names
    mod_names = [n for n in names if n.startswith("lib/modules/") and n.endswith(".ko")]
    assert mod_names == [
        "lib/modules/00-irqbypass.ko",
        "lib/modules/01-kvm.ko",
        "lib/modules/02-kvm_amd.ko",
    ]
    assert sorted(mod_names) == mod_names  # the init's glob loads them in this order
    assert "bin/sh -> busybox" in listing
    init_line = next(ln for ln in listing.splitlines() if ln.split()[-1] == "init")
    assert init_line.startswith("-rwxr-xr-x")


def test_ensure_initramfs_caches_by_content_and_prunes_stale(tmp_path, monkeypatch):
    monkeypatch.setenv("SCHEDLAB_CACHE", str(tmp_path / "cache"))
    ko = tmp_path / "kvm.ko"
    ko.write_bytes(b"module")
    fake_busybox = tmp_path / "busybox"
    fake_busybox.write_bytes(b"\x7fELF")
    k = L1Kernel("p", "1", "r", tmp_path / "vmlinuz", (ko,))
    first = ensure_initramfs(k, fake_busybox)
    assert first.read_bytes() == build_initramfs(k, fake_busybox)
    stale, recent = first.with_name("initramfs-0000.cpio"), first.with_name("initramfs-1111.cpio")
    for p in (stale, recent):
        p.write_bytes(b"old")
    os.utime(stale, (1, 1))
    assert ensure_initramfs(k, fake_busybox) == first
    assert not stale.exists() and recent.exists()
    ko.write_bytes(b"module v2")
    assert ensure_initramfs(k, fake_busybox) != first


def test_ensure_initramfs_names_the_missing_package(tmp_path):
    k = L1Kernel("p", "1", "r", tmp_path / "vmlinuz", ())
    with pytest.raises(FileNotFoundError, match="busybox-static"):
        ensure_initramfs(k, tmp_path / "no-busybox")
