import random

import pytest

from schedlab_test.costs import STATIC, CostModel, TimesStore, fit
from schedlab_test.selection import Candidate, ShardError, parse_shard, shard, within_budget


def cand(i: str, cost: float, *covers: str) -> Candidate:
    return Candidate(i, cost, frozenset(covers))


def test_budget_prefers_coverage_per_second() -> None:
    cs = [
        cand("big", 100, "a", "b", "c", "d"),
        cand("x", 10, "a", "b"),
        cand("y", 10, "c", "d"),
        cand("z", 10, "a"),
    ]
    assert [c.id for c in within_budget(cs, 25)] == ["x", "y"]
    assert [c.id for c in within_budget(cs, 5)] == []
    # Enough for everything: still nothing that adds no coverage (z, big after x and y).
    assert {c.id for c in within_budget(cs, 1000)} == {"x", "y"}


def test_budget_is_a_cover_when_it_fits_and_never_exceeds() -> None:
    rng = random.Random(7)
    cs = [
        cand(f"v{i}", rng.uniform(5, 30), *rng.sample("abcdefghijkl", rng.randint(1, 4)))
        for i in range(60)
    ]
    universe = frozenset().union(*(c.covers for c in cs))
    full = within_budget(cs, 10_000)
    assert frozenset().union(*(c.covers for c in full)) == universe
    small = within_budget(cs, 60)
    assert sum(c.cost for c in small) <= 60 and small
    assert within_budget(list(reversed(cs)), 60) == small  # order does not matter


def test_shard_is_deterministic_complete_and_balanced() -> None:
    rng = random.Random(3)
    ids = [f"t{i}" for i in range(97)]
    costs = {i: rng.uniform(1, 50) for i in ids}
    parts = [shard(ids, costs.__getitem__, k, 4) for k in range(1, 5)]
    assert sorted(sum(parts, [])) == sorted(ids)  # each test in exactly one shard
    assert [shard(list(reversed(ids)), costs.__getitem__, k, 4) for k in range(1, 5)] == [
        list(reversed(p)) for p in parts
    ]
    loads = [sum(costs[i] for i in p) for p in parts]
    assert max(loads) - min(loads) <= max(costs.values())


def test_parse_shard() -> None:
    assert parse_shard("2/3") == (2, 3)
    for bad in ("0/3", "4/3", "x", "1-2", "/"):
        with pytest.raises(ShardError):
            parse_shard(bad)


def test_fit_recovers_coefficients() -> None:
    pts = [(c, d, 7 + 0.5 * c + 2 * d) for c in (2, 4, 8) for d in (1, 3)]
    m = fit(pts)
    assert m.boot_s == pytest.approx(7) and m.per_cpu_s == pytest.approx(0.5)
    assert m.stretch == pytest.approx(2)
    one_size = fit([(4, 1, 20), (4, 1, 22)])
    assert one_size.per_cpu_s == STATIC.per_cpu_s and one_size.stretch == STATIC.stretch
    assert one_size.estimate(4, 1) == pytest.approx(21)
    assert fit([]) == STATIC


def test_times_store_calibrates_and_knows_runs(tmp_path) -> None:
    store = TimesStore(tmp_path / "t.json")
    store.record("a", 2, 1.0, 12.0)
    store.record("a", 2, 1.0, 14.0)
    store.record("b", 8, 2.0, 30.0)
    m = store.model()
    assert m.estimate(2, 1.0, "a") == pytest.approx(13.0)
    assert m.estimate(16, 1.0) > m.estimate(2, 1.0)
    (tmp_path / "t.json").write_text("garbage")
    assert TimesStore(tmp_path / "t.json").model().estimate(2, 1) == CostModel().estimate(2, 1)
