"""Cpuset specs resolved against topologies: concrete, sorted CPU lists within the VM."""

import pytest

from guest.scenario import document
from schedlab_scenario import Cpuset, usable_cpus
from schedlab_shared.topology import Topology


def test_the_last_cpu_is_reserved_only_above_two_cpus():
    assert usable_cpus(Topology(1, 1, 1, 1)) == (0,)
    assert usable_cpus(Topology(1, 1, 2, 1)) == (0, 1)
    assert usable_cpus(Topology(1, 1, 3, 1)) == (0, 1)
    assert usable_cpus(Topology(2, 2, 2, 2)) == tuple(range(15))


@pytest.mark.parametrize(
    ("topo", "spec", "cpus"),
    [
        # 1 node, 2 LLCs x 2 cores: LLC 0 = 0,1; LLC 1 = 2,3 (3 is reserved)
        (Topology(1, 2, 2, 1), Cpuset.llc(0), (0, 1)),
        (Topology(1, 2, 2, 1), Cpuset.llc(1), (2,)),
        (Topology(1, 2, 2, 1), Cpuset.numa(0), (0, 1, 2)),
        # 2 nodes x 2 LLCs x 2 cores x 2 threads = 16 CPUs; node 1 = 8..15, LLC 3 = 12..15
        (Topology(2, 2, 2, 2), Cpuset.numa(1), tuple(range(8, 15))),
        (Topology(2, 2, 2, 2), Cpuset.llc(2), (8, 9, 10, 11)),
        (Topology(2, 2, 2, 2), Cpuset.disjoint(0, 3), (0, 1, 2, 3, 4)),
        (Topology(2, 2, 2, 2), Cpuset.disjoint(2, 3), (10, 11, 12, 13, 14)),
        (Topology(1, 1, 2, 1), Cpuset.disjoint(0, 2), (0,)),
        (Topology(1, 1, 2, 1), Cpuset.disjoint(1, 2), (1,)),
        (Topology(1, 1, 5, 1), Cpuset.range(0.0, 0.5), (0, 1)),
        (Topology(1, 1, 5, 1), Cpuset.range(0.5, 1.0), (2, 3)),
        (Topology(1, 1, 4, 1), Cpuset.range(0.0, 0.25), (0,)),
        (Topology(1, 1, 4, 1), Cpuset.range(0.25, 1.0), (1, 2)),
        (Topology(1, 1, 2, 1), Cpuset.range(0.9, 1.0), (1,)),  # never empty
        (Topology(1, 1, 9, 1), Cpuset.overlap(0, 2, 0.5), (0, 1, 2, 3, 4, 5)),
        (Topology(1, 1, 9, 1), Cpuset.overlap(1, 2, 0.5), (2, 3, 4, 5, 6, 7)),
        (Topology(1, 1, 4, 1), Cpuset.exact({3, 0}), (0, 3)),  # exact may use the reserved CPU
    ],
)
def test_resolution(topo, spec, cpus):
    got = spec.resolve(topo)
    assert got == cpus
    assert list(got) == sorted(set(got)) and all(c < topo.nr_cpus for c in got)


@pytest.mark.parametrize(
    "topo", [Topology(1, 1, 2, 1), Topology(1, 2, 3, 1), Topology(2, 3, 2, 2), Topology(1, 1, 7, 1)]
)
@pytest.mark.parametrize("of", [1, 2, 3])
def test_disjoint_slices_partition_the_usable_cpus(topo, of):
    usable = usable_cpus(topo)
    if of > len(usable):
        return
    slices = [Cpuset.disjoint(i, of).resolve(topo) for i in range(of)]
    assert sorted(c for s in slices for c in s) == list(usable)
    assert all(slices)


@pytest.mark.parametrize("topo", [Topology(1, 1, 4, 1), Topology(1, 2, 4, 1), Topology(2, 2, 2, 2)])
def test_overlapping_slices_share_cpus_with_a_neighbour(topo):
    a, b = Cpuset.overlap(0, 2, 0.5).resolve(topo), Cpuset.overlap(1, 2, 0.5).resolve(topo)
    assert set(a) & set(b)
    assert set(a) | set(b) == set(usable_cpus(topo))


def test_adjacent_ranges_share_no_cpu_when_each_gets_one():
    checked = 0
    for n in range(2, 17):
        topo = Topology(1, 1, n, 1)
        usable = len(usable_cpus(topo))
        for f in (0.25, 1 / 3, 0.5, 0.75):
            if not 0 < int(f * usable + 0.5) < usable:
                continue  # one side rounds to no CPU: ranges are never empty, so they touch
            lo, hi = Cpuset.range(0.0, f).resolve(topo), Cpuset.range(f, 1.0).resolve(topo)
            assert not set(lo) & set(hi), (n, f)
            assert len(lo) + len(hi) == usable
            checked += 1
    assert checked > 40


def test_cpu_bound_matches_the_topology_bound():
    from schedlab_shared.topology import MAX_CPUS

    assert document.MAX_CPUS == MAX_CPUS


def test_describe_and_repr():
    assert Cpuset.disjoint(1, 2).describe() == "disjoint 1/2"
    assert repr(Cpuset.range(0.0, 0.5)) == "Cpuset.range(0.0, 0.5)"
    assert eval(repr(Cpuset.exact([2, 1]))) == Cpuset.exact([2, 1])
