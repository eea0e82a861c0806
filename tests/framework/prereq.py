"""Prerequisites of tests: a missing one skips locally with its reason, and fails under CI."""

from __future__ import annotations

import os

import pytest

__all__ = ("require",)


def require(ok: bool, reason: str) -> None:
    if ok:
        return
    if os.environ.get("CI"):
        pytest.fail(f"prerequisite missing under CI: {reason}")
    pytest.skip(reason)
