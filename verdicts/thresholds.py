"""The monitor's thresholds (ktstr's defaults, KTSTR.md 1.5) and how they are overridden.

>>> resolve_thresholds({"max_imbalance_ratio": 8.0}, {"sustained_samples": 3})
MonitorThresholds(max_imbalance_ratio=8.0, ..., sustained_samples=3, ...)
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

__all__ = ("MonitorThresholds", "ThresholdError", "parse_override", "resolve_thresholds")


class ThresholdError(ValueError):
    """An override names no threshold, or gives it a value of the wrong kind or range."""


@dataclass(frozen=True)
class MonitorThresholds:
    """What a sched_ext run's monitor samples must stay within.

    :param max_imbalance_ratio: max(nr_running) / max(1, min(nr_running)) over the CPUs.
    :param max_local_dsq_depth: tasks in one CPU's local DSQ.
    :param fail_on_stall: judge stalls (rq_clock standing still while nr_running > 0).
    :param max_fallback_rate: SCX_EV_SELECT_CPU_FALLBACK per second, summed over CPUs.
    :param max_keep_last_rate: SCX_EV_DISPATCH_KEEP_LAST per second.
    :param sustained_samples: consecutive violating samples before a check fails.
    :param warmup_s: seconds after the scheduler attached that are not judged.
    :param vcpu_min_run_ms: a sample interval in which the host ran the vCPU's thread less
        than this is exempt from the stall check (the guest could not advance its clock).
    :param tcg_rr_slice_ms: when one host thread runs several vCPUs (QEMU's single-threaded
        TCG), it runs them in turn for up to this long each (QEMU's TCG_KICK_PERIOD), so
        a stall must also outlast ``(vCPUs per thread) x`` this.
    :param max_sane_dsq_depth: a deeper DSQ means the monitor reads the wrong memory
        (mismatched vmlinux): the run is inconclusive, not failed.
    """

    max_imbalance_ratio: float = 4.0
    max_local_dsq_depth: int = 50
    fail_on_stall: bool = True
    max_fallback_rate: float = 200.0
    max_keep_last_rate: float = 100.0
    sustained_samples: int = 5
    warmup_s: float = 2.0
    vcpu_min_run_ms: float = 1.0
    tcg_rr_slice_ms: float = 100.0
    max_sane_dsq_depth: int = 10_000

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            v = getattr(self, f.name)
            if f.type == "bool":
                if not isinstance(v, bool):
                    raise ThresholdError(f"threshold {f.name}: {v!r} is not true/false")
            elif isinstance(v, bool) or not isinstance(v, int | float) or v < 0:
                raise ThresholdError(f"threshold {f.name}: {v!r} is not a number >= 0")
        if self.sustained_samples < 1 or int(self.sustained_samples) != self.sustained_samples:
            raise ThresholdError(
                f"threshold sustained_samples: {self.sustained_samples!r} "
                "is not a whole number >= 1"
            )

    def with_overrides(self, overrides: Mapping[str, Any] | None) -> MonitorThresholds:
        """A copy with ``overrides`` applied (a None value keeps the current one).

        :raises ThresholdError: an unknown name or a bad value.
        """
        if not overrides:
            return self
        names = {f.name for f in dataclasses.fields(self)}
        unknown = sorted(set(overrides) - names)
        if unknown:
            raise ThresholdError(
                f"unknown monitor threshold(s) {', '.join(unknown)}; "
                f"known: {', '.join(sorted(names))}"
            )
        return dataclasses.replace(self, **{k: v for k, v in overrides.items() if v is not None})

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def resolve_thresholds(
    scheduler: Mapping[str, Any] | None = None, test: Mapping[str, Any] | None = None
) -> MonitorThresholds:
    """The defaults, then the scheduler's overrides, then the test's: the last one set wins."""
    return MonitorThresholds().with_overrides(scheduler).with_overrides(test)


def parse_override(text: str) -> tuple[str, Any]:
    """``"NAME=VALUE"`` (a command-line override) as ``(name, typed value)``.

    >>> parse_override("max_imbalance_ratio=8")
    ('max_imbalance_ratio', 8.0)

    :raises ThresholdError: no ``=``, an unknown name or a value of the wrong kind.
    """
    name, sep, raw = text.partition("=")
    name, raw = name.strip(), raw.strip()
    fields = {f.name: f.type for f in dataclasses.fields(MonitorThresholds)}
    if not sep or name not in fields:
        raise ThresholdError(
            f"threshold {text!r}: expected NAME=VALUE with NAME one of {', '.join(sorted(fields))}"
        )
    kind = fields[name]
    try:
        if kind == "bool":
            if raw.lower() not in ("true", "false", "1", "0", "yes", "no"):
                raise ValueError(raw)
            return name, raw.lower() in ("true", "1", "yes")
        return name, int(raw) if kind == "int" else float(raw)
    except ValueError:
        raise ThresholdError(
            f"threshold {name}: {raw!r} is not a{'n' if kind == 'int' else ''} {kind}"
        ) from None
