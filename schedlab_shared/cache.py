"""Where schedlab keeps what it downloads and builds: ``~/.cache/schedlab`` (or $SCHEDLAB_CACHE)."""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ("cache_root", "kernels_dir", "images_dir", "tools_dir", "runs_dir")


def cache_root() -> Path:
    env = os.environ.get("SCHEDLAB_CACHE")
    if env:
        return Path(env)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "schedlab"


def kernels_dir() -> Path:
    """One folder per kernel version: vmlinuz, vmlinux, config, modules/, meta.json."""
    return cache_root() / "kernels"


def images_dir() -> Path:
    """Initramfs images, named by content hash."""
    return cache_root() / "images"


def tools_dir() -> Path:
    """Downloaded helper artifacts (testbed L1 kernel, apt state)."""
    return cache_root() / "tools"


def runs_dir() -> Path:
    """Default parent of run directories."""
    return cache_root() / "runs"
