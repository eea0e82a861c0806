"""The KVM engine's snapshot cache: which snapshot a run may start from, and where a booted
run leaves one for the next.

A snapshot is valid for exactly what makes the guest at SYS_RDY what it is: the kernel and
initramfs (by content), the topology, the memory size, the kernel command line, the
performance mode (its CPUID differs) and this schedlab's version. Its directory is named by
a hash of that key; vmm_proc checks the key again on restore and discards what it refuses.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

from schedlab_shared.cache import cache_root

__all__ = (
    "ROOT_ENV",
    "SNAPSHOT_FILES",
    "file_digest",
    "snapshot_dir",
    "snapshot_key",
    "snapshots_root",
    "usable",
)

#: Overrides where snapshots live (tests keep theirs apart from the user's).
ROOT_ENV = "SCHEDLAB_SNAPSHOTS"

#: What vmm_proc writes into a snapshot directory (vmm_proc.restore_start, snapshot_store).
SNAPSHOT_FILES = ("memory", "state", "streams")
_DIGESTS: dict[tuple[str, int, int], str] = {}


def file_digest(path: Path) -> str:
    """sha256 of a file, remembered per (path, size, mtime) within this process."""
    st = path.stat()
    ident = (str(path.resolve()), st.st_size, st.st_mtime_ns)
    if ident not in _DIGESTS:
        h = hashlib.sha256()
        with open(path, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                h.update(block)
        _DIGESTS[ident] = h.hexdigest()
    return _DIGESTS[ident]


def snapshot_key(
    kernel: Path,
    initrd: Path,
    topology: str,
    mem_mib: int,
    cmdline: str,
    version: str,
    performance: bool,
) -> dict[str, str]:
    """The key of a snapshot (strings only: it travels in the VM config and the bus)."""
    return {
        "kernel": file_digest(kernel),
        "initramfs": file_digest(initrd),
        "topology": topology,
        "mem_mib": str(mem_mib),
        "cmdline": cmdline,
        "schedlab": version,
        "performance": "yes" if performance else "no",
        # The virtio-console's ports are device state: a snapshot from before the shell port
        # (two ports) must not be restored into a three-port console.
        "console_ports": "hvc0,bulk,shell",
    }


def snapshots_root() -> Path:
    """``$SCHEDLAB_SNAPSHOTS`` or ``~/.cache/schedlab/snapshots``."""
    env = os.environ.get(ROOT_ENV)
    return Path(env) if env else cache_root() / "snapshots"


def snapshot_dir(key: dict[str, str], root: Path | None = None) -> Path:
    """Where the snapshot of ``key`` lives (``<snapshots_root>/<hash>``)."""
    digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:32]
    return (root or snapshots_root()) / digest


def usable(directory: Path) -> bool:
    """Whether ``directory`` holds a complete snapshot (vmm_proc checks its content)."""
    return all(os.path.isfile(directory / name) for name in SNAPSHOT_FILES)
