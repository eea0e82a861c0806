"""The monitor part of a run's result document, from the monitors' sample lines.

>>> section = monitor_section({"monitor": samples}, MonitorThresholds(), watchdog_s=1.0)
>>> section["status"], section["violations"], section["events"]["SCX_EV_DISPATCH_KEEP_LAST"]
('passed', [], {'total': 12, 'rate': 3.5})
"""

from __future__ import annotations

from typing import Any

from schedlab_shared.monitor_schema import SchemaError, check_watchdog

from .monitor import MonitorVerdict, judge_samples
from .thresholds import MonitorThresholds

__all__ = ("monitor_section",)

PRIMARY = "monitor"


def _watchdog(samples: list[dict[str, Any]], requested_s: float | None) -> dict[str, Any] | None:
    """``{requested, read_back, ...}``: the override the monitor applied, or what is missing."""
    if requested_s is None:
        return None
    for s in samples:
        w = s.get("watchdog") if isinstance(s, dict) else None
        if w is not None:
            try:
                return dict(check_watchdog(w))
            except SchemaError as exc:
                return {"requested_s": requested_s, "error": f"malformed observation: {exc}"}
    return {
        "requested_s": requested_s,
        "error": "not applied: no sched_ext scheduler was seen attached by the monitor",
    }


def monitor_section(
    samples: dict[str, list[Any]],
    thresholds: MonitorThresholds | None = None,
    watchdog_s: float | None = None,
    primary: str = PRIMARY,
) -> dict[str, Any]:
    """The judged fields of ``result["monitor"]``: ``status`` and ``reason`` of the
    threshold checks, ``events`` (each SCX_EV_* counter's total and rate), ``violations``,
    ``thresholds`` and, when an override was asked for, ``watchdog``.

    :param samples: sample lines per monitor instance; the primary one is judged.
    """
    lines = samples.get(primary, [])
    verdict: MonitorVerdict = judge_samples(lines, thresholds)
    out: dict[str, Any] = {
        "status": verdict.status,
        "reason": verdict.reason,
        "events": verdict.events,
        "violations": verdict.violations,
        "judged_samples": verdict.judged,
        "thresholds": (thresholds or MonitorThresholds()).to_dict(),
    }
    wd = _watchdog(lines, watchdog_s)
    if wd is not None:
        out["watchdog"] = wd
    return out
