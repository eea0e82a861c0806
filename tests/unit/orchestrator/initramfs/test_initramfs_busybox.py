"""The bare-VM image: busybox as /init's shell, and nothing else."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from orchestrator.initramfs import busybox as bb
from tests.framework.prereq import require


def test_image_holds_init_busybox_and_console(tmp_path: Path) -> None:
    require(shutil.which("cpio") is not None, "cpio binary missing (apt-get install cpio)")
    fake = tmp_path / "busybox"
    fake.write_bytes(b"\x7fELF static busybox stand-in")
    image = bb.build_busybox_initramfs(tmp_path / "bare.cpio", fake)
    listing = (
        subprocess.run(
            ["cpio", "-t", "--quiet"], input=image.read_bytes(), capture_output=True, check=True
        )
        .stdout.decode()
        .split()
    )
    assert listing == ["bin", "dev", "proc", "dev/console", "bin/busybox", "init"]
    out = tmp_path / "x"
    out.mkdir()
    subprocess.run(
        ["cpio", "-i", "-d", "--quiet"],
        input=image.read_bytes(),
        cwd=out,
        check=True,
        capture_output=True,
    )
    init = (out / "init").read_text()
    assert init.startswith("#!/bin/busybox sh\n")
    assert bb.BARE_INIT_MARKER in init and "poweroff -f" in init
    assert (out / "init").stat().st_mode & 0o111 and (
        out / "bin/busybox"
    ).read_bytes() == fake.read_bytes()


def test_a_dynamic_busybox_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    dyn = tmp_path / "busybox"
    dyn.write_bytes(b"\x7fELF ... /lib64/ld-linux-x86-64.so.2 ...")
    monkeypatch.setattr(bb.shutil, "which", lambda _name: str(dyn))
    with pytest.raises(bb.BusyboxMissing, match="busybox-static"):
        bb.find_busybox()
