"""The cgroup-spinners run parameters: a validated view of the run document.

The host no longer puts them on the kernel command line: they travel in the run document
(:mod:`guest.rundoc`) over the bulk port after SYS_RDY, under ``scenario`` (duration,
cgroups, workers), ``verdict`` (fairness, max_gap_ms) and ``hooks`` (wire_noise, crash).
:func:`guest.rundoc.validate` builds a :class:`RunSpec` from them; its checks are the ranges
below, and an error names the document field (``scenario.workers``, ``verdict.fairness``).

``scenario`` (required)
    The scenario name: ``cgroup-spinners``, a test hook of :data:`PROBES` (a run that
    must fail a verdict: :mod:`guest.probes`), or :data:`PLAN` for a run whose run document
    carries a scenario document (:mod:`guest.scenario.document`).
``duration`` (float seconds, default 2.0, 0 < d <= 3600)
    How long each worker spins.
``cgroups`` (int, default 2, 1..64)
    Number of cgroups ``cg0..cgN-1`` under ``/sys/fs/cgroup/schedlab``.
``workers`` (int, default 2, 1..256)
    Spinning workers per cgroup; at most :data:`MAX_TOTAL_WORKERS` over all cgroups.
``fairness`` (float, default 0.35, 0..1)
    Largest allowed CPU-time spread ``(max - min) / max`` among the workers of a cgroup.
``max_gap_ms`` (float ms, default 0 = no check)
    Largest allowed wall-clock gap between two work checkpoints of one worker.
``wire_noise`` (int, default 0, 0..100)
    Test hook: rounds of deliberately broken frames (garbage, bad crc, truncated, unknown
    type, oversize) the guest writes on the bulk port before the workload, to prove that the
    host counts and skips them while every real frame gets through.
``crash`` (``kernel``, ``init``, ``native`` or ``cgroup``, default none)
    Test hook: crash on purpose once the workload started: ``kernel`` panics the kernel
    (sysrq c), ``init`` raises in the init process, ``native`` makes it read address 0
    (SIGSEGV), to prove crashes are caught with their evidence; ``cgroup`` makes the
    kernel refuse the run's cgroups, to prove a setup failure is reported as one.

>>> RunSpec("cgroup-spinners", workers=3).workers
3
"""

from __future__ import annotations

from collections import namedtuple

TYPE_CHECKING = False  # typing and dataclasses cost ~1.5 s of guest startup under TCG
if TYPE_CHECKING:
    from typing import Any

__all__ = (
    "CRASHES",
    "FIELD_PATHS",
    "MAX_TOTAL_WORKERS",
    "PLAN",
    "PROBES",
    "SCENARIOS",
    "RunSpec",
    "SpecError",
)

CRASHES = ("", "kernel", "init", "native", "cgroup")
#: The RunSpec scenario of a run whose run document carries a scenario document
#: (:mod:`guest.scenario.document`); only cgroup-spinners has no document.
PLAN = "scenario"
#: Test hooks (:mod:`guest.probes`): the steady scenario changed so one verdict must fail,
#: and a tour of every work type, one step each.
PROBES = ("verdict-unfair", "verdict-starve", "verdict-escape", "work-tour")
SCENARIOS = ("cgroup-spinners", PLAN, *PROBES)
MAX_TOTAL_WORKERS = 1024  # each worker is a forked Python process in a small VM

#: RunSpec field -> where it lives in the run document (what an error names).
FIELD_PATHS = {
    "scenario": "scenario.kind",
    "duration": "scenario.duration",
    "cgroups": "scenario.cgroups",
    "workers": "scenario.workers",
    "fairness": "verdict.fairness",
    "max_gap_ms": "verdict.max_gap_ms",
    "wire_noise": "hooks.wire_noise",
    "crash": "hooks.crash",
}


class SpecError(ValueError):
    """A bad run document field.

    :param key: the offending field's path in the run document (``scenario.workers``), or
        ``""`` for the whole document.
    """

    def __init__(self, key: str, msg: str) -> None:
        super().__init__(f"{key}: {msg}" if key else msg)
        self.key = key


class RunSpec(
    namedtuple(
        "RunSpec",
        "scenario duration cgroups workers fairness max_gap_ms wire_noise crash",
        defaults=(2.0, 2, 2, 0.35, 0.0, 0, ""),
    )
):
    """A validated, immutable run spec (see the module docstring for the fields).

    Use ``spec._replace(...)`` for variants.

    :raises SpecError: a value of the wrong type or out of range.
    """

    __slots__ = ()
    scenario: str
    duration: float
    cgroups: int
    workers: int
    fairness: float
    max_gap_ms: float
    wire_noise: int
    crash: str

    def __new__(cls, *args: Any, **kwargs: Any) -> RunSpec:
        self = super().__new__(cls, *args, **kwargs)
        _check("scenario", self.scenario in SCENARIOS, f"unknown scenario {self.scenario!r}")
        _check_range("duration", self.duration, 0.0, 3600.0, low_open=True)
        _check_range("cgroups", self.cgroups, 1, 64, integer=True)
        _check_range("workers", self.workers, 1, 256, integer=True)
        total = self.cgroups * self.workers
        _check("workers", total <= MAX_TOTAL_WORKERS, f"{total} workers > {MAX_TOTAL_WORKERS}")
        _check_range("fairness", self.fairness, 0.0, 1.0)
        _check_range("max_gap_ms", self.max_gap_ms, 0.0, 3_600_000.0)
        _check_range("wire_noise", self.wire_noise, 0, 100, integer=True)
        _check(
            "crash",
            self.crash in CRASHES,
            f"unknown crash {self.crash!r} ({', '.join(CRASHES[1:])})",
        )
        return self

    def _replace(self, **changes: Any) -> RunSpec:
        """A copy with ``changes``, validated (namedtuple's own would skip the checks)."""
        return RunSpec(**{**self._asdict(), **changes})

    def as_dict(self) -> dict[str, Any]:
        """Plain map for a RESULT frame."""
        return dict(self._asdict())


def _check(field: str, ok: bool, msg: str) -> None:
    if not ok:
        raise SpecError(FIELD_PATHS[field], msg)


def _check_range(
    field: str, v: Any, lo: float, hi: float, low_open: bool = False, integer: bool = False
) -> None:
    # bool is an int subclass; NaN compares false both ways, so it fails the range check.
    ok = isinstance(v, int if integer else (int, float)) and not isinstance(v, bool)
    _check(field, ok, f"{v!r} is not {'an integer' if integer else 'a number'}")
    low_ok = v > lo if low_open else v >= lo
    rng = f"{'(' if low_open else '['}{lo}, {hi}]"
    _check(field, low_ok and v <= hi, f"{v!r} is outside {rng}")
