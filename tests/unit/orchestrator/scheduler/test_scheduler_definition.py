"""SchedulerDef and its parts: validation names the field; argv and topology checks."""

import pytest

from orchestrator.scheduler.definition import (
    EEVDF,
    DefinitionError,
    SchedFlag,
    SchedulerDef,
    Sysctl,
    TopologyConstraints,
)
from orchestrator.scheduler.examples import EXAMPLE_NAMES, EXAMPLES, builtin, builtin_names
from schedlab_shared.topology import Topology


def _def(**kw):
    base = {"name": "scx_t", "binary": "scx_t", "ops": "t"}
    return SchedulerDef(**{**base, **kw})


@pytest.mark.parametrize(
    ("kw", "field"),
    [
        ({"name": "bad name"}, "scheduler name"),
        ({"name": ""}, "scheduler name"),
        ({"binary": "rel/path"}, "binary"),
        ({"binary": "x y"}, "binary"),
        ({"ops": "has space"}, "ops"),
        ({"ops": "x" * 128}, "ops"),
        ({"args": ["-v"]}, "args"),
        ({"args": ("",)}, "args[0]"),
        ({"args": ("-v", "a\nb")}, "args[1]"),
        ({"kargs": ("a b",)}, "kargs[0]"),
        ({"watchdog_timeout_s": 31}, "watchdog_timeout_s"),
        ({"watchdog_timeout_s": 0}, "watchdog_timeout_s"),
        ({"watchdog_timeout_s": True}, "watchdog_timeout_s"),
        ({"flags": (SchedFlag("a"), SchedFlag("a"))}, "duplicate flag 'a'"),
        ({"flags": (SchedFlag("a", requires=("b",)),)}, "flag a: requires unknown flag 'b'"),
        ({"flags": ("a",)}, "flags[0] is not a SchedFlag"),
        ({"sysctls": (("kernel.x", "1"),)}, "sysctls[0]"),
        ({"topology": (1, 2)}, "topology"),
    ],
)
def test_bad_field_is_named(kw, field):
    with pytest.raises(DefinitionError) as err:
        _def(**kw)
    assert field in str(err.value)


@pytest.mark.parametrize(
    ("kw", "field"),
    [
        ({"name": "Stall"}, "kebab-case"),
        ({"name": "a--b"}, "kebab-case"),
        ({"name": "a", "args": ("",)}, "flag a: args[0]"),
        ({"name": "a", "requires": ("a",)}, "requires itself"),
        ({"name": "a", "requires": ["b"]}, "requires must be a tuple"),
    ],
)
def test_bad_flag(kw, field):
    with pytest.raises(DefinitionError) as err:
        SchedFlag(**kw)
    assert field in str(err.value)


@pytest.mark.parametrize(
    ("kw", "field"),
    [
        ({"min_cpus": 0}, "topology.min_cpus"),
        ({"min_llcs": 4, "max_llcs": 2}, "topology.max_llcs"),
        ({"max_nodes": True}, "topology.max_nodes"),
        ({"requires_smt": 1}, "topology.requires_smt"),
        ({"cpus_multiple_of": 0}, "topology.cpus_multiple_of"),
    ],
)
def test_bad_topology(kw, field):
    with pytest.raises(DefinitionError) as err:
        TopologyConstraints(**kw)
    assert field in str(err.value)


def test_bad_sysctl():
    with pytest.raises(DefinitionError, match="sysctl key"):
        Sysctl("pid_max", "1")
    with pytest.raises(DefinitionError, match="kernel.pid_max: value"):
        Sysctl("kernel.pid_max", "")
    assert Sysctl("kernel.pid_max", "32768").proc_path == "/proc/sys/kernel/pid_max"


def test_eevdf_has_no_binary_and_cannot_take_flags():
    assert EEVDF.is_eevdf and not EEVDF.is_path and EEVDF.argv_tail() == ()
    with pytest.raises(DefinitionError, match="EEVDF"):
        SchedulerDef(name="x", binary=None, args=("-v",))


def test_definitions_are_frozen():
    d = _def()
    with pytest.raises(AttributeError):
        d.name = "other"  # type: ignore[misc]


def test_argv_tail_order_and_requires():
    d = _def(
        args=("-s", "5000"),
        flags=(
            SchedFlag("batch", ("-b", "8")),
            SchedFlag("boost", ("-H",), ("batch",)),
        ),
    )
    assert d.argv_tail(["batch", "boost", "batch"], ["-v"]) == ("-s", "5000", "-b", "8", "-H", "-v")
    with pytest.raises(DefinitionError, match="flag boost requires batch"):
        d.argv_tail(["boost"])
    with pytest.raises(DefinitionError, match=r"no flag 'nope' \(flags: batch, boost\)"):
        d.argv_tail(["nope"])


@pytest.mark.parametrize(
    ("cons", "topo", "why"),
    [
        (TopologyConstraints(min_cpus=2), "1,1,1,1", "needs >= 2 cpus, topology 1,1,1,1 has 1"),
        (TopologyConstraints(max_llcs=2), "2,2,1,1", "needs 1..2 llcs, topology 2,2,1,1 has 4"),
        (TopologyConstraints(min_nodes=2), "1,2,2,1", "needs >= 2 nodes"),
        (TopologyConstraints(requires_smt=True), "1,1,2,1", "needs SMT"),
        (TopologyConstraints(cpus_multiple_of=2), "1,1,3,1", "multiple of 2"),
    ],
)
def test_topology_violation(cons, topo, why):
    assert why in cons.violation(Topology.parse(topo))


def test_topology_fits():
    cons = TopologyConstraints(min_cpus=2, max_cpus=8, requires_smt=True, cpus_multiple_of=2)
    assert cons.violation(Topology.parse("1,2,2,2")) is None
    assert _def(topology=cons).fits(Topology.parse("1,1,1,1")).startswith("scx_t needs")


def test_examples_ship_definitions():
    assert set(EXAMPLE_NAMES) == {
        "scx_simple",
        "scx_qmap",
        "scx_central",
        "scx_flatcg",
        "scx_pair",
        "scx_userland",
        "scx_sdt",
        "scx_cpu0",
    }
    for name, d in EXAMPLES.items():
        assert d.binary == name and d.ops == name.removeprefix("scx_")
        assert d.flag("verbose").args == ("-v",)
    qmap = EXAMPLES["scx_qmap"]
    assert qmap.watchdog_timeout_s == 5.0
    for flag, opt in (
        ("bpf-error", "-e"),
        ("stall-user", "-t"),
        ("stall-kthread", "-T"),
        ("dispatch-loop", "-l"),
        ("partial", "-p"),
    ):
        assert qmap.flag(flag).args[0] == opt
    assert qmap.flag("immed-stress").requires == ("always-immed",)
    assert EXAMPLES["scx_pair"].fits(Topology.parse("1,1,3,1"))
    assert EXAMPLES["scx_central"].fits(Topology.parse("1,1,1,1"))
    assert EXAMPLES["scx_simple"].fits(Topology.parse("1,1,1,1")) is None


def test_builtin_lookup():
    assert builtin("EEVDF") is EEVDF and builtin("scx_qmap") is EXAMPLES["scx_qmap"]
    assert builtin("scx_nope") is None
    assert builtin_names()[0] == "eevdf" and "scx_cpu0" in builtin_names()
