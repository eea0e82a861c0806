"""The gauntlet: a test expanded over presets x scheduler flag profiles x kernels.

ktstr's rules (KTSTR.md §1.6): a profile is a subset of the scheduler definition's flags
whose ``requires`` are all in it, holding every required flag and no excluded one; its name
is its flags joined with ``+`` (``default`` when empty). A test's constraints prune presets.
Variants are named ``gauntlet/<test>/<preset>/<profile>[/<kernel>]``.

>>> from orchestrator.scheduler.examples import EXAMPLES
>>> [p.name for p in flag_profiles(EXAMPLES["scx_qmap"], among=("batch", "boost-nice"))]
['default', 'batch', 'batch+boost-nice']
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from itertools import combinations

from orchestrator.scheduler.definition import SchedulerDef
from schedlab_results.sidecar import profile_name
from schedlab_shared.topology_presets import PRESETS, Preset, Shape

__all__ = (
    "MAX_PROFILES",
    "Constraints",
    "GauntletError",
    "Profile",
    "Variant",
    "expand",
    "flag_profiles",
    "scheduler_fit",
)

#: Above this many profiles a test must narrow the flags (``gauntlet_flags=``): a power set
#: of scx_qmap's 17 flags is 131072 VMs.
MAX_PROFILES = 256


class GauntletError(ValueError):
    """A gauntlet that cannot be expanded; one line naming the test and the field."""


@dataclass(frozen=True)
class Profile:
    """A set of flags turned on together, in the definition's order."""

    flags: tuple[str, ...] = ()

    @property
    def name(self) -> str:
        return profile_name(self.flags)


def flag_profiles(
    sched: SchedulerDef,
    required: Iterable[str] = (),
    excluded: Iterable[str] = (),
    among: Iterable[str] | None = None,
) -> list[Profile]:
    """Every valid profile of ``sched``: smallest first, then in the definition's order.

    :param among: the flags whose power set is taken (default: all of the scheduler's).
    :raises GauntletError: an unknown flag, a required flag that is also excluded, or more
        than :data:`MAX_PROFILES` profiles.
    """
    order = [f.name for f in sched.flags]
    req, exc = tuple(dict.fromkeys(required)), set(excluded)
    pool = order if among is None else list(dict.fromkeys(among))
    for what, names in (("required_flags", req), ("excluded_flags", exc), ("gauntlet_flags", pool)):
        unknown = [n for n in names if n not in order]
        if unknown:
            known = ", ".join(order) or "none"
            raise GauntletError(
                f"{what}: {sched.name} has no flag {', '.join(unknown)} (flags: {known})"
            )
    both = exc.intersection(req)
    if both:
        raise GauntletError(f"flags {', '.join(sorted(both))} are both required and excluded")
    free = [n for n in order if n in pool and n not in exc and n not in req]
    if 2 ** len(free) > MAX_PROFILES * 4:
        raise GauntletError(
            f"{sched.name}: {len(free)} free flags make {2 ** len(free)} profiles; "
            f"name at most {MAX_PROFILES.bit_length() - 1} in gauntlet_flags= or exclude some"
        )
    requires = {f.name: set(f.requires) for f in sched.flags}
    out: list[Profile] = []
    for k in range(len(free) + 1):
        for combo in combinations(free, k):
            on = set(combo).union(req)
            if all(requires[n] <= on for n in on):
                out.append(Profile(tuple(n for n in order if n in on)))
    if len(out) > MAX_PROFILES:
        raise GauntletError(
            f"{sched.name}: {len(out)} profiles > {MAX_PROFILES}; narrow gauntlet_flags= "
            "or exclude flags"
        )
    return out


