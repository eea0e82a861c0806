"""Named topologies (ktstr's 24 x86 gauntlet presets) and ktstr's ``{n}n{l}l{c}c{t}t`` notation.

A :class:`Shape` is any machine shape, however large; a :class:`~schedlab_shared.topology.Topology`
is one a VM here can be built with (at most :data:`~schedlab_shared.topology.MAX_CPUS`).
In the notation ``l`` counts *all* LLCs of the machine (ktstr's meaning), while ``N,L,C,T``
counts LLCs per node: ``2n8l8c2t`` is ``2,4,8,2``.

>>> parse_shape("numa2-8llc").spec
'2,4,8,2'
>>> parse_shape("1n2l4c1t") == parse_shape("1,2,4,1") == parse_shape("1n2l4c1t".upper())
True
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from .topology import MAX_CPUS, Topology, TopologyError

__all__ = (
    "ENGINES",
    "PRESETS",
    "Preset",
    "Shape",
    "engine_limit",
    "engine_refusal",
    "parse_shape",
    "preset",
)

_NOTATION = re.compile(r"^(\d+)n(\d+)l(\d+)c(\d+)t$")
_CSV = re.compile(r"^\s*(\d+)\s*[,x]\s*(\d+)\s*[,x]\s*(\d+)\s*[,x]\s*(\d+)\s*$")
#: The engines a shape may be asked of (``--engine`` values once ``auto`` is resolved).
ENGINES = ("kvm", "qemu")
# Refusals by engine, said once: what stops a shape above MAX_CPUS there.
_WHY = {
    "kvm": "the KVM engine builds xAPIC MADT/CPUID only (no x2APIC), capped at {cap} vCPUs",
    "qemu": "QEMU TCG emulates every vCPU on the host's few cores, so hundreds would not "
    "boot in useful time; it stops at {cap} vCPUs",
}


@dataclass(frozen=True)
class Shape:
    """``nodes`` x ``llcs`` (all LLCs, as in ktstr's notation) x ``cores`` per LLC x ``threads``."""

    nodes: int
    llcs: int
    cores: int
    threads: int

    def __post_init__(self) -> None:
        for name in ("nodes", "llcs", "cores", "threads"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise TopologyError(f"topology: {name} must be a whole number >= 1, got {v!r}")
        if self.llcs % self.nodes:
            raise TopologyError(
                f"topology {self.notation}: {self.llcs} LLCs do not divide over "
                f"{self.nodes} nodes (l counts all LLCs; use a multiple of {self.nodes})"
            )

    @property
    def nr_cpus(self) -> int:
        return self.llcs * self.cores * self.threads

    @property
    def smt(self) -> bool:
        return self.threads > 1

    @property
    def notation(self) -> str:
        """ktstr's form, e.g. ``2n8l8c2t``."""
        return f"{self.nodes}n{self.llcs}l{self.cores}c{self.threads}t"

    @property
    def spec(self) -> str:
        """schedlab's ``N,L,C,T`` form (LLCs per node)."""
        return f"{self.nodes},{self.llcs // self.nodes},{self.cores},{self.threads}"

    def topology(self) -> Topology:
        """The VM topology; :class:`TopologyError` above :data:`MAX_CPUS`."""
        return Topology(self.nodes, self.llcs // self.nodes, self.cores, self.threads)

    @classmethod
    def of(cls, topo: Topology) -> Shape:
        return cls(topo.nodes, topo.nr_llcs, topo.cores, topo.threads)


@dataclass(frozen=True)
class Preset:
    """A named shape from ktstr's gauntlet (``src/vm.rs::gauntlet_presets``)."""

    name: str
    shape: Shape

    @property
    def features(self) -> frozenset[str]:
        """What a gauntlet's budget tries to cover: SMT or not, NUMA or not, LLC count class."""
        s = self.shape
        llc = "llc1" if s.llcs == 1 else "llc-odd" if s.llcs % 2 else "llc-many"
        return frozenset(
            {
                "smt" if s.smt else "nosmt",
                "numa" if s.nodes > 1 else "uma",
                llc,
                "large" if s.nr_cpus > 32 else "small",
            }
        )


def _p(name: str, notation: str) -> Preset:
    return Preset(name, _from_notation(notation))


def _from_notation(text: str) -> Shape:
    m = _NOTATION.match(text)
    assert m is not None, text
    n, llc, c, t = (int(g) for g in m.groups())
    return Shape(n, llc, c, t)


#: The 24 x86_64 presets, in ktstr's order (small to large, then the -nosmt twins, then NUMA).
PRESETS: dict[str, Preset] = {
    p.name: p
    for p in (
        _p("tiny-1llc", "1n1l4c1t"),
        _p("tiny-2llc", "1n2l2c1t"),
        _p("odd-3llc", "1n3l3c1t"),
        _p("odd-5llc", "1n5l3c1t"),
        _p("odd-7llc", "1n7l2c1t"),
        _p("smt-2llc", "1n2l2c2t"),
        _p("smt-3llc", "1n3l2c2t"),
        _p("medium-4llc", "1n4l4c2t"),
        _p("medium-8llc", "1n8l4c2t"),
        _p("large-4llc", "1n4l16c2t"),
        _p("large-8llc", "1n8l8c2t"),
        _p("near-max-llc", "1n15l8c2t"),
        _p("max-cpu", "1n14l9c2t"),
        _p("medium-4llc-nosmt", "1n4l8c1t"),
        _p("medium-8llc-nosmt", "1n8l8c1t"),
        _p("large-4llc-nosmt", "1n4l32c1t"),
        _p("large-8llc-nosmt", "1n8l16c1t"),
        _p("near-max-llc-nosmt", "1n15l16c1t"),
        _p("max-cpu-nosmt", "1n14l18c1t"),
        _p("numa2-4llc", "2n4l4c1t"),
        _p("numa2-8llc", "2n8l8c2t"),
        _p("numa2-8llc-nosmt", "2n8l16c1t"),
        _p("numa4-8llc", "4n8l4c1t"),
        _p("numa4-12llc", "4n12l8c2t"),
    )
}


def preset(name: str) -> Preset:
    """The preset called ``name``; :class:`TopologyError` names the closest ones."""
    try:
        return PRESETS[name]
    except KeyError:
        raise TopologyError(_bad(name)) from None


def _bad(text: str) -> str:
    import difflib

    near = difflib.get_close_matches(text, PRESETS, n=3)
    hint = f"; did you mean {', '.join(near)}?" if near else ""
    return (
        f"topology {text!r} is neither a preset ('schedlab topo list'), ktstr's "
        f"{{n}}n{{l}}l{{c}}c{{t}}t (l counts all LLCs, e.g. 1n2l4c1t) nor N,L,C,T "
        f"(nodes,LLCs per node,cores per LLC,threads per core, e.g. 1,1,2,1){hint}"
    )


def parse_shape(text: str) -> Shape:
    """A preset name, ktstr's notation or ``N,L,C,T``, as a :class:`Shape` (any size).

    :raises TopologyError: one line naming the three accepted forms.
    """
    if not isinstance(text, str):
        raise TopologyError(f"topology {text!r} is not a string")
    s = text.strip()
    if s in PRESETS:
        return PRESETS[s].shape
    m = _NOTATION.match(s.lower())
    if m:
        n, llc, c, t = (int(g) for g in m.groups())
        return Shape(n, llc, c, t)
    m = _CSV.match(s)
    if m:
        n, llc, c, t = (int(g) for g in m.groups())
        if n < 1:
            raise TopologyError(f"topology: nodes must be a whole number >= 1, got {n}")
        return Shape(n, llc * n, c, t)
    raise TopologyError(_bad(s))


def engine_refusal(shape: Shape, engine: str) -> str | None:
    """Why ``engine`` cannot run ``shape`` (one line), or None when it can."""
    if shape.nr_cpus <= MAX_CPUS:
        return None
    return f"topology {shape.notation} has {shape.nr_cpus} CPUs: {engine_limit(engine)}"


def engine_limit(engine: str) -> str:
    """What bounds the VMs of ``engine`` (one phrase)."""
    return _WHY.get(engine, "no engine here runs more than {cap} vCPUs").format(cap=MAX_CPUS)
