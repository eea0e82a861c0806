"""CPU topology as code: NUMA nodes, LLCs per node, cores per LLC, threads per core.

One ``Topology`` value travels from the CLI to every consumer: the QEMU argv builder, the
KVM engine's CPUID and MADT, and the guest's expectations.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ("Cpu", "Topology", "TopologyError", "MAX_CPUS")

# The KVM engine's MADT and the QEMU pc machine both handle far more; this bound keeps a typo
# such as 1,1,200,4 from asking a 2-core host for 800 vCPUs.
MAX_CPUS = 64


class TopologyError(ValueError):
    """A topology that cannot be built; the message says what to change."""


def _bits(n: int) -> int:
    """Width of an APIC ID field that holds values 0..n-1 (x86 rounds each level to 2^k)."""
    return (n - 1).bit_length()


@dataclass(frozen=True)
class Cpu:
    """One logical CPU and where it sits."""

    index: int
    node: int
    llc: int  # global LLC index
    core: int  # global core index
    thread: int  # SMT sibling index within the core
    apic_id: int


@dataclass(frozen=True)
class Topology:
    """``nodes`` x ``llcs`` per node x ``cores`` per LLC x ``threads`` per core."""

    nodes: int = 1
    llcs: int = 1
    cores: int = 2
    threads: int = 1

    def __post_init__(self) -> None:
        for name in ("nodes", "llcs", "cores", "threads"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise TopologyError(f"topology: {name} must be a whole number >= 1, got {value!r}")
        if self.nr_cpus > MAX_CPUS:
            raise TopologyError(
                f"topology {self.spec} has {self.nr_cpus} CPUs; at most {MAX_CPUS} are supported "
                "(the KVM engine is xAPIC-only; QEMU TCG does not boot that many vCPUs in "
                "useful time)"
            )

    @classmethod
    def parse(cls, spec: str) -> Topology:
        """Parse ``"N,L,C,T"`` (nodes, LLCs per node, cores per LLC, threads per core), a
        preset name (``tiny-2llc``) or ktstr's ``{n}n{l}l{c}c{t}t`` (``l``: all LLCs).

        >>> Topology.parse("1,2,4,2").nr_cpus
        16
        >>> Topology.parse("2n4l4c1t").spec
        '2,2,4,1'
        """
        from .topology_presets import parse_shape  # the presets module builds on this one

        return parse_shape(spec).topology()

    @property
    def spec(self) -> str:
        return f"{self.nodes},{self.llcs},{self.cores},{self.threads}"

    @property
    def notation(self) -> str:
        """ktstr's ``{n}n{l}l{c}c{t}t`` (``l`` counts all LLCs)."""
        return f"{self.nodes}n{self.nr_llcs}l{self.cores}c{self.threads}t"

    @property
    def nr_cpus(self) -> int:
        return self.nodes * self.llcs * self.cores * self.threads

    @property
    def nr_llcs(self) -> int:
        return self.nodes * self.llcs

    @property
    def apic_shifts(self) -> tuple[int, int, int]:
        """Bit offsets of the core, LLC (die) and node (package) fields of an APIC ID."""
        core = _bits(self.threads)
        llc = core + _bits(self.cores)
        node = llc + _bits(self.llcs)
        return core, llc, node

    def cpus(self) -> list[Cpu]:
        """All logical CPUs in Linux enumeration order (threads of a core adjacent)."""
        core_shift, llc_shift, node_shift = self.apic_shifts
        out: list[Cpu] = []
        for node in range(self.nodes):
            for llc in range(self.llcs):
                for core in range(self.cores):
                    for thread in range(self.threads):
                        apic = (
                            (node << node_shift)
                            | (llc << llc_shift)
                            | (core << core_shift)
                            | thread
                        )
                        out.append(
                            Cpu(
                                index=len(out),
                                node=node,
                                llc=node * self.llcs + llc,
                                core=(node * self.llcs + llc) * self.cores + core,
                                thread=thread,
                                apic_id=apic,
                            )
                        )
        return out

    def to_dict(self) -> dict[str, int]:
        return {
            "nodes": self.nodes,
            "llcs": self.llcs,
            "cores": self.cores,
            "threads": self.threads,
        }

    @classmethod
    def from_dict(cls, d: dict[str, int]) -> Topology:
        return cls(int(d["nodes"]), int(d["llcs"]), int(d["cores"]), int(d["threads"]))
