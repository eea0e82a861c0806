"""Tier 3: a built initramfs boots the default kernel under QEMU TCG into Python.

The test guest prints a marker with the guest uptime (= time since kernel start), checks
the image sentinel, loads the requested module with finit_module(2), and powers off.
"""

import shutil
import subprocess
import time
from pathlib import Path

import pytest

from orchestrator.initramfs.builder import build_initramfs
from orchestrator.kernel.artifacts import KernelError
from orchestrator.kernel.resolve import resolve_kernel
from tests.framework.prereq import missing

pytestmark = pytest.mark.slow

GUEST_INIT = r"""
import ctypes
import os
import sys

SYS_FINIT_MODULE = 313
LINUX_REBOOT_CMD_POWER_OFF = 0x4321FEDC


def main():
    libc = ctypes.CDLL(None, use_errno=True)
    libc.mount(b"proc", b"/proc", b"proc", 0, None)
    libc.mount(b"sysfs", b"/sys", b"sysfs", 0, None)
    with open("/proc/uptime") as fh:
        up = fh.read().split()[0]
    ident = open("/etc/schedlab-image-id").read()
    sentinel = open("/schedlab.sentinel").read()
    print(f"python ok {sys.version.split()[0]} uptime={up} "
          f"sentinel={'ok' if ident == sentinel else 'BAD'}", flush=True)
    release = os.uname().release
    for path in open(f"/lib/modules/{release}/schedlab-load-order").read().split():
        fd = os.open(path, os.O_RDONLY)
        rc = libc.syscall(SYS_FINIT_MODULE, fd, b"", 0)
        os.close(fd)
        print(f"module {os.path.basename(path)} rc={rc} errno={ctypes.get_errno()}", flush=True)
    print(f"modules loaded={os.path.isdir('/sys/module/virtio_mmio')}", flush=True)
    libc.sync()
    libc.reboot(LINUX_REBOOT_CMD_POWER_OFF)
"""


def _kernel():
    try:
        return resolve_kernel(None, fetch_if_missing=False)
    except KernelError:
        pass
    for cand in sorted(Path("/root/dev-kernel").glob("x/usr/lib/modules/*/vmlinuz")):
        return resolve_kernel(str(cand))
    missing("no kernel: run `schedlab kernel fetch`")


def test_python_init_boots_under_tcg(tmp_path):
    qemu = shutil.which("qemu-system-x86_64")
    if qemu is None:
        missing("qemu-system-x86_64 not installed")
    kernel = _kernel()
    guest = tmp_path / "guest"
    guest.mkdir()
    (guest / "__init__.py").write_text("")
    (guest / "init.py").write_text(GUEST_INIT)
    t0 = time.perf_counter()
    image = build_initramfs(kernel, modules=["virtio_mmio"], guest_src=guest)
    build_s = time.perf_counter() - t0
    log = tmp_path / "serial.log"
    cmd = [
        qemu,
        "-accel",
        "tcg,thread=single",
        "-cpu",
        "max",
        "-M",
        "pc",
        "-m",
        "512",
        "-smp",
        "2",
        "-nographic",
        "-no-reboot",
        "-kernel",
        str(kernel.vmlinuz),
        "-initrd",
        str(image),
        "-append",
        "console=ttyS0 panic=-1 quiet nokaslr",
    ]
    t0 = time.perf_counter()
    with log.open("wb") as out:
        proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT)
    try:
        proc.wait(timeout=180)
        wall_s = time.perf_counter() - t0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    text = log.read_bytes().decode("utf-8", "replace")
    marker = next((ln for ln in text.splitlines() if "python ok" in ln), None)
    assert marker is not None, text[-3000:]
    assert "sentinel=ok" in marker
    assert "python ok 3.11" in marker
    assert "modules loaded=True" in text, text[-3000:]
    assert "Kernel panic" not in text, text[-3000:]
    uptime = float(marker.split("uptime=")[1].split()[0])
    print(
        f"\nimage {image.stat().st_size / 2**20:.1f} MiB built in {build_s:.2f} s; "
        f"kernel start -> python marker {uptime:.2f} s (guest uptime); QEMU wall {wall_s:.2f} s"
    )
    assert uptime < 60
