"""Names of the /dev/shm files that hold guest RAM, shared by whoever creates or removes them.

The VMM creates them (one per NUMA node under QEMU), the monitor maps them through the
VMM's layout, and the orchestrator removes what a killed VMM left behind.
"""

from __future__ import annotations

import glob
import os

__all__ = ("SHM_DIR", "SHM_PREFIX", "ram_path", "node_path", "run_leftovers")

SHM_DIR = "/dev/shm"
SHM_PREFIX = "schedlab-"  # every /dev/shm file this project creates starts so
_SUFFIX = "-mem"


def ram_path(tag: str) -> str:
    """The guest RAM file of the VM tagged ``tag`` (a run id, or a test's unique name)."""
    if not tag or "/" in tag:
        raise ValueError(f"guest RAM tag {tag!r}: must be non-empty and hold no slash")
    return os.path.join(SHM_DIR, f"{SHM_PREFIX}{tag}{_SUFFIX}")


def node_path(base: str, node: int, nodes: int) -> str:
    """NUMA node ``node``'s file when RAM is split per node (one node: ``base`` itself)."""
    return base if nodes == 1 else f"{base}{node}"


def run_leftovers(run_id: str) -> list[str]:
    """Every /dev/shm file still carrying ``run_id`` (what a SIGKILLed VMM left behind)."""
    return glob.glob(os.path.join(SHM_DIR, f"{SHM_PREFIX}{glob.escape(run_id)}*"))
