"""Fixtures for kernel tests: a real kernel from the cache first, /root/dev-kernel second."""

from pathlib import Path

import pytest

from schedlab_shared.cache import kernels_dir
from tests.framework.prereq import missing


def _find_real_vmlinuz() -> Path | None:
    root = kernels_dir()
    if root.is_dir():
        for cand in sorted(root.glob("*/vmlinuz"), reverse=True):
            if cand.is_file():
                return cand
    for cand in sorted(Path("/root/dev-kernel").glob("x/usr/lib/modules/*/vmlinuz")):
        return cand
    return None


@pytest.fixture(scope="session")
def real_vmlinuz() -> Path:
    path = _find_real_vmlinuz()
    if path is None:
        reason = "no real kernel: run `schedlab kernel fetch` (or provide /root/dev-kernel)"
        missing(reason)
    return path
