"""The run spec: what the guest runs, read from the kernel command line.

The host appends ``schedlab.<key>=<value>`` words to the kernel command line (build them
with :func:`to_cmdline`); the guest reads ``/proc/cmdline`` and parses them with
:func:`parse_cmdline`. The kernel ignores dotted parameters it does not know, so they
reach only ``/proc/cmdline``. Keys:

``schedlab.scenario`` (required)
    The scenario name: ``cgroup-spinners`` (:data:`PLAN` is only for run documents that
    carry a scenario document).
``schedlab.duration`` (float seconds, default 2.0, 0 < d <= 3600)
    How long each worker spins.
``schedlab.cgroups`` (int, default 2, 1..64)
    Number of cgroups ``cg0..cgN-1`` under ``/sys/fs/cgroup/schedlab``.
``schedlab.workers`` (int, default 2, 1..256)
    Spinning workers per cgroup; at most :data:`MAX_TOTAL_WORKERS` over all cgroups.
``schedlab.fairness`` (float, default 0.35, 0..1)
    Largest allowed CPU-time spread ``(max - min) / max`` among the workers of a cgroup.
``schedlab.max_gap_ms`` (float ms, default 0 = no check)
    Largest allowed wall-clock gap between two work checkpoints of one worker.
``schedlab.wire_noise`` (int, default 0, 0..100)
    Test hook: rounds of deliberately broken frames (garbage, bad crc, truncated, unknown
    type, oversize) the guest writes on the bulk port before the workload, to prove that the
    host counts and skips them while every real frame gets through.
``schedlab.crash`` (``kernel``, ``init``, ``native`` or ``cgroup``, default none)
    Test hook: crash on purpose once the workload started: ``kernel`` panics the kernel
    (sysrq c), ``init`` raises in the init process, ``native`` makes it read address 0
    (SIGSEGV), to prove crashes are caught with their evidence; ``cgroup`` makes the
    kernel refuse the run's cgroups, to prove a setup failure is reported as one.

Parsing is strict: an unknown ``schedlab.*`` key, a repeated key, a missing ``=``, or a
value that is malformed or out of range raises :class:`SpecError` naming the key.

>>> parse_cmdline("quiet schedlab.scenario=cgroup-spinners schedlab.workers=3").workers
3
"""

from __future__ import annotations

import math
from collections import namedtuple

TYPE_CHECKING = False  # typing and dataclasses cost ~1.5 s of guest startup under TCG
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

__all__ = (
    "KEY_CGROUPS",
    "KEY_DURATION",
    "KEY_FAIRNESS",
    "KEY_MAX_GAP_MS",
    "KEY_SCENARIO",
    "CRASHES",
    "KEY_CRASH",
    "KEY_WIRE_NOISE",
    "KEY_WORKERS",
    "MAX_TOTAL_WORKERS",
    "PLAN",
    "PREFIX",
    "SCENARIOS",
    "RunSpec",
    "SpecError",
    "parse_cmdline",
    "to_cmdline",
)

PREFIX = "schedlab."
KEY_SCENARIO = "schedlab.scenario"
KEY_DURATION = "schedlab.duration"
KEY_CGROUPS = "schedlab.cgroups"
KEY_WORKERS = "schedlab.workers"
KEY_FAIRNESS = "schedlab.fairness"
KEY_MAX_GAP_MS = "schedlab.max_gap_ms"
KEY_WIRE_NOISE = "schedlab.wire_noise"
KEY_CRASH = "schedlab.crash"
CRASHES = ("", "kernel", "init", "native", "cgroup")
#: The RunSpec scenario of a run whose run document carries a scenario document
#: (:mod:`guest.scenario.document`); only the command line's cgroup-spinners has no document.
PLAN = "scenario"
SCENARIOS = ("cgroup-spinners", PLAN)
MAX_TOTAL_WORKERS = 1024  # each worker is a forked Python process in a small VM


