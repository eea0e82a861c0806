"""Prerequisites of tests: a missing one skips locally with its reason, and fails under CI.

Every test that depends on something outside the tree (a tool, a kernel, root, a KVM
capability) says so through this module, so that "skip locally, fail under CI" is decided
in one place. A bare ``pytest.skip`` in a test would hide a missing prerequisite in CI.
"""

from __future__ import annotations

import os
import shutil
from typing import NoReturn

import pytest

__all__ = ("missing", "require", "require_tool", "under_ci")


def under_ci() -> bool:
    """True when the suite runs under CI (``CI`` set), where nothing may be skipped."""
    return bool(os.environ.get("CI"))


def missing(reason: str) -> NoReturn:
    """The prerequisite ``reason`` names is missing: fail under CI, else skip."""
    if under_ci():
        pytest.fail(f"prerequisite missing under CI: {reason}")
    pytest.skip(reason)


def require(ok: object, reason: str) -> None:
    """Go on if ``ok`` is true; otherwise :func:`missing`."""
    if not ok:
        missing(reason)


def require_tool(name: str, hint: str = "") -> str:
    """The path of the program ``name`` on PATH; :func:`missing` (with ``hint``) if absent."""
    path = shutil.which(name)
    if path is None:
        missing(f"{name} is not installed" + (f" ({hint})" if hint else ""))
    return path
