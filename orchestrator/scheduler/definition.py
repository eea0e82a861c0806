"""A scheduler under test, defined once: what to run, with which flags, on which topologies.

:class:`SchedulerDef` carries what ktstr's ``#[derive(Scheduler)]`` carries (name, binary,
default args, named flags with their args and the flags they require, sysctls, kernel
arguments, topology constraints) plus the sched_ext ops name it attaches as and its watchdog
timeout. Every field is validated on construction; a bad one raises :class:`DefinitionError`
naming the scheduler and the field. :data:`EEVDF` is the kernel's own scheduler: nothing runs.

>>> qmap = SchedulerDef(name="scx_qmap", binary="scx_qmap", ops="qmap",
...                     flags=(SchedFlag("bpf-error", ("-e", "100")),), watchdog_timeout_s=5)
>>> qmap.argv_tail(["bpf-error"], ["-v"])
('-e', '100', '-v')
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from orchestrator.scheduler.errors import DefinitionError
from schedlab_shared.topology import Topology

__all__ = ("EEVDF", "DefinitionError", "SchedFlag", "SchedulerDef", "Sysctl", "TopologyConstraints")

_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.+-]{0,63}$")
_FLAG_RE = re.compile(r"^[a-z][a-z0-9]*(-[a-z0-9]+)*$")
# bpf_obj_name_cpy() accepts alphanumerics, '_' and '.'; SCX_OPS_NAME_LEN is 128 with the NUL.
_OPS_RE = re.compile(r"^[A-Za-z0-9_.]{1,127}$")
_SYSCTL_RE = re.compile(r"^[a-z0-9_]+(\.[A-Za-z0-9_-]+)+$")
#: The kernel refuses a larger ``timeout_ms`` (SCX_WATCHDOG_MAX_TIMEOUT, 30 s; FACTS §7).
MAX_WATCHDOG_S = 30.0


def _arg_ok(value: object) -> bool:
    return isinstance(value, str) and value != "" and "\0" not in value and "\n" not in value


def _check_args(where: str, args: object) -> None:
    if not isinstance(args, tuple):
        raise DefinitionError(f"{where}: must be a tuple of strings, got {type(args).__name__}")
    for i, arg in enumerate(args):
        if not _arg_ok(arg):
            raise DefinitionError(f"{where}[{i}]: {arg!r} is not a non-empty one-line string")


@dataclass(frozen=True)
class Sysctl:
    """A sysctl the guest sets before the scheduler starts (``kernel.pid_max`` = ``32768``)."""

    key: str
    value: str

    def __post_init__(self) -> None:
        if not isinstance(self.key, str) or not _SYSCTL_RE.match(self.key):
            raise DefinitionError(
                f"sysctl key {self.key!r}: expected dotted names such as kernel.pid_max"
            )
        if not _arg_ok(self.value):
            raise DefinitionError(
                f"sysctl {self.key}: value {self.value!r} is not a non-empty one-line string"
            )

    @property
    def proc_path(self) -> str:
        """Where the guest writes it: ``/proc/sys/kernel/pid_max``."""
        return "/proc/sys/" + self.key.replace(".", "/")


@dataclass(frozen=True)
class SchedFlag:
    """A named switch of a scheduler: the args it adds and the flags it needs with it.

    :param name: kebab-case, unique within its scheduler (``stall-user``).
    :param args: appended to the argv when the flag is on.
    :param requires: names of flags that must be on too.
    :param help: one line for listings.
    """

    name: str
    args: tuple[str, ...] = ()
    requires: tuple[str, ...] = ()
    help: str = ""

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not _FLAG_RE.match(self.name):
            raise DefinitionError(f"flag {self.name!r}: name must be kebab-case (e.g. stall-user)")
        _check_args(f"flag {self.name}: args", self.args)
        if not isinstance(self.requires, tuple):
            raise DefinitionError(f"flag {self.name}: requires must be a tuple of flag names")
        if self.name in self.requires:
            raise DefinitionError(f"flag {self.name}: requires itself")


@dataclass(frozen=True)
class TopologyConstraints:
    """The topologies a scheduler can run on (LLCs and nodes are totals over the machine).

    ``cpus_multiple_of`` covers schedulers that pair CPUs (scx_pair needs an even count).
    A ``max_*`` of None means no upper bound.
    """

    min_llcs: int = 1
    max_llcs: int | None = None
    min_cpus: int = 1
    max_cpus: int | None = None
    min_nodes: int = 1
    max_nodes: int | None = None
    requires_smt: bool = False
    cpus_multiple_of: int = 1

    def __post_init__(self) -> None:
        for what in ("llcs", "cpus", "nodes"):
            lo, hi = getattr(self, f"min_{what}"), getattr(self, f"max_{what}")
            if not isinstance(lo, int) or isinstance(lo, bool) or lo < 1:
                raise DefinitionError(f"topology.min_{what}: must be an integer >= 1, got {lo!r}")
            if hi is not None and (not isinstance(hi, int) or isinstance(hi, bool) or hi < lo):
                raise DefinitionError(
                    f"topology.max_{what}: must be None or an integer >= "
                    f"min_{what} ({lo}), got {hi!r}"
                )
        if not isinstance(self.requires_smt, bool):
            raise DefinitionError(
                f"topology.requires_smt: must be a bool, got {self.requires_smt!r}"
            )
        m = self.cpus_multiple_of
        if not isinstance(m, int) or isinstance(m, bool) or m < 1:
            raise DefinitionError(f"topology.cpus_multiple_of: must be an integer >= 1, got {m!r}")

    def violation(self, topo: Topology) -> str | None:
        """Why ``topo`` does not fit, or None when it does."""
        counts = {"llcs": topo.nodes * topo.llcs, "cpus": topo.nr_cpus, "nodes": topo.nodes}
        for what, n in counts.items():
            lo, hi = getattr(self, f"min_{what}"), getattr(self, f"max_{what}")
            if n < lo or (hi is not None and n > hi):
                bound = f"{lo}..{hi}" if hi is not None else f">= {lo}"
                return f"needs {bound} {what}, topology {topo.spec} has {n}"
        if self.requires_smt and topo.threads < 2:
            return f"needs SMT (threads per core >= 2), topology {topo.spec} has 1"
        if topo.nr_cpus % self.cpus_multiple_of:
            return (
                f"needs a CPU count that is a multiple of {self.cpus_multiple_of}, "
                f"topology {topo.spec} has {topo.nr_cpus}"
            )
        return None


@dataclass(frozen=True)
class SchedulerDef:
    """One scheduler under test.

    :param name: what ``--scheduler`` and listings call it.
    :param binary: a built example's name (``scx_qmap``), an absolute host path, or None
        for :data:`EEVDF` (no sched_ext scheduler).
    :param ops: the sched_ext ops name it attaches as (``root/ops``); None when unknown.
    :param args: default args, always passed first.
    :param flags: named switches (:class:`SchedFlag`).
    :param sysctls: set in the guest before the scheduler starts.
    :param kargs: kernel command-line arguments it needs (``key`` or ``key=value``).
    :param topology: where it can run.
    :param watchdog_timeout_s: its sched_ext watchdog timeout, when known.
    :param description: one line for listings.
    """

    name: str
    binary: str | None
    ops: str | None = None
    args: tuple[str, ...] = ()
    flags: tuple[SchedFlag, ...] = ()
    sysctls: tuple[Sysctl, ...] = ()
    kargs: tuple[str, ...] = ()
    topology: TopologyConstraints = field(default_factory=TopologyConstraints)
    watchdog_timeout_s: float | None = None
    description: str = ""

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not _NAME_RE.match(self.name):
            raise DefinitionError(
                f"scheduler name {self.name!r}: use letters, digits and _.+- (at most 64)"
            )
        where = f"scheduler {self.name}"
        self._check_binary(where)
        if self.ops is not None and (not isinstance(self.ops, str) or not _OPS_RE.match(self.ops)):
            raise DefinitionError(
                f"{where}: ops {self.ops!r} is not a sched_ext ops name "
                f"(letters, digits, '_' and '.', at most 127)"
            )
        _check_args(f"{where}: args", self.args)
        self._check_flags(where)
        for i, s in enumerate(self.sysctls):
            if not isinstance(s, Sysctl):
                raise DefinitionError(f"{where}: sysctls[{i}] is not a Sysctl")
        _check_args(f"{where}: kargs", self.kargs)
        for i, k in enumerate(self.kargs):
            if any(c.isspace() for c in k):
                raise DefinitionError(f"{where}: kargs[{i}] {k!r} contains whitespace")
        if not isinstance(self.topology, TopologyConstraints):
            raise DefinitionError(f"{where}: topology is not a TopologyConstraints")
        t = self.watchdog_timeout_s
        if t is not None and (
            isinstance(t, bool) or not isinstance(t, int | float) or not 0 < t <= MAX_WATCHDOG_S
        ):
            raise DefinitionError(
                f"{where}: watchdog_timeout_s {t!r} must be in (0, "
                f"{MAX_WATCHDOG_S:g}] seconds or None"
            )
        if self.binary is None and (self.ops or self.args or self.flags):
            raise DefinitionError(f"{where}: binary None (EEVDF) cannot have ops, args or flags")

    def _check_binary(self, where: str) -> None:
        b = self.binary
        if b is None:
            return
        if not isinstance(b, str) or not b or "\0" in b:
            raise DefinitionError(f"{where}: binary {b!r} must be an example name or a path")
        if "/" in b and not b.startswith("/"):
            raise DefinitionError(f"{where}: binary {b!r}: a path must be absolute")
        if "/" not in b and not _NAME_RE.match(b):
            raise DefinitionError(f"{where}: binary {b!r} is not a built example name")

    def _check_flags(self, where: str) -> None:
        if not isinstance(self.flags, tuple):
            raise DefinitionError(f"{where}: flags must be a tuple of SchedFlag")
        names: set[str] = set()
        for i, f in enumerate(self.flags):
            if not isinstance(f, SchedFlag):
                raise DefinitionError(f"{where}: flags[{i}] is not a SchedFlag")
            if f.name in names:
                raise DefinitionError(f"{where}: flags[{i}]: duplicate flag {f.name!r}")
            names.add(f.name)
        for f in self.flags:
            for req in f.requires:
                if req not in names:
                    raise DefinitionError(f"{where}: flag {f.name}: requires unknown flag {req!r}")

    @property
    def is_eevdf(self) -> bool:
        """True for the kernel's default scheduler (nothing to run)."""
        return self.binary is None

    @property
    def is_path(self) -> bool:
        """True when ``binary`` is a host path rather than a built example."""
        return self.binary is not None and self.binary.startswith("/")

    def flag(self, name: str) -> SchedFlag:
        """The flag called ``name``; :class:`DefinitionError` lists the known ones."""
        for f in self.flags:
            if f.name == name:
                return f
        known = ", ".join(f.name for f in self.flags) or "none"
        raise DefinitionError(f"scheduler {self.name}: no flag {name!r} (flags: {known})")

    def argv_tail(self, flags: Iterable[str] = (), extra: Sequence[str] = ()) -> tuple[str, ...]:
        """The arguments after argv[0]: defaults, then each flag's args, then ``extra``.

        :param flags: flag names to turn on; each one's ``requires`` must be on too.
        :param extra: user arguments (``--sched-args``), last so they can override.
        """
        on = list(dict.fromkeys(flags))
        chosen = [self.flag(n) for n in on]
        for f in chosen:
            missing = [r for r in f.requires if r not in on]
            if missing:
                raise DefinitionError(
                    f"scheduler {self.name}: flag {f.name} requires {', '.join(missing)}"
                )
        out = [*self.args]
        for f in chosen:
            out.extend(f.args)
        out.extend(extra)
        return tuple(out)

    def fits(self, topo: Topology) -> str | None:
        """Why this scheduler cannot run on ``topo`` (prefixed with its name), or None."""
        why = self.topology.violation(topo)
        return f"{self.name} {why}" if why else None


#: The kernel's own scheduler (EEVDF): no sched_ext scheduler is loaded.
EEVDF = SchedulerDef(name="eevdf", binary=None, description="the kernel's default scheduler")