class SpecError(ValueError):
    """A bad run spec.

    :param key: the offending command-line key (or ``""`` for the whole line).
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
    """A validated, immutable run spec (see the module docstring for the keys).

    Fields: ``scenario: str``, ``duration: float``, ``cgroups: int``, ``workers: int``,
    ``fairness: float``, ``max_gap_ms: float``. Use ``spec._replace(...)`` for variants.

    :raises SpecError: a value out of range.
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
        _check(KEY_SCENARIO, self.scenario in SCENARIOS, f"unknown scenario {self.scenario!r}")
        _check_range(KEY_DURATION, self.duration, 0.0, 3600.0, low_open=True)
        _check_range(KEY_CGROUPS, self.cgroups, 1, 64)
        _check_range(KEY_WORKERS, self.workers, 1, 256)
        total = self.cgroups * self.workers
        _check(KEY_WORKERS, total <= MAX_TOTAL_WORKERS, f"{total} workers > {MAX_TOTAL_WORKERS}")
        _check_range(KEY_FAIRNESS, self.fairness, 0.0, 1.0)
        _check_range(KEY_MAX_GAP_MS, self.max_gap_ms, 0.0, 3_600_000.0)
        _check_range(KEY_WIRE_NOISE, self.wire_noise, 0, 100)
        _check(
            KEY_CRASH,
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


def _check(key: str, ok: bool, msg: str) -> None:
    if not ok:
        raise SpecError(key, msg)


def _check_range(key: str, v: float, lo: float, hi: float, low_open: bool = False) -> None:
    low_ok = v > lo if low_open else v >= lo
    rng = f"{'(' if low_open else '['}{lo}, {hi}]"
    _check(key, low_ok and v <= hi, f"{v!r} is outside {rng}")


def _parse_int(key: str, text: str) -> int:
    # int() would accept "+3", " 3", "3_0": the host only ever writes plain digits.
    _check(key, text.isascii() and text.isdigit(), f"{text!r} is not a decimal integer")
    return int(text)


def _parse_float(key: str, text: str) -> float:
    try:
        v = float(text)
    except ValueError:
        raise SpecError(key, f"{text!r} is not a number") from None
    _check(key, math.isfinite(v) and "_" not in text, f"{text!r} is not a finite number")
    return v


# key -> (RunSpec field, parser; None keeps the text)
_FIELDS: dict[str, tuple[str, Callable[[str, str], Any] | None]] = {
    KEY_SCENARIO: ("scenario", None),
    KEY_DURATION: ("duration", _parse_float),
    KEY_CGROUPS: ("cgroups", _parse_int),
    KEY_WORKERS: ("workers", _parse_int),
    KEY_FAIRNESS: ("fairness", _parse_float),
    KEY_MAX_GAP_MS: ("max_gap_ms", _parse_float),
    KEY_WIRE_NOISE: ("wire_noise", _parse_int),
    KEY_CRASH: ("crash", None),
}


def parse_cmdline(cmdline: str) -> RunSpec:
    """Parse the ``schedlab.*`` words of a kernel command line.

    :param cmdline: the text of ``/proc/cmdline``; other words are ignored, and so is
        everything after ``--`` (those words go to init's argv).
    :return: the validated spec.
    :raises SpecError: see the module docstring.
    """
    values: dict[str, Any] = {}
    for word in cmdline.split():
        if word == "--":
            break
        if not word.startswith(PREFIX):
            continue
        key, eq, text = word.partition("=")
        _check(key, key in _FIELDS, f"unknown key (known: {', '.join(_FIELDS)})")
        _check(key, bool(eq), "missing '=value'")
        name, conv = _FIELDS[key]
        _check(key, name not in values, "given twice")
        _check(key, text != "", "empty value")
        values[name] = text if conv is None else conv(key, text)
    _check(KEY_SCENARIO, "scenario" in values, "missing (required)")
    _check(
        KEY_SCENARIO, values["scenario"] != PLAN, "a scenario document travels in the run document"
    )
    return RunSpec(**values)


def to_cmdline(spec: RunSpec) -> list[str]:
    """Build the command-line words for a spec (the host side of :func:`parse_cmdline`).

    :return: e.g. ``["schedlab.scenario=cgroup-spinners", "schedlab.duration=2.0", ...]``.
    """
    words = []
    for key, (name, _) in _FIELDS.items():
        v = getattr(spec, name)
        if v == "":
            continue  # an unset text option: an empty value would not parse back
        words.append(f"{key}={v!r}" if isinstance(v, float) else f"{key}={v}")
    return words
