"""Compare two sets of sidecars (``schedlab compare A B``): join by identity, average repeats,
gate each metric on both an absolute and a relative threshold.

The join key is what stays fixed between the two sides: the test, the scheduler and its
flag profile, the topology and the engine. What is being compared (schedlab's commit, the
kernel, the scheduler's arguments, the host) may differ. A test that passed on A and did
not on B is a regression whatever its metrics.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from .metrics import METRICS
from .policy import Gate

__all__ = ("Change", "Comparison", "compare", "join_key")

Key = tuple[str, str, str, str, str]


def join_key(side: dict[str, Any]) -> Key:
    i = side["identity"]
    sched = i["scheduler"]
    return (i["test"], sched["name"], sched["profile"], i["topology"]["spec"], i["engine"])


def key_name(key: Key) -> str:
    test, sched, profile, topo, engine = key
    return f"{test} [{sched}/{profile} {topo} {engine}]"


@dataclass(frozen=True)
class Change:
    """One significant difference of ``metric`` for the identity ``key`` (B against A)."""

    key: Key
    metric: str
    a: float
    b: float
    regression: bool
    n_a: int = 1
    n_b: int = 1

    @property
    def delta(self) -> float:
        return self.b - self.a

    @property
    def rel(self) -> float | None:
        return None if self.a == 0 else self.delta / abs(self.a)


@dataclass
class Comparison:
    changes: list[Change] = field(default_factory=list)
    joined: int = 0
    only_a: list[Key] = field(default_factory=list)
    only_b: list[Key] = field(default_factory=list)

    @property
    def regressions(self) -> list[Change]:
        return [c for c in self.changes if c.regression]


@dataclass
class _Group:
    n: int = 0
    passed: int = 0
    sums: dict[str, float] = field(default_factory=lambda: defaultdict(float))
    counts: dict[str, int] = field(default_factory=lambda: defaultdict(int))

    def mean(self, metric: str) -> float | None:
        n = self.counts.get(metric, 0)
        return self.sums[metric] / n if n else None


def _groups(sides: list[dict[str, Any]]) -> dict[Key, _Group]:
    out: dict[Key, _Group] = defaultdict(_Group)
    for s in sides:
        g = out[join_key(s)]
        g.n += 1
        g.passed += bool(s["run"]["passed"])
        for name, v in s["metrics"].items():
            if v is not None:
                g.sums[name] += v
                g.counts[name] += 1
    return out


def significant(a: float, b: float, gate: Gate) -> bool:
    """Both gates cleared: ``|b-a| >= abs`` and ``|b-a|/|a| >= rel`` (any change from 0 is
    relatively infinite)."""
    d = abs(b - a)
    if d == 0 or d < gate.abs_gate:
        return False
    return a == 0 or d / abs(a) >= gate.rel_gate


def compare(a: list[dict[str, Any]], b: list[dict[str, Any]], gates: dict[str, Gate]) -> Comparison:
    ga, gb = _groups(a), _groups(b)
    out = Comparison(
        only_a=sorted(set(ga) - set(gb)),
        only_b=sorted(set(gb) - set(ga)),
    )
    for key in sorted(set(ga) & set(gb)):
        out.joined += 1
        x, y = ga[key], gb[key]
        if x.passed == x.n and y.passed < y.n:
            out.changes.append(Change(key, "passed", 1.0, y.passed / y.n, True, x.n, y.n))
        for name, metric in METRICS.items():
            va, vb = x.mean(name), y.mean(name)
            if va is None or vb is None or not significant(va, vb, gates[name]):
                continue
            worse = (vb < va) if metric.higher_better else (vb > va)
            out.changes.append(Change(key, name, va, vb, worse, x.n, y.n))
    return out
