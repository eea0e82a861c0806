import pytest

from schedlab_shared.topology import MAX_CPUS, Topology, TopologyError
from schedlab_shared.topology_presets import (
    PRESETS,
    Shape,
    engine_refusal,
    parse_shape,
    preset,
)

# ktstr's table (KTSTR.md §1.6): name -> {n}n{l}l{c}c{t}t and CPU count.
KTSTR = {
    "tiny-1llc": ("1n1l4c1t", 4),
    "tiny-2llc": ("1n2l2c1t", 4),
    "odd-3llc": ("1n3l3c1t", 9),
    "odd-5llc": ("1n5l3c1t", 15),
    "odd-7llc": ("1n7l2c1t", 14),
    "smt-2llc": ("1n2l2c2t", 8),
    "smt-3llc": ("1n3l2c2t", 12),
    "medium-4llc": ("1n4l4c2t", 32),
    "medium-8llc": ("1n8l4c2t", 64),
    "large-4llc": ("1n4l16c2t", 128),
    "large-8llc": ("1n8l8c2t", 128),
    "near-max-llc": ("1n15l8c2t", 240),
    "max-cpu": ("1n14l9c2t", 252),
    "medium-4llc-nosmt": ("1n4l8c1t", 32),
    "medium-8llc-nosmt": ("1n8l8c1t", 64),
    "large-4llc-nosmt": ("1n4l32c1t", 128),
    "large-8llc-nosmt": ("1n8l16c1t", 128),
    "near-max-llc-nosmt": ("1n15l16c1t", 240),
    "max-cpu-nosmt": ("1n14l18c1t", 252),
    "numa2-4llc": ("2n4l4c1t", 16),
    "numa2-8llc": ("2n8l8c2t", 128),
    "numa2-8llc-nosmt": ("2n8l16c1t", 128),
    "numa4-8llc": ("4n8l4c1t", 32),
    "numa4-12llc": ("4n12l8c2t", 192),
}


def test_the_24_presets_match_ktstr() -> None:
    assert len(PRESETS) == 24
    got = {n: (p.shape.notation, p.shape.nr_cpus) for n, p in PRESETS.items()}
    assert got == KTSTR


def test_every_smt_preset_with_a_twin_keeps_llcs_and_cpus() -> None:
    for name, p in PRESETS.items():
        if name.endswith("-nosmt"):
            base = PRESETS[name.removesuffix("-nosmt")].shape
            assert (p.shape.llcs, p.shape.nr_cpus, p.shape.threads) == (base.llcs, base.nr_cpus, 1)


def test_notation_counts_all_llcs_and_csv_counts_per_node() -> None:
    s = parse_shape("2n8l8c2t")
    assert (s.nodes, s.llcs, s.cores, s.threads) == (2, 8, 8, 2)
    assert s.spec == "2,4,8,2" and s.nr_cpus == 128
    assert parse_shape("2,4,8,2") == s
    assert parse_shape("numa2-8llc") == s
    assert parse_shape(" 1N2L2C1T ") == parse_shape("tiny-2llc")


def test_topology_parse_takes_all_three_forms() -> None:
    want = Topology(2, 2, 4, 1)
    assert Topology.parse("numa2-4llc") == want
    assert Topology.parse("2n4l4c1t") == want
    assert Topology.parse("2,2,4,1") == want
    assert want.notation == "2n4l4c1t"
    assert Shape.of(want) == parse_shape("2n4l4c1t")


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("tiny-2lc", "did you mean tiny-2llc"),
        ("1n2l4c", "neither a preset"),
        ("2n3l2c1t", "3 LLCs do not divide over 2 nodes"),
        ("0n1l1c1t", "nodes must be a whole number >= 1"),
        ("1n1l0c1t", "cores must be a whole number >= 1"),
        ("0,1,1,1", "nodes must be a whole number >= 1"),
        ("", "neither a preset"),
    ],
)
def test_bad_strings_are_one_line_naming_the_problem(text: str, says: str) -> None:
    with pytest.raises(TopologyError, match=says) as e:
        parse_shape(text)
    assert "\n" not in str(e.value)


def test_large_presets_parse_as_shapes_but_not_as_vm_topologies() -> None:
    big = preset("max-cpu").shape
    assert big.nr_cpus == 252 > MAX_CPUS
    with pytest.raises(TopologyError, match=f"at most {MAX_CPUS}"):
        big.topology()
    with pytest.raises(TopologyError):
        Topology.parse("max-cpu")


def test_engine_refusal_says_why_per_engine() -> None:
    big = preset("numa4-12llc").shape
    kvm, qemu = engine_refusal(big, "kvm"), engine_refusal(big, "qemu")
    assert kvm and "x2APIC" in kvm and "192 CPUs" in kvm
    assert qemu and "TCG" in qemu and "useful time" in qemu
    assert engine_refusal(preset("medium-8llc").shape, "qemu") is None


def test_preset_features_distinguish_the_shapes_a_budget_covers() -> None:
    assert {"smt", "uma", "llc-many"} <= preset("smt-2llc").features
    assert {"nosmt", "numa"} <= preset("numa2-4llc").features
    assert "llc-odd" in preset("odd-3llc").features
    assert "llc1" in preset("tiny-1llc").features
