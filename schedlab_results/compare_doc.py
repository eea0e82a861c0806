"""A comparison as a document (``compare --json FILE``; ``report`` renders it as a table)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from .compare import Comparison, key_name
from .metrics import METRICS
from .schema import SidecarError

__all__ = ("COMPARE_FILE", "KIND", "load", "rows", "to_doc")

KIND = "schedlab.compare"
COMPARE_FILE = "compare.json"


def _unit(metric: str) -> str:
    m = METRICS.get(metric)
    return m.unit if m else ""


def rows(c: Comparison) -> list[dict[str, Any]]:
    """The significant changes, regressions first, each with its direction."""
    out = []
    for ch in sorted(c.changes, key=lambda ch: (not ch.regression, key_name(ch.key), ch.metric)):
        out.append(
            {
                "identity": key_name(ch.key),
                "metric": ch.metric,
                "unit": _unit(ch.metric),
                "a": ch.a,
                "b": ch.b,
                "delta": ch.delta,
                "rel": ch.rel,
                "direction": "regression" if ch.regression else "improvement",
                "repeats": [ch.n_a, ch.n_b],
            }
        )
    return out


def to_doc(c: Comparison, a: str, b: str) -> dict[str, Any]:
    return {
        "kind": KIND,
        "a": a,
        "b": b,
        "joined": c.joined,
        "regressions": len(c.regressions),
        "changes": rows(c),
        "only_a": [key_name(k) for k in c.only_a],
        "only_b": [key_name(k) for k in c.only_b],
    }


def load(path: Path) -> dict[str, Any]:
    """A saved comparison (a file, or a directory holding ``compare.json``)."""
    path = Path(path)
    if path.is_dir():
        path = path / COMPARE_FILE
    try:
        doc = json.loads(path.read_text())
    except (OSError, ValueError) as e:
        raise SidecarError(f"{path}: {e}") from None
    if (
        not isinstance(doc, dict)
        or doc.get("kind") != KIND
        or not isinstance(doc.get("changes"), list)
    ):
        raise SidecarError(f"{path}: not a comparison (schedlab compare --json)")
    return doc
