"""The VM and run shape a test asks for: the keywords of ``@schedlab_test.vm(...)``
(the ``schedlab`` marker), checked once, with one-line errors naming the field."""

from __future__ import annotations

import re
from dataclasses import dataclass, field, fields, replace
from typing import Any

from schedlab_shared.topology import TopologyError
from schedlab_shared.topology_presets import Shape, parse_shape

from .gauntlet import Constraints, GauntletError
from .marker import MARKER

__all__ = ("MARKER", "SpecError", "VmSpec", "spec_of")

#: Assertion overrides the guest's judge takes (the rest are monitor thresholds).
GUEST_LIMITS = ("fairness", "max_gap_ms")
_CONSTRAINTS = tuple(f.name for f in fields(Constraints))


class SpecError(ValueError):
    """A bad marker keyword; one line for the test's failure."""


@dataclass(frozen=True)
class VmSpec:
    """What one test runs on (defaults as ktstr's ``#[ktstr_test]`` where they fit a TCG host).

    :param topology: a preset name, ``1n2l4c1t`` or ``N,L,C,T``.
    :param scheduler: ``eevdf``, an example's name or a path; ``flags`` its named flags,
        ``sched_args`` its extra arguments (one shell-quoted string).
    :param duration: seconds the scenario runs (when the scenario sets none).
    :param workers: workers per cgroup where a cgroup leaves them unset.
    :param memory: guest MiB.
    :param watchdog_timeout: seconds: shorten the sched_ext watchdog once attached.
    :param asserts: overrides: ``fairness``, ``max_gap_ms`` and monitor thresholds by name.
    :param expect_error: a regular expression; the test passes only when the run fails or
        errors with a reason it matches.
    :param gauntlet: expand this test under ``--gauntlet``; ``presets`` limits the presets,
        ``required_flags``/``excluded_flags``/``gauntlet_flags`` the profiles, and the
        constraints (``min_llcs``... ``requires_smt``) prune presets.
    """

    topology: str = "1,1,2,1"
    scheduler: str = "eevdf"
    flags: tuple[str, ...] = ()
    sched_args: str = ""
    duration: float = 2.0
    workers: int = 2
    memory: int = 512
    watchdog_timeout: float | None = None
    asserts: dict[str, float] = field(default_factory=dict)
    expect_error: str | None = None
    timeout: float | None = None
    kernel: str | None = None
    engine: str = "auto"
    gauntlet: bool = True
    presets: tuple[str, ...] | None = None
    required_flags: tuple[str, ...] = ()
    excluded_flags: tuple[str, ...] = ()
    gauntlet_flags: tuple[str, ...] | None = None
    constraints: Constraints = field(default_factory=Constraints)

    @property
    def shape(self) -> Shape:
        return parse_shape(self.topology)

    def expect_re(self) -> re.Pattern[str] | None:
        return re.compile(self.expect_error, re.I) if self.expect_error else None


_TUPLES = ("flags", "required_flags", "excluded_flags", "presets", "gauntlet_flags")


def _tuple(name: str, v: Any) -> tuple[str, ...] | None:
    if v is None and name in ("presets", "gauntlet_flags"):
        return None
    if isinstance(v, str):
        v = [x for x in v.replace(",", " ").split() if x]
    if not isinstance(v, (list, tuple)) or not all(isinstance(x, str) for x in v):
        raise SpecError(f"{name}: want a list of names, got {v!r}")
    return tuple(v)


def spec_of(kwargs: dict[str, Any]) -> VmSpec:
    """A checked :class:`VmSpec` from marker keywords.

    :raises SpecError: an unknown keyword or a bad value (one line naming it).
    """
    known = {f.name for f in fields(VmSpec)} - {"constraints"}
    kw: dict[str, Any] = {}
    cons: dict[str, Any] = {}
    for k, v in kwargs.items():
        if k in _CONSTRAINTS:
            cons[k] = v
        elif k in known:
            kw[k] = _tuple(k, v) if k in _TUPLES else v
        else:
            allowed = ", ".join(sorted(known | set(_CONSTRAINTS)))
            raise SpecError(f"schedlab marker: unknown keyword {k!r} (known: {allowed})")
    try:
        spec = replace(VmSpec(), **kw, constraints=Constraints(**cons))
    except GauntletError as e:
        raise SpecError(str(e)) from None
    _check(spec)
    return spec


def _num(name: str, v: Any, lo: float, hi: float) -> None:
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not lo < v <= hi:
        raise SpecError(f"{name}: {v!r} is outside ({lo:g}, {hi:g}]")


def _check(s: VmSpec) -> None:
    try:
        s.shape  # noqa: B018  (parses: one line for a bad string)
    except TopologyError as e:
        raise SpecError(str(e)) from None
    for name in ("scheduler", "sched_args", "engine"):
        if not isinstance(getattr(s, name), str):
            raise SpecError(f"{name}: want a string, got {getattr(s, name)!r}")
    _num("duration", s.duration, 0, 3600)
    _num("memory", s.memory, 63, 1 << 20)
    if isinstance(s.workers, bool) or not isinstance(s.workers, int) or not 1 <= s.workers <= 256:
        raise SpecError(f"workers: {s.workers!r} is outside 1..256")
    if s.watchdog_timeout is not None:
        _num("watchdog_timeout", s.watchdog_timeout, 0, 30)
    if s.timeout is not None:
        _num("timeout", s.timeout, 0, 24 * 3600)
    if not isinstance(s.asserts, dict):
        raise SpecError(f"asserts: want a dict of name -> number, got {s.asserts!r}")
    for k, v in s.asserts.items():
        if not isinstance(k, str) or isinstance(v, bool) or not isinstance(v, (int, float)):
            raise SpecError(f"asserts: {k!r}={v!r} is not a name and a number")
    if s.expect_error is not None:
        try:
            s.expect_re()
        except (re.error, TypeError) as e:
            raise SpecError(
                f"expect_error: {s.expect_error!r} is not a regular expression ({e})"
            ) from None
    if not isinstance(s.gauntlet, bool):
        raise SpecError(f"gauntlet: want True or False, got {s.gauntlet!r}")