@dataclass(frozen=True)
class Constraints:
    """Where a test makes sense (ktstr's ``min/max_llcs``, ``_cpus``, ``_numa_nodes``,
    ``requires_smt``); LLCs and nodes count the whole machine. None: no upper bound."""

    min_llcs: int = 1
    max_llcs: int | None = None
    min_cpus: int = 1
    max_cpus: int | None = None
    min_nodes: int = 1
    max_nodes: int | None = None
    requires_smt: bool = False

    def __post_init__(self) -> None:
        for what in ("llcs", "cpus", "nodes"):
            lo, hi = getattr(self, f"min_{what}"), getattr(self, f"max_{what}")
            if isinstance(lo, bool) or not isinstance(lo, int) or lo < 1:
                raise GauntletError(f"min_{what}: must be an integer >= 1, got {lo!r}")
            if hi is not None and (isinstance(hi, bool) or not isinstance(hi, int) or hi < lo):
                raise GauntletError(f"max_{what}: must be None or an integer >= {lo}, got {hi!r}")
        if not isinstance(self.requires_smt, bool):
            raise GauntletError(f"requires_smt: must be a bool, got {self.requires_smt!r}")

    def violation(self, s: Shape) -> str | None:
        """Why shape ``s`` is out (one phrase), or None."""
        for what, have in (("llcs", s.llcs), ("cpus", s.nr_cpus), ("nodes", s.nodes)):
            lo, hi = getattr(self, f"min_{what}"), getattr(self, f"max_{what}")
            if have < lo or (hi is not None and have > hi):
                return f"{have} {what} outside {lo}..{hi if hi is not None else 'any'}"
        if self.requires_smt and not s.smt:
            return "no SMT"
        return None


def scheduler_fit(sched: SchedulerDef, s: Shape) -> str | None:
    """Why the scheduler's own constraints refuse ``s`` (any size), or None."""
    c = sched.topology
    for what, have in (("llcs", s.llcs), ("cpus", s.nr_cpus), ("nodes", s.nodes)):
        lo, hi = getattr(c, f"min_{what}"), getattr(c, f"max_{what}")
        if have < lo or (hi is not None and have > hi):
            return f"{sched.name} needs {lo}..{hi if hi is not None else 'any'} {what}"
    if c.requires_smt and not s.smt:
        return f"{sched.name} needs SMT"
    if s.nr_cpus % c.cpus_multiple_of:
        return f"{sched.name} needs a multiple of {c.cpus_multiple_of} CPUs"
    return None


@dataclass(frozen=True)
class Variant:
    """One gauntlet run."""

    test: str
    preset: Preset
    profile: Profile
    kernel: str | None = None
    features: frozenset[str] = field(default=frozenset(), compare=False)

    @property
    def id(self) -> str:
        parts = ["gauntlet", self.test, self.preset.name, self.profile.name]
        if self.kernel is not None:
            parts.append(self.kernel)
        return "/".join(parts)


def expand(
    test: str,
    sched: SchedulerDef,
    constraints: Constraints = Constraints(),
    *,
    presets: Sequence[str] | None = None,
    required: Iterable[str] = (),
    excluded: Iterable[str] = (),
    among: Iterable[str] | None = None,
    kernels: Sequence[str] = (),
) -> list[Variant]:
    """The variants of ``test``: presets the test and scheduler accept, times profiles,
    times ``kernels`` (none given: the kernel dimension is left out of the names).

    :param presets: preset names to consider (default: all 24, in ktstr's order).
    :raises GauntletError: an unknown preset or flag (one line).
    """
    names = list(PRESETS) if presets is None else list(presets)
    unknown = [n for n in names if n not in PRESETS]
    if unknown:
        raise GauntletError(f"{test}: no preset {', '.join(unknown)} ('schedlab topo list')")
    profiles = flag_profiles(sched, required, excluded, among)
    labels: list[str | None] = list(dict.fromkeys(kernels)) or [None]
    out = []
    for name in names:
        p = PRESETS[name]
        if constraints.violation(p.shape) or scheduler_fit(sched, p.shape):
            continue
        for prof in profiles:
            for k in labels:
                out.append(Variant(test, p, prof, k, p.features))
    return out
