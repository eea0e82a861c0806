"""The work types and their parameters: one table for the host model and the guest (a contract).

:data:`TABLE` maps a work type's name to its parameters (with defaults and bounds), its group
and a one-line description. The host model checks a test's work types against it when the
test is built (a grouped type needs a worker count divisible by its group size), the guest's
scenario document is checked against it again, and the functions that do the work
(:data:`guest.worktypes.KINDS`, same names) take their defaults from it. Standard library
only.

Parameters are :class:`Param` (``kind`` ``int``, ``float``, ``bool`` or ``str``; ``lo``/``hi``
bound a number, ``choices`` a string). A group is how many workers act together: a constant,
or ``(param, add)`` meaning ``params[param] + add``; workers ``index`` ``g*size .. g*size+size-1``
of a cgroup form group ``g`` and rank ``index % size`` within it.

>>> defaults("futex_fan_out")
{'fan_out': 4, 'spin_iters': 1024}
>>> group_size("futex_fan_out", {"fan_out": 3})
4
"""

from __future__ import annotations

from collections import namedtuple

TYPE_CHECKING = False  # typing costs ~0.4 s of guest startup under TCG
if TYPE_CHECKING:
    from typing import Any

__all__ = (
    "ASYMMETRIC",
    "MAX_GROUP",
    "SEQUENCE_PHASES",
    "TABLE",
    "Param",
    "WorkDef",
    "defaults",
    "group_size",
    "parse_phases",
    "validate",
    "with_defaults",
)

#: Largest group (the native fan-out and mutex state holds 32 ranks).
MAX_GROUP = 32
#: Types whose workers play different roles (a messenger and receivers) or run a program:
#: spreads across their workers (fairness, throughput) say nothing about the scheduler.
ASYMMETRIC = frozenset({"futex_fan_out", "fan_out_compute", "custom", "payload"})
#: Phase kinds of ``sequence``.
SEQUENCE_PHASES = ("spin", "sleep", "yield", "io")


class Param(namedtuple("Param", "kind lo hi default choices", defaults=(None, None, None, ()))):
    """One parameter: ``kind`` is ``int``, ``float``, ``bool`` or ``str``."""

    __slots__ = ()


#: A work type: ``params`` {name: Param}, ``group`` (int or (param, add)), ``doc``.
WorkDef = namedtuple("WorkDef", "params group doc")

_ITERS = Param("int", 0, 1 << 24, 1024)


def _iters(default: int = 1024) -> Param:
    return Param("int", 0, 1 << 24, default)


TABLE: dict[str, WorkDef] = {
    "spin": WorkDef(
        {"unit_iters": Param("int", 1, 1 << 24, 1024)}, 1, "tight CPU spin in fixed work units"
    ),
    "yield_heavy": WorkDef({"spin_iters": _iters(0)}, 1, "sched_yield() loop"),
    "mixed": WorkDef({"spin_iters": _ITERS}, 1, "spin then yield, per unit"),
    "io_sync": WorkDef(
        {"bytes": Param("int", 1, 16 << 20, 65536), "sleep_us": Param("int", 0, 10_000_000, 100)},
        1,
        "write and fdatasync a block, then sleep",
    ),
    "bursty": WorkDef(
        {
            "burst_ms": Param("float", 0.1, 60_000.0, 50.0),
            "sleep_ms": Param("float", 0.0, 60_000.0, 100.0),
        },
        1,
        "spin bursts separated by sleeps (timer wake latency)",
    ),
    "pipe_io": WorkDef({"burst_iters": _ITERS}, 2, "pipe ping-pong between a pair"),
    "futex_ping_pong": WorkDef({"spin_iters": _ITERS}, 2, "futex ping-pong between a pair"),
    "cache_pressure": WorkDef(
        {"size_kb": Param("int", 1, 1 << 20, 32), "stride": Param("int", 1, 1 << 20, 64)},
        1,
        "strided read-modify-write over a buffer",
    ),
    "cache_yield": WorkDef(
        {"size_kb": Param("int", 1, 1 << 20, 32), "stride": Param("int", 1, 1 << 20, 64)},
        1,
        "cache pressure, yielding after each pass",
    ),
    "cache_pipe": WorkDef(
        {"size_kb": Param("int", 1, 1 << 20, 32), "burst_iters": _ITERS},
        2,
        "cache pressure plus pipe ping-pong between a pair",
    ),
    "futex_fan_out": WorkDef(
        {"fan_out": Param("int", 1, MAX_GROUP - 1, 4), "spin_iters": _ITERS},
        ("fan_out", 1),
        "a messenger wakes fan_out receivers at once",
    ),
    "fan_out_compute": WorkDef(
        {
            "fan_out": Param("int", 1, MAX_GROUP - 1, 4),
            "cache_kb": Param("int", 1, 1 << 16, 256),
            "ops": Param("int", 1, 1000, 5),
            "sleep_us": Param("int", 0, 10_000_000, 100),
        },
        ("fan_out", 1),
        "fan-out wakeups, each receiver multiplies matrices",
    ),
    "sequence": WorkDef(
        {"phases": Param("str", default="spin:100,sleep:50,yield:50,io:50")},
        1,
        "a loop of spin/sleep/yield/io phases (kind:ms, comma-separated)",
    ),
    "fork_exit": WorkDef({}, 1, "fork a child that exits at once, reap it"),
    "nice_sweep": WorkDef({"spin_iters": _ITERS}, 1, "spin while stepping nice through -20..19"),
    "affinity_churn": WorkDef({"spin_iters": _ITERS}, 1, "spin on each allowed CPU in turn"),
    "policy_churn": WorkDef(
        {"spin_iters": _ITERS, "rt": Param("bool", default=False)},
        1,
        "spin while cycling SCHED_OTHER/BATCH/IDLE (and FIFO/RR with rt)",
    ),
    "page_fault_churn": WorkDef(
        {
            "region_kb": Param("int", 4, 1 << 22, 4096),
            "touches": Param("int", 1, 1 << 20, 256),
            "spins": _iters(64),
        },
        1,
        "fault pages in, spin between touches, drop them",
    ),
    "mutex_contention": WorkDef(
        {
            "contenders": Param("int", 2, MAX_GROUP, 4),
            "hold_iters": _iters(256),
            "work_iters": _ITERS,
        },
        ("contenders", 0),
        "contenders share one futex mutex",
    ),
    "custom": WorkDef(
        {
            "callable": Param("str", default=""),
            "command": Param("str", default=""),
            "metrics": Param("str", default="none", choices=("none", "json", "kv", "stress-ng")),
        },
        1,
        "a Python callable (module:function) or an external command",
    ),
    "payload": WorkDef(
        {
            "name": Param("str", default="stress-ng"),
            "args": Param("str", default="--cpu 1 --metrics-brief"),
            "metrics": Param(
                "str", default="stress-ng", choices=("none", "json", "kv", "stress-ng")
            ),
        },
        1,
        "a program sent with the run's inputs (stress-ng first), output and metrics kept",
    ),
}


