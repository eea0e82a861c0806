"""The native work loops on the host: built (cached) and put on ``sys.path`` for a test."""

from __future__ import annotations

import shutil
import sys

from .prereq import require

__all__ = ("native_on_path",)


def native_on_path() -> None:
    """Build ``_schedlab_work`` if needed and make it importable (a skip, or a CI failure,
    without a C compiler)."""
    require(shutil.which("gcc") is not None, "gcc is not installed (native work loops)")
    from orchestrator.native.build import build_native

    where = str(build_native().parent)
    if where not in sys.path:
        sys.path.insert(0, where)
