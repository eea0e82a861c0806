"""The scheduler under test in the result: its section and what it says about the verdict.

Input: what the orchestrator asked for (:class:`SchedAsked`) and what the guest reported,
the collector's ``sched`` state (the first SCHED_ATTACH, SCHED_EXIT and SCHED_STOP
payloads, untrusted: every value is type-checked and bounded here). Output: the
:class:`~orchestrator.result_schema.SchedulerResult` section and :class:`SchedFinding` s,
each an ``error`` (the harness could not judge: it did not load, no sched_ext) or a
``failure`` (it was judged: it exited during the test, it would not stop), whose reason
starts with the scheduler's own words: the kernel's exit reason and message (the first
``scx_bpf_error`` line), or its first output lines when it died loading.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from guest.scx.exit_parse import SchedExit, extract_debug_dump
from schedlab_shared import run_layout

from .result_schema import SchedExitResult, SchedStopResult, SchedulerResult, StallTask

__all__ = (
    "ERROR",
    "FAILURE",
    "SchedAsked",
    "SchedFinding",
    "SchedReport",
    "cut_debug_dump",
    "findings",
    "section",
)

ERROR = "error"
FAILURE = "failure"
_TEXT_MAX = 8192  # characters kept of any guest string in the section
_REASON_MAX = 300
_HEAD_LINES = 3  # output lines a load failure's reason starts with
_LOG_SCAN = 16 << 20  # bytes of sched.log read for the DEBUG DUMP (its end)


@dataclass(frozen=True)
class SchedAsked:
    """What was asked to run: ``name``, ``origin`` (``eevdf``, ``example``, ``path``), the
    arguments after argv[0] and the ops name it should attach as (None if unknown)."""

    name: str = "eevdf"
    origin: str = "eevdf"
    args: tuple[str, ...] = ()
    ops: str | None = None

    @property
    def eevdf(self) -> bool:
        return self.origin == "eevdf"


@dataclass
class SchedReport:
    """What a run gathered about its scheduler, for :func:`section` (filled by the session).

    :param asked: what was asked to run.
    :param state: the collector's ``sched`` state at the end (None: never read).
    :param debug_dump: the file :func:`cut_debug_dump` wrote.
    :param stopped_early: the host stopped the VM because the scheduler exited.
    :param exit_to_stop_ms: the scheduler's exit (guest clock) to the VM stopped (host).
    """

    asked: SchedAsked = field(default_factory=SchedAsked)
    state: dict[str, Any] | None = None
    debug_dump: str | None = None
    stopped_early: bool = False
    exit_to_stop_ms: float | None = None

    def section(self, run_dir: Path) -> SchedulerResult:
        return section(
            self.asked, self.state, run_dir, debug_dump=self.debug_dump,
            stopped_early=self.stopped_early, exit_to_stop_ms=self.exit_to_stop_ms,
        )  # fmt: skip


@dataclass(frozen=True)
class SchedFinding:
    """One thing the scheduler's outcome says: ``kind`` :data:`ERROR` or :data:`FAILURE`."""

    kind: str
    reason: str


def _text(v: Any, limit: int = _TEXT_MAX) -> str:
    return v[:limit] if isinstance(v, str) else ""


def _num(v: Any) -> float | None:
    return float(v) if isinstance(v, int | float) and not isinstance(v, bool) else None


def _one_line(text: str, limit: int = _REASON_MAX) -> str:
    s = " ".join(text.split())
    return s if len(s) <= limit else s[: limit - 3] + "..."


def _exit(payload: Any) -> SchedExitResult | None:
    if not isinstance(payload, dict):
        return None
    e = SchedExit.from_map(payload.get("exit"))
    task = StallTask(e.task.comm, e.task.pid) if e.task is not None else None
    t_ns = payload.get("t_ns")
    return SchedExitResult(
        kind=e.kind,
        reason=e.reason,
        message=e.message,
        task=task,
        stall_s=e.stall_s,
        trigger=_text(payload.get("trigger"), 32),
        exit_status=_text(payload.get("exit_status"), 128),
        t_ns=t_ns if isinstance(t_ns, int) and not isinstance(t_ns, bool) and t_ns >= 0 else 0,
    )


def _stop(payload: Any) -> SchedStopResult | None:
    if not isinstance(payload, dict):
        return None
    problems = payload.get("problems")
    problems = problems if isinstance(problems, list) else []
    return SchedStopResult(
        status=_text(payload.get("status"), 32),
        detached=payload.get("detached") is True,
        killed=payload.get("killed") is True,
        problems=tuple(_text(p, 512) for p in problems[:16] if isinstance(p, str)),
        wait_ms=_num(payload.get("wait_ms")),
    )


