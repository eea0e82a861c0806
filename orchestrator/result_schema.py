"""The fields of ``result.json`` that others read, defined once and checked on read.

The orchestrator writes the document (:mod:`orchestrator.result`); tests, benchmarks and
users read it back with :func:`load_result`, which refuses a document whose declared fields
are missing or of the wrong type (other fields pass unchecked). Each section is a frozen
dataclass; its type hints are the schema (``str``, ``int``, ``float``, ``bool``,
``X | None``, ``tuple[str, ...]`` and nested sections), so a field added here is written,
read and checked with no second list to keep in step. The ``scenario`` section's step
records are checked against their one definition, :mod:`guest.scenario.record`.

>>> sched = SchedulerResult(name="scx_qmap", origin="example", args=("-e", "100"), ops="qmap")
>>> SchedulerResult.from_dict(sched.to_dict()) == sched
True
"""

from __future__ import annotations

import dataclasses
import json
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from guest.scenario import record as scenario_record
from guest.schema import SchemaError
from schedlab_shared.host_pauses import PauseError, check_host_pauses
from schedlab_shared.monitor_schema import SchemaError as MonitorSchemaError
from schedlab_shared.monitor_schema import check_bpf

__all__ = (
    "VERDICTS",
    "ResultError",
    "SchedExitResult",
    "SchedStopResult",
    "SchedulerResult",
    "StallTask",
    "load_result",
    "validate_result",
)

VERDICTS = ("passed", "failed", "error")


class ResultError(ValueError):
    """A result document that does not match its schema: the field and what is wrong."""


@dataclass(frozen=True)
class _Section:
    """Base of the sections: ``to_dict`` and a checking ``from_dict`` from the type hints."""

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for f in dataclasses.fields(self):
            v = getattr(self, f.name)
            if isinstance(v, _Section):
                v = v.to_dict()
            elif isinstance(v, tuple):
                v = list(v)
            out[f.name] = v
        return out

    @classmethod
    def from_dict(cls, d: Any, where: str = "") -> Any:
        """The section read from ``d``; raises :class:`ResultError` naming the field."""
        where = where or cls.__name__
        if not isinstance(d, dict):
            raise ResultError(f"{where}: is {type(d).__name__}, want a map")
        hints = typing.get_type_hints(cls)
        values: dict[str, Any] = {}
        for f in dataclasses.fields(cls):
            path = f"{where}.{f.name}"
            if f.name not in d:
                has_default = (
                    f.default is not dataclasses.MISSING
                    or f.default_factory is not dataclasses.MISSING
                )
                if not has_default:
                    raise ResultError(f"{path}: missing")
                continue
            values[f.name] = _read(hints[f.name], d[f.name], path)
        return cls(**values)


def _read(hint: Any, v: Any, path: str) -> Any:
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(hint)
        if v is None and type(None) in args:
            return None
        (inner,) = [a for a in args if a is not type(None)]
        return _read(inner, v, path)
    if isinstance(hint, type) and issubclass(hint, _Section):
        return hint.from_dict(v, path)
    if origin is tuple:
        if not isinstance(v, list | tuple):
            raise ResultError(f"{path}: is {type(v).__name__}, want a list")
        item = typing.get_args(hint)[0]
        return tuple(_read(item, x, f"{path}[{i}]") for i, x in enumerate(v))
    ok = {
        str: isinstance(v, str),
        bool: isinstance(v, bool),
        int: isinstance(v, int) and not isinstance(v, bool),
        float: isinstance(v, int | float) and not isinstance(v, bool),
    }.get(hint)
    if ok is None:
        raise TypeError(f"{path}: no schema rule for {hint!r}")
    if not ok:
        raise ResultError(f"{path}: is {type(v).__name__}, want {hint.__name__}")
    return float(v) if hint is float else v


@dataclass(frozen=True)
class StallTask(_Section):
    """The task a watchdog stall names: ``comm[pid]``."""

    comm: str
    pid: int


@dataclass(frozen=True)
class SchedExitResult(_Section):
    """How the scheduler ended while the test ran (its SCHED_EXIT).

    :param kind: ``ERROR_STALL``, ``ERROR_BPF``, ``UNREG``... ("" when no reason was found).
    :param reason: the kernel's words (``runnable task stall``).
    :param message: the scheduler's or the watchdog's message (``test triggering error``).
    :param task: for a stall, the task that did not run.
    :param stall_s: for a stall, how long it did not run.
    :param trigger: ``died`` (the process exited) or ``disabled`` (sched_ext left enabled).
    :param exit_status: the process's status when known (``exited 0``).
    :param t_ns: the guest's CLOCK_BOOTTIME when it was seen.
    """

    kind: str
    reason: str
    message: str
    task: StallTask | None = None
    stall_s: float | None = None
    trigger: str = ""
    exit_status: str = ""
    t_ns: int = 0


