"""The gates ``compare`` applies per metric: ktstr's defaults, ``--threshold``, ``--policy``.

A policy file is JSON::

    {"threshold_percent": 20,                      # optional: every relative gate
     "metrics": {"worst_gap_ms": {"abs": 100, "rel": 0.2},
                 "total_iterations": {"rel": 0.05}}}

Unknown keys and metric names are refused (a typo must not silently keep a default gate).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .metrics import METRICS

__all__ = ("Gate", "PolicyError", "gates")


class PolicyError(ValueError):
    """A bad ``--threshold`` or policy file: one line saying what to fix."""


@dataclass(frozen=True)
class Gate:
    abs_gate: float
    rel_gate: float


def _number(v: Any, where: str) -> float:
    if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v) or v < 0:
        raise PolicyError(f"{where}: want a number >= 0, got {v!r}")
    return float(v)


def _load(path: Path) -> dict[str, Any]:
    try:
        doc = json.loads(Path(path).read_text())
    except (OSError, ValueError) as e:
        raise PolicyError(f"policy {path}: {e}") from None
    if not isinstance(doc, dict) or set(doc) - {"threshold_percent", "metrics"}:
        raise PolicyError(f"policy {path}: want a map with threshold_percent and/or metrics")
    return doc


def gates(threshold_pct: float | None = None, policy: Path | None = None) -> dict[str, Gate]:
    """Each metric's gate: the defaults, then the policy's percent, then ``threshold_pct``
    (the command line wins over the file), then the policy's per-metric values."""
    out = {n: Gate(m.abs_gate, m.rel_gate) for n, m in METRICS.items()}
    doc = _load(policy) if policy is not None else {}
    pct = doc.get("threshold_percent")
    if threshold_pct is not None:
        pct = threshold_pct
    if pct is not None:
        rel = _number(pct, "threshold percent") / 100
        out = {n: Gate(g.abs_gate, rel) for n, g in out.items()}
    per = doc.get("metrics", {})
    if not isinstance(per, dict):
        raise PolicyError(f"policy {policy}: metrics: want a map of metric -> {{abs, rel}}")
    for name, over in per.items():
        where = f"policy {policy}: metrics.{name}"
        if name not in METRICS:
            raise PolicyError(f"{where}: no such metric (known: {', '.join(METRICS)})")
        if not isinstance(over, dict) or not over or set(over) - {"abs", "rel"}:
            raise PolicyError(f"{where}: want a map with abs and/or rel")
        g = out[name]
        out[name] = Gate(
            _number(over.get("abs", g.abs_gate), f"{where}.abs"),
            _number(over.get("rel", g.rel_gate), f"{where}.rel"),
        )
    return out
