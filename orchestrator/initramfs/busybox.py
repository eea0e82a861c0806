"""A minimal busybox initramfs: mount proc and devtmpfs, print a line, power off at once.

It is the bare-VM reference of ``schedlab bench overhead``: what a VM with the same kernel
costs when its init does nothing.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from .cpio import CpioArchive

__all__ = ("BARE_INIT_MARKER", "BusyboxMissing", "build_busybox_initramfs", "find_busybox")

BARE_INIT_MARKER = "schedlab-bare-vm: init up"
# The kernel runs the interpreter as "/bin/busybox sh /init"; -f powers off without init.
_INIT = f"""#!/bin/busybox sh
/bin/busybox mount -t proc proc /proc
/bin/busybox mount -t devtmpfs devtmpfs /dev
/bin/busybox echo "{BARE_INIT_MARKER}"
/bin/busybox poweroff -f
""".encode()


class BusyboxMissing(Exception):
    """No static busybox on this host."""


def find_busybox() -> Path:
    """The host's busybox (Debian: busybox-static), which must be statically linked."""
    for cand in (shutil.which("busybox"), "/bin/busybox"):
        if cand and Path(cand).is_file():
            path = Path(cand).resolve()
            if b"ld-linux" in path.read_bytes()[:65536]:
                raise BusyboxMissing(f"{path} is dynamically linked: install busybox-static")
            return path
    raise BusyboxMissing("busybox not found: install the busybox-static package")


def build_busybox_initramfs(dest: Path, busybox: Path | None = None) -> Path:
    """Write the image to ``dest`` (a newc cpio) and return ``dest``."""
    arc = CpioArchive()
    for d in ("bin", "dev", "proc"):
        arc.add_dir(d)
    arc.add_char_device("dev/console", 5, 1)
    arc.add_file("bin/busybox", (busybox or find_busybox()).read_bytes(), 0o755)
    arc.add_file("init", _INIT, 0o755)
    with dest.open("wb") as fh:
        arc.write(fh)
    return dest