def section(
    asked: SchedAsked,
    state: dict[str, Any] | None,
    run_dir: Path,
    *,
    debug_dump: str | None = None,
    stopped_early: bool = False,
    exit_to_stop_ms: float | None = None,
) -> SchedulerResult:
    """The ``scheduler`` section from the collector's ``sched`` state (None: none reported)."""
    state = state if isinstance(state, dict) else {}
    raw_attach = state.get("attach")
    attach = raw_attach if isinstance(raw_attach, dict) else {}
    status = _text(attach.get("status"), 32) or ("" if asked.eevdf else "not_reported")
    attached = attach.get("attached") is True and status == "attached"
    ops = _text(attach.get("ops"), 128) if attached else ""
    log = run_dir / run_layout.SCHED_LOG
    dump = run_dir / run_layout.SCHED_EXT_DUMP
    return SchedulerResult(
        name=asked.name,
        origin=asked.origin,
        args=tuple(asked.args),
        ops=ops or asked.ops,
        attached=attached,
        attach_ms=_num(attach.get("attach_ms")) if attached else None,
        attach_status=status,
        attach_message=_text(attach.get("message")),
        exit=_exit(state.get("exit")),
        stop=_stop(state.get("stop")),
        log=log.name if _nonempty(log) else None,
        dump=dump.name if _nonempty(dump) else None,
        debug_dump=debug_dump,
        stopped_early=stopped_early,
        exit_to_stop_ms=exit_to_stop_ms,
    )


def _nonempty(path: Path) -> bool:
    try:
        return path.stat().st_size > 0
    except OSError:
        return False


def _without_debug_dump(text: str) -> str:
    """The output without its ``DEBUG DUMP`` block (kept apart: sched_debug_dump.log); what
    follows it, the ``EXIT:`` line, is then what the reason starts with."""
    lines = text.splitlines()
    if "DEBUG DUMP" not in lines:
        return text
    i = lines.index("DEBUG DUMP")
    rules = [j for j in range(i + 1, len(lines)) if lines[j].startswith("=" * 80)]
    end = rules[1] + 1 if len(rules) >= 2 else len(lines)
    return "\n".join(lines[:i] + lines[end:])


def _load_failure(s: SchedulerResult) -> str:
    """``<its first output lines> | ... (<name> <how it ended> before attaching)``."""
    text = s.attach_message
    trailer = ""
    if "\n-- " in text:
        text, trailer = text.rsplit("\n-- ", 1)
    elif text.startswith(f"{s.name} "):
        text, trailer = "", text
    lines = [ln.strip() for ln in _without_debug_dump(text).splitlines() if ln.strip()]
    head = " | ".join(lines[:_HEAD_LINES]) + (" | ..." if len(lines) > _HEAD_LINES else "")
    if not head:
        return _one_line(trailer or f"{s.name} exited before attaching to sched_ext")
    return _one_line(f"{head} ({trailer})" if trailer else head, 2 * _REASON_MAX)


def _exit_reason(s: SchedulerResult) -> str:
    e = s.exit
    assert e is not None
    words = f"{e.reason}: {e.message}" if e.reason and e.message else (e.reason or e.message)
    how = "was disabled" if e.trigger == "disabled" else "exited"
    status = f", {e.exit_status}" if e.exit_status else ""
    if not words:
        return _one_line(f"{s.name} {how} during the test with no reason given{status}")
    return _one_line(f"{words} ({s.name} {how} during the test{status})")


def findings(s: SchedulerResult) -> list[SchedFinding]:
    """What the section says about the verdict, the scheduler's own words first."""
    if s.origin == "eevdf":
        return []
    out: list[SchedFinding] = []
    st = s.attach_status
    if st == "died":
        out.append(SchedFinding(ERROR, _load_failure(s)))
    elif st == "not_reported":
        out.append(SchedFinding(ERROR, f"the guest never reported whether {s.name} attached"))
    elif st != "attached":
        first = s.attach_message.splitlines()[0] if s.attach_message else st
        out.append(SchedFinding(ERROR, _one_line(first)))
    if s.exit is not None:
        out.append(SchedFinding(FAILURE, _exit_reason(s)))
    if s.stop is not None:
        out += [SchedFinding(FAILURE, _one_line(f"{s.name} {p}")) for p in s.stop.problems]
    return out


def cut_debug_dump(run_dir: Path) -> str | None:
    """Write the scheduler's own DEBUG DUMP block from ``sched.log`` to its own file.

    :return: that file's name, or None when the log holds no DEBUG DUMP.
    """
    try:
        with open(run_dir / run_layout.SCHED_LOG, "rb") as f:
            f.seek(0, 2)
            f.seek(max(0, f.tell() - _LOG_SCAN))
            text = f.read().decode("utf-8", "replace")
    except OSError:
        return None
    block = extract_debug_dump(text)
    if not block:
        return None
    (run_dir / run_layout.SCHED_DEBUG_DUMP).write_text(block + "\n")
    return run_layout.SCHED_DEBUG_DUMP
