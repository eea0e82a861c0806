"""Choosing what runs: a budgeted covering subset and deterministic cost-balanced shards.

- :func:`within_budget`: greedy set cover. Each candidate covers the ``(preset feature,
  profile, test)`` triples of its preset's features; repeatedly take the candidate with the
  most new triples per estimated second that still fits the budget (ties: the cheaper, then
  the smaller id), until nothing new fits. ktstr's ``KTSTR_BUDGET_SECS`` does the same.
- :func:`shard`: longest-processing-time first over ``(cost, id)``: the same items and costs
  give the same split on every host, and the shards' total costs stay within one item.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterable, Sequence
from dataclasses import dataclass

__all__ = ("Candidate", "ShardError", "parse_shard", "shard", "within_budget")


@dataclass(frozen=True)
class Candidate:
    """Something that may run: its id, estimated seconds and what it covers."""

    id: str
    cost: float
    covers: frozenset[Hashable]


class ShardError(ValueError):
    """A bad ``--shard`` value."""


def within_budget(candidates: Iterable[Candidate], budget_s: float) -> list[Candidate]:
    """The greedy covering subset that fits ``budget_s`` (in the candidates' order)."""
    pool = sorted(candidates, key=lambda c: c.id)
    order = {c.id: i for i, c in enumerate(pool)}
    covered: set[Hashable] = set()
    chosen: list[Candidate] = []
    left = float(budget_s)
    while True:
        best: Candidate | None = None
        best_key: tuple[float, float, str] | None = None
        for c in pool:
            new = len(c.covers - covered)
            if not new or c.cost > left:
                continue
            key = (-new / max(c.cost, 1e-6), c.cost, c.id)
            if best_key is None or key < best_key:
                best, best_key = c, key
        if best is None:
            break
        chosen.append(best)
        covered |= best.covers
        left -= best.cost
        pool.remove(best)
    return sorted(chosen, key=lambda c: order[c.id])


def parse_shard(text: str) -> tuple[int, int]:
    """``"K/N"`` (1-based K) -> ``(K, N)``."""
    k, sep, n = text.partition("/")
    if not sep or not k.strip().isdigit() or not n.strip().isdigit():
        raise ShardError(f"--shard {text!r}: expected K/N, e.g. 1/4")
    ki, ni = int(k), int(n)
    if not 1 <= ki <= ni:
        raise ShardError(f"--shard {text}: K must be in 1..N")
    return ki, ni


def shard(ids: Sequence[str], cost: Callable[[str], float], k: int, n: int) -> list[str]:
    """The ids of shard ``k`` of ``n`` (1-based), in their given order."""
    loads = [0.0] * n
    mine: set[str] = set()
    for i in sorted(ids, key=lambda i: (-cost(i), i)):
        target = min(range(n), key=lambda s: (loads[s], s))
        loads[target] += cost(i)
        if target == k - 1:
            mine.add(i)
    return [i for i in ids if i in mine]