def defaults(name: str) -> dict[str, Any]:
    """The default parameters of a work type (KeyError for an unknown one)."""
    return {k: p.default for k, p in TABLE[name].params.items()}


def with_defaults(name: str, given: dict[str, Any] | None) -> dict[str, Any]:
    """``given`` over the defaults (already-checked parameters; unknown ones are dropped)."""
    out = defaults(name)
    for k, v in (given or {}).items():
        if k in out:
            out[k] = v
    return out


def group_size(name: str, params: dict[str, Any] | None = None) -> int:
    """How many workers of ``name`` act together with these parameters (defaults filled in)."""
    g = TABLE[name].group
    if isinstance(g, int):
        return g
    key, add = g
    return int(with_defaults(name, params)[key]) + add


def validate(name: str, params: dict[str, Any]) -> None:
    """Checks across parameters, after each one was checked against its :class:`Param`.

    :raises ValueError: ``sequence`` phases that do not parse; a ``custom`` type with both or
        neither of ``callable`` and ``command``, or a callable that is not ``module:function``;
        a ``payload`` without a name.
    """
    if name == "sequence":
        parse_phases(params["phases"])
    elif name == "custom":
        if bool(params["callable"]) == bool(params["command"]):
            raise ValueError("give exactly one of callable (module:function) and command")
        mod, _, fn = params["callable"].partition(":")
        if params["callable"] and not (mod and fn):
            raise ValueError(f"callable {params['callable'][:60]!r} is not module:function")
    elif name == "payload" and not params["name"]:
        raise ValueError("payload: name is empty")


def parse_phases(text: str) -> list[tuple[str, float]]:
    """``"spin:100,sleep:50"`` -> ``[("spin", 100.0), ("sleep", 50.0)]`` (milliseconds).

    :raises ValueError: an unknown phase kind, a bad or non-positive duration, no phase, or
        more than 32 phases.
    """
    out = []
    for part in text.split(","):
        kind, sep, ms = part.strip().partition(":")
        if kind not in SEQUENCE_PHASES or not sep:
            raise ValueError(
                f"phase {part.strip()[:40]!r}: want kind:ms, kind one of "
                f"{', '.join(SEQUENCE_PHASES)}"
            )
        try:
            v = float(ms)
        except ValueError:
            raise ValueError(f"phase {part.strip()[:40]!r}: {ms[:20]!r} is not a number") from None
        if not 0 < v <= 60_000:
            raise ValueError(f"phase {part.strip()[:40]!r}: duration outside (0, 60000] ms")
        out.append((kind, v))
    if not out or len(out) > 32:
        raise ValueError(f"{len(out)} phases: want 1..32")
    return out