@dataclass(frozen=True)
class SchedStopResult(_Section):
    """How the end-of-test stop went (its SCHED_STOP): ``clean``, ``killed``, ``exited``..."""

    status: str
    detached: bool
    killed: bool
    problems: tuple[str, ...] = ()
    wait_ms: float | None = None


@dataclass(frozen=True)
class SchedulerResult(_Section):
    """The ``scheduler`` section: what ran, whether it attached, how it ended.

    :param name: ``eevdf``, an example's name or the user's file name.
    :param origin: ``eevdf``, ``example`` or ``path``.
    :param args: its arguments (after argv[0]).
    :param ops: the sched_ext ops name it attached as (or, if it did not, the one expected).
    :param attached: it attached (sched_ext ``enabled`` with its ops).
    :param attach_ms: spawn to attached, in the guest.
    :param attach_status: ``attached``, ``died``, ``timed_out``, ``sysfs_absent``, ...;
        ``not_reported`` when the guest never said.
    :param attach_message: why it did not attach (its first output lines for ``died``).
    :param exit: its exit during the test, or None.
    :param stop: the end-of-test stop, or None.
    :param log: the file holding its stdout and stderr (``sched.log``), None if it wrote none.
    :param dump: the kernel's sched_ext dumps (``sched_ext_dump.log``), None if none.
    :param debug_dump: its own DEBUG DUMP cut from its log, None if it printed none.
    :param stopped_early: the host stopped the VM early because of :attr:`exit`.
    :param exit_to_stop_ms: from :attr:`exit` (guest clock) to the VM stopped (host clock).
    """

    name: str
    origin: str
    args: tuple[str, ...] = ()
    ops: str | None = None
    attached: bool = False
    attach_ms: float | None = None
    attach_status: str = "not_reported"
    attach_message: str = ""
    exit: SchedExitResult | None = None
    stop: SchedStopResult | None = None
    log: str | None = None
    dump: str | None = None
    debug_dump: str | None = None
    stopped_early: bool = False
    exit_to_stop_ms: float | None = None


@dataclass(frozen=True)
class _Top(_Section):
    """The top-level fields every reader relies on."""

    passed: bool
    verdict: str
    reasons: tuple[str, ...]
    scheduler: SchedulerResult = field(default_factory=lambda: SchedulerResult("eevdf", "eevdf"))


def _check_scenario(doc: dict[str, Any]) -> None:
    """``scenario``: the name, step records and backdrop record (guest.scenario.record)."""
    sc = doc.get("scenario")
    if sc is None:
        return
    if not isinstance(sc, dict) or not isinstance(sc.get("name", ""), str):
        raise ResultError("result.scenario: want a map with a name")
    for key, check in (
        ("steps", scenario_record.check_steps),
        ("backdrop", scenario_record.check_backdrop),
    ):
        if sc.get(key) is None:
            continue
        try:
            check(sc[key])
        except SchemaError as e:
            sep = "" if e.field.startswith("[") or not e.field else "."
            raise ResultError(f"result.scenario.{key}{sep}{e.field}: {e.why}") from None


def _check_monitor(doc: dict[str, Any]) -> None:
    """``monitor.bpf``: the BPF listing (schedlab_shared.monitor_schema.check_bpf)."""
    mon = doc.get("monitor")
    if not isinstance(mon, dict) or mon.get("bpf") is None:
        return
    try:
        check_bpf(mon["bpf"])
    except MonitorSchemaError as e:
        raise ResultError(f"result.monitor.{e}") from None


def _check_host_pauses(doc: dict[str, Any]) -> None:
    """``host_pauses``: when the host did not run the vCPUs (schedlab_shared.host_pauses)."""
    if doc.get("host_pauses") is None:
        return
    try:
        check_host_pauses(doc["host_pauses"], "result.host_pauses")
    except PauseError as e:
        raise ResultError(str(e)) from None


def validate_result(doc: Any) -> dict[str, Any]:
    """Check ``doc``'s declared fields; return it unchanged.

    :raises ResultError: the first bad field, named by its path (``result.scheduler.exit.kind``).
    """
    top = _Top.from_dict(doc, "result")
    _check_scenario(doc)
    _check_monitor(doc)
    _check_host_pauses(doc)
    if top.verdict not in VERDICTS:
        raise ResultError(f"result.verdict: {top.verdict!r} is not one of {', '.join(VERDICTS)}")
    if top.passed != (top.verdict == "passed"):
        raise ResultError(f"result.passed: {top.passed} contradicts verdict {top.verdict!r}")
    return doc


def load_result(path: Path) -> dict[str, Any]:
    """Read and check a ``result.json``.

    :raises ResultError: unreadable, not JSON, or a declared field wrong.
    """
    try:
        doc = json.loads(Path(path).read_text())
    except (OSError, ValueError) as exc:
        raise ResultError(f"{path}: {exc}") from None
    return validate_result(doc)
