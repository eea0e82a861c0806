import pytest

from schedlab_shared.topology import MAX_CPUS, Topology, TopologyError


def test_parse_and_counts() -> None:
    t = Topology.parse("2,2,3,2")
    assert (t.nodes, t.llcs, t.cores, t.threads) == (2, 2, 3, 2)
    assert t.nr_cpus == 24 and t.nr_llcs == 4 and t.spec == "2,2,3,2"


def test_apic_ids_pack_fields_and_are_unique() -> None:
    t = Topology(2, 2, 3, 2)
    cpus = t.cpus()
    assert t.apic_shifts == (1, 3, 4)  # threads:1 bit, cores:2 bits, llcs:1 bit
    assert len({c.apic_id for c in cpus}) == len(cpus) == 24
    last = cpus[-1]
    assert (last.node, last.llc, last.core, last.thread) == (1, 3, 11, 1)
    assert last.apic_id == (1 << 4) | (1 << 3) | (2 << 1) | 1
    assert [c.index for c in cpus] == list(range(24))


@pytest.mark.parametrize("spec", ["", "1,1,2", "1,1,0,1", "a,b,c,d", "1,1,2,1,1", "-1,1,1,1"])
def test_bad_specs_say_what_is_wrong(spec: str) -> None:
    with pytest.raises(TopologyError, match="topology"):
        Topology.parse(spec)


def test_too_many_cpus() -> None:
    with pytest.raises(TopologyError, match=f"at most {MAX_CPUS}"):
        Topology.parse("4,4,4,2")


def test_dict_round_trip() -> None:
    t = Topology(1, 2, 2, 2)
    assert Topology.from_dict(t.to_dict()) == t
