"""The one door to ``result.json``: its definition lives in :mod:`orchestrator.result_schema`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from orchestrator.result_schema import ResultError, load_result, validate_result

__all__ = ("RESULT_FILE", "ResultError", "load", "validate")

RESULT_FILE = "result.json"


def load(path: Path) -> dict[str, Any]:
    """A checked result document from a run directory or a ``result.json`` path.

    :raises ResultError: unreadable, not JSON, or a declared field wrong.
    """
    path = Path(path)
    return load_result(path / RESULT_FILE if path.is_dir() else path)


def validate(doc: Any) -> dict[str, Any]:
    """``doc`` checked against the result schema (returned unchanged)."""
    return validate_result(doc)
