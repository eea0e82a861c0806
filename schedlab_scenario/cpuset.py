"""Cpuset specs, resolved on the host against the VM's topology into concrete CPU lists.

Fractions and slices are taken over the *usable* CPUs (:func:`usable_cpus`): every CPU but
the last when the VM has more than two. As in ktstr, that CPU is kept out of the cpusets
that fractions and slices build, so the guest's own work (the scenario runner recording op
times, a sched_ext scheduler's user-space half) has a CPU that no cpuset-confined worker
saturates; with one or two CPUs nothing can be spared. Cgroups without a cpuset, and
``Cpuset.exact``, may use every CPU. ``llc`` and ``numa`` give that LLC's or node's usable CPUs.

>>> from schedlab_shared.topology import Topology
>>> Cpuset.disjoint(1, 2).resolve(Topology(1, 1, 5, 1))
(2, 3)
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from schedlab_shared.topology import Topology

from .errors import ScenarioError

__all__ = ("Cpuset", "usable_cpus")

_KINDS = ("llc", "numa", "range", "disjoint", "overlap", "exact")


def usable_cpus(topology: Topology) -> tuple[int, ...]:
    """The CPUs cpuset fractions and slices are taken over (see the module docstring)."""
    n = topology.nr_cpus
    return tuple(range(n - 1 if n > 2 else n))


def _round(x: float) -> int:
    return int(math.floor(x + 0.5 + 1e-9))


def _slice(n: int, index: int, of: int) -> tuple[int, int]:
    """Bounds of slice ``index`` of ``of`` near-equal contiguous slices of ``n`` items."""
    return index * n // of, (index + 1) * n // of


@dataclass(frozen=True)
class Cpuset:
    """A cpuset spec; build it with the class methods (``Cpuset.llc(0)``, ...)."""

    kind: str
    index: int = 0
    of: int = 0
    start: float = 0.0
    end: float = 0.0
    frac: float = 0.0
    cpus: tuple[int, ...] = ()

    def __post_init__(self) -> None:
        if self.kind not in _KINDS:
            raise ScenarioError("kind", f"{self.kind!r} is not one of {', '.join(_KINDS)}")
        if self.kind in ("llc", "numa", "disjoint", "overlap") and self.index < 0:
            raise ScenarioError("index", f"{self.index} is negative")
        if self.kind in ("disjoint", "overlap"):
            if self.of < 1:
                raise ScenarioError("of", f"{self.of} slices; want at least 1")
            if self.index >= self.of:
                raise ScenarioError("index", f"slice {self.index} of {self.of} does not exist")
        if self.kind == "overlap" and not 0.0 < self.frac <= 1.0:
            raise ScenarioError("frac", f"{self.frac!r} is outside (0, 1]")
        if self.kind == "range" and not (0.0 <= self.start < self.end <= 1.0):
            raise ScenarioError(
                "start", f"range {self.start!r}..{self.end!r} is not 0 <= start < end <= 1"
            )
        if self.kind == "exact":
            object.__setattr__(self, "cpus", tuple(self.cpus))
            if not self.cpus:
                raise ScenarioError("cpus", "is empty")
            if any(not isinstance(c, int) or isinstance(c, bool) or c < 0 for c in self.cpus):
                raise ScenarioError("cpus", f"{self.cpus!r} holds something not a CPU index")
            if len(set(self.cpus)) != len(self.cpus):
                raise ScenarioError("cpus", f"{self.cpus!r} repeats a CPU")

    # -- constructors --------------------------------------------------------------------

    @classmethod
    def llc(cls, index: int) -> Cpuset:
        """The usable CPUs of LLC ``index`` (global LLC numbering)."""
        return cls("llc", index=index)

    @classmethod
    def numa(cls, node: int) -> Cpuset:
        """The usable CPUs of NUMA node ``node``."""
        return cls("numa", index=node)

    @classmethod
    def range(cls, start: float, end: float) -> Cpuset:
        """The usable CPUs from fraction ``start`` to ``end`` (at least one CPU)."""
        return cls("range", start=float(start), end=float(end))

    @classmethod
    def disjoint(cls, index: int, of: int) -> Cpuset:
        """Slice ``index`` of ``of`` near-equal, non-overlapping slices of the usable CPUs."""
        return cls("disjoint", index=index, of=of)

    @classmethod
    def overlap(cls, index: int, of: int, frac: float) -> Cpuset:
        """Slice ``index`` of ``of``, grown by ``frac`` of a slice into its next neighbour
        (the last slice grows into its previous one), so neighbours share CPUs."""
        return cls("overlap", index=index, of=of, frac=float(frac))

    @classmethod
    def exact(cls, cpus: tuple[int, ...] | list[int] | set[int]) -> Cpuset:
        """Exactly these CPUs."""
        return cls("exact", cpus=tuple(sorted(cpus)) if isinstance(cpus, set) else tuple(cpus))

    # -- resolution ----------------------------------------------------------------------

    def resolve(self, topology: Topology) -> tuple[int, ...]:
        """The concrete, sorted CPU list on ``topology``.

        :raises ScenarioError: an index outside the topology, or too few usable CPUs.
        """
        usable = usable_cpus(topology)
        n = len(usable)
        if self.kind in ("llc", "numa"):
            what, count = (
                ("LLC", topology.nr_llcs) if self.kind == "llc" else ("node", topology.nodes)
            )
            if self.index >= count:
                raise ScenarioError(
                    "index", f"{what} {self.index} is outside the topology ({count} {what}s)"
                )
            attr = "llc" if self.kind == "llc" else "node"
            cpus = tuple(c.index for c in topology.cpus() if getattr(c, attr) == self.index)
            out = tuple(c for c in cpus if c in usable)
            if not out:
                raise ScenarioError(
                    "index", f"{what} {self.index} has no usable CPU (its CPUs {cpus})"
                )
            return out
        if self.kind == "exact":
            bad = [c for c in self.cpus if c >= topology.nr_cpus]
            if bad:
                raise ScenarioError(
                    "cpus", f"CPU {bad[0]} is outside the topology ({topology.nr_cpus} CPUs)"
                )
            return tuple(sorted(self.cpus))
        if self.kind == "range":
            # Both ends rounded the same way, so adjacent ranges (0-0.25, 0.25-1) never share a CPU.
            lo = min(_round(self.start * n), n - 1)
            hi = max(lo + 1, min(n, _round(self.end * n)))
            return usable[lo:hi]
        if self.of > n:
            raise ScenarioError("of", f"{self.of} slices of {n} usable CPUs leave a slice empty")
        lo, hi = _slice(n, self.index, self.of)
        if self.kind == "overlap":
            grow = max(1, math.ceil(self.frac * (hi - lo)))
            if self.index == self.of - 1:
                lo = max(0, lo - grow)
            else:
                hi = min(n, hi + grow)
        return usable[lo:hi]

    def __repr__(self) -> str:
        if self.kind in ("llc", "numa"):
            return f"Cpuset.{self.kind}({self.index})"
        if self.kind == "range":
            return f"Cpuset.range({self.start!r}, {self.end!r})"
        if self.kind == "disjoint":
            return f"Cpuset.disjoint({self.index}, {self.of})"
        if self.kind == "overlap":
            return f"Cpuset.overlap({self.index}, {self.of}, {self.frac!r})"
        return f"Cpuset.exact({list(self.cpus)!r})"

    def describe(self) -> str:
        """Short text for listings (``llc 0``, ``disjoint 1/2``, ``exact 0,1``)."""
        if self.kind in ("llc", "numa"):
            return f"{self.kind} {self.index}"
        if self.kind == "range":
            return f"range {self.start:g}-{self.end:g}"
        if self.kind == "disjoint":
            return f"disjoint {self.index}/{self.of}"
        if self.kind == "overlap":
            return f"overlap {self.index}/{self.of} +{self.frac:g}"
        return "exact " + ",".join(map(str, self.cpus))
