"""Why a sched_ext scheduler ended, parsed from the kernel's words and the scheduler's own.

Where an exit shows (``kernel/sched/ext/ext.c`` and ``tools/sched_ext/include/scx/
user_exit_info.h`` in 7.2):

- the kernel log on disable: ``sched_ext: BPF scheduler "<ops>" disabled (<reason>)``
  (``BPF sub-scheduler`` for a sub-scheduler; pr_err for error kinds, pr_info otherwise),
  then for error kinds ``sched_ext: <ops>: <msg>`` and the backtrace, one frame per record;
- the kernel log on enable: ``sched_ext: BPF scheduler "<ops>" enabled[ (partial)]``;
- the scheduler's stderr (``UEI_REPORT``): an optional ``DEBUG DUMP`` block, then
  ``EXIT: <reason>[ (<msg>)]``;
- the watchdog's message: ``<comm>[<pid>] failed to run for <s>.<ms>s``, or
  ``watchdog failed to check in for <s>.<ms>s`` when the watchdog itself starved;
- the ``sched_ext_dump`` tracepoint: one trace_pipe line per dump line.

>>> p = KmsgExitParser()
>>> for ln in ('sched_ext: BPF scheduler "qmap" disabled (runnable task stall)',
...            'sched_ext: qmap: kworker/0:1[42] failed to run for 5.012s'):
...     p.feed(ln)
>>> e = p.result()
>>> (e.kind, e.task, e.stall_s)
('ERROR_STALL', Task(comm='kworker/0:1', pid=42), 5.012)

Pure and stdlib only, without ``re`` (its import costs time under TCG); the host imports it.
"""

from __future__ import annotations

from collections import namedtuple

TYPE_CHECKING = False  # typing costs guest startup time under TCG
if TYPE_CHECKING:
    from typing import Any

__all__ = (
    "ERROR_MIN",
    "EXIT_KINDS",
    "KmsgEvent",
    "KmsgExitParser",
    "SchedExit",
    "Task",
    "combine",
    "extract_debug_dump",
    "kind_of",
    "parse_exit_line",
    "parse_kmsg_line",
    "parse_stall",
    "strip_kmsg_prefix",
    "trace_dump_lines",
)

#: ``enum scx_exit_kind`` value -> (name, reason as ``scx_exit_reason()`` words it in 7.2).
EXIT_KINDS: dict[int, tuple[str, str]] = {
    64: ("UNREG", "unregistered from user space"),
    65: ("UNREG_BPF", "unregistered from BPF"),
    66: ("UNREG_KERN", "unregistered from the main kernel"),
    67: ("SYSRQ", "disabled by sysrq-S"),
    68: ("PARENT", "parent exiting"),
    1024: ("ERROR", "runtime error"),
    1025: ("ERROR_BPF", "scx_bpf_error"),
    1026: ("ERROR_STALL", "runnable task stall"),
}
#: Kinds from this value up are errors (``SCX_EXIT_ERROR``): the kernel dumps state for them.
ERROR_MIN = 1024
# Earlier spellings: "BPF scheduler unregistered" (6.12-), "Scheduler ..." (before 6.12).
_ALIASES = {
    "BPF scheduler unregistered": 64,
    "Scheduler unregistered from user space": 64,
    "Scheduler unregistered from BPF": 65,
    "Scheduler unregistered from the main kernel": 66,
}
_BY_REASON = {reason: code for code, (_, reason) in EXIT_KINDS.items()} | _ALIASES
_REASONS_LONGEST_FIRST = sorted(_BY_REASON, key=len, reverse=True)
_COMM_MAX = 15  # TASK_COMM_LEN - 1
_BACKTRACE_MAX = 64
_FRAME_MAX = 256  # characters of one backtrace frame
_TEXT_MAX = 4096  # characters of a message (SCX_EXIT_MSG_LEN is 1024)
_NAME_MAX = 256  # characters of a reason, an ops name, a comm
_DUMP_RULE = "=" * 80
_STALL = " failed to run for "
_WATCHDOG_STALL = "watchdog failed to check in for "


#: The task a stall names: ``comm`` (str), ``pid`` (int).
Task = namedtuple("Task", "comm pid")


def kind_of(reason: str) -> tuple[str, int]:
    """Kind name and value of a reason string; ``("", -1)`` if the reason is unknown."""
    code = _BY_REASON.get(reason.strip(), -1)
    return (EXIT_KINDS[code][0] if code in EXIT_KINDS else "", code)


def _seconds(text: str) -> float | None:
    """``5.012s...`` -> 5.012; None unless digits (with one dot) are followed by ``s``."""
    n = 0
    while n < len(text) and (text[n].isdigit() or text[n] == "."):
        n += 1
    num = text[:n]
    if not num or num.count(".") > 1 or num[0] == "." or text[n : n + 1] != "s":
        return None
    return float(num)


def parse_stall(msg: str) -> tuple[Task | None, float] | None:
    """The task and seconds of a watchdog message, or None if ``msg`` is not one.

    ``kworker/0:1[42] failed to run for 5.012s`` -> ``(Task("kworker/0:1", 42), 5.012)``;
    ``watchdog failed to check in for 3.000s`` -> ``(None, 3.0)``. A comm may hold any
    character, brackets and spaces included: the pid is the last ``[digits]`` before the
    phrase.
    """
    i = msg.find(_STALL)
    if i < 0:
        j = msg.find(_WATCHDOG_STALL)
        secs = None if j < 0 else _seconds(msg[j + len(_WATCHDOG_STALL) :])
        return None if secs is None else (None, secs)
    secs = _seconds(msg[i + len(_STALL) :])
    if secs is None:
        return None
    head = msg[:i]
    k = head.rfind("[")
    task = None
    if head.endswith("]") and k > 0 and head[k + 1 : -1].isdigit():
        comm = head[:k]
        if len(comm) > _COMM_MAX and ": " in comm:  # a whole log line: drop its prefixes
            comm = comm.rsplit(": ", 1)[1]
        task = Task(comm[:64], int(head[k + 1 : -1]))
    return task, secs


class SchedExit(
    namedtuple(
        "SchedExit",
        "kind code reason message ops task stall_s source backtrace",
        defaults=("", -1, "", "", "", None, None, "", ()),
    )
):
    """How a scheduler ended (an immutable named tuple).

    :param kind: ``EXIT_KINDS`` name (``ERROR_STALL``, ...), ``""`` when the reason is unknown.
    :param code: ``enum scx_exit_kind`` value, -1 when unknown.
    :param reason: the reason as written (``runnable task stall``).
    :param message: the exit message (``test triggering error``), possibly empty.
    :param ops: the scheduler's ops name, when the kernel log named it.
    :param task: the :data:`Task` a stall names, else None.
    :param stall_s: how long that task (or the watchdog) did not run, else None.
    :param source: where the reason was read: ``kmsg``, ``stderr`` or ``kmsg+stderr``.
    :param backtrace: the kernel's backtrace frames (``scx_watchdog_workfn+0x5c/0x90``).
    """

    __slots__ = ()

    @property
    def error(self) -> bool:
        """An error exit (``SCX_EXIT_ERROR`` and above), as opposed to an unregistration."""
        return self.code >= ERROR_MIN

    def headline(self) -> str:
        """One line for the top of a failure: the reason and the scheduler's own message."""
        return f"{self.reason}: {self.message}" if self.message else self.reason

    def as_map(self) -> dict[str, Any]:
        """Plain map for a frame payload (:meth:`from_map` reads it back); ``task`` and
        ``stall_s`` are left out when None.
        """
        m: dict[str, Any] = {
            "kind": self.kind,
            "code": self.code,
            "reason": self.reason,
            "message": self.message,
            "ops": self.ops,
            "source": self.source,
            "backtrace": list(self.backtrace),
        }
        if self.task is not None:
            m["task"] = {"comm": self.task.comm, "pid": self.task.pid}
        if self.stall_s is not None:
            m["stall_s"] = self.stall_s
        return m

    @classmethod
    def from_map(cls, m: Any) -> SchedExit:
        """Rebuild from :meth:`as_map` output received from the guest (untrusted).

        Wrong types become defaults, strings are cut to 4096 characters, the backtrace to
        64 frames.
        """
        m = m if isinstance(m, dict) else {}

        def text(key: str, cap: int = _NAME_MAX) -> str:
            v = m.get(key)
            return v[:cap] if isinstance(v, str) else ""

        code = m.get("code")
        code = code if isinstance(code, int) and not isinstance(code, bool) else -1
        t = m.get("task")
        task = None
        if isinstance(t, dict) and isinstance(t.get("comm"), str):
            pid = t.get("pid")
            if isinstance(pid, int) and not isinstance(pid, bool):
                task = Task(t["comm"][:64], pid)
        stall = m.get("stall_s")
        stall = (
            float(stall) if isinstance(stall, int | float) and not isinstance(stall, bool) else None
        )
        bt = m.get("backtrace")
        frames = (
            tuple(f[:_FRAME_MAX] for f in bt[:_BACKTRACE_MAX] if isinstance(f, str))
            if isinstance(bt, list)
            else ()
        )
        return cls(
            text("kind"), code, text("reason"), text("message", _TEXT_MAX), text("ops"), task, stall,
            text("source"), frames,
        )  # fmt: skip


def _make(reason: str, message: str, ops: str, source: str, backtrace: tuple = ()) -> SchedExit:
    reason, message, ops = reason[:_NAME_MAX], message[:_TEXT_MAX], ops[:_NAME_MAX]
    kind, code = kind_of(reason)
    stall = parse_stall(message)
    task, secs = stall if stall is not None else (None, None)
    return SchedExit(kind, code, reason, message, ops, task, secs, source, tuple(backtrace))


def parse_exit_line(line: str) -> tuple[str, str] | None:
    """``EXIT: <reason> (<msg>)`` (the scheduler's stderr) -> ``(reason, msg)``, else None.

    A known reason is matched first, so a message holding `` (`` is kept whole.
    """
    line = line.rstrip("\r\n")
    if not line.startswith("EXIT: "):
        return None
    rest = line[6:]
    for reason in _REASONS_LONGEST_FIRST:
        if rest == reason:
            return reason, ""
        if rest.startswith(reason + " (") and rest.endswith(")"):
            return reason, rest[len(reason) + 2 : -1]
    i = rest.find(" (")
    if i > 0 and rest.endswith(")"):
        return rest[:i], rest[i + 2 : -1]
    return rest, ""


def _is_record_head(head: str) -> bool:
    parts = head.split(",")
    return len(parts) >= 4 and all(p.isdigit() for p in parts[:3])


def _bracket_prefix(text: str) -> int:
    """Length of a leading ``[   12.345678] `` or ``[  T123] `` prefix, else 0."""
    if not text.startswith("["):
        return 0
    end = text.find("]")
    inner = text[1:end].strip() if end > 0 else ""
    if not inner or any(not (c.isdigit() or c in ".TC") for c in inner):
        return 0
    n = end + 1
    return n + 1 if text[n : n + 1] == " " else n


def strip_kmsg_prefix(line: str) -> str:
    """The message text of a kernel log line in any of the usual framings.

    Accepts a raw ``/dev/kmsg`` record (``6,1234,5678901,-;text``), a ``<3>`` priority,
    and ``dmesg`` timestamp and caller prefixes (``[   12.345678] [  T123] text``).
    Leading spaces of the text itself (backtrace frames) are kept.
    """
    line = line.rstrip("\r\n")
    semi = line.find(";")
    if semi > 0 and _is_record_head(line[:semi]):
        return line[semi + 1 :]
    if line.startswith("<"):
        end = line.find(">")
        if 1 < end <= 4 and line[1:end].isdigit():
            line = line[end + 1 :]
    while n := _bracket_prefix(line):
        line = line[n:]
    return line


#: One sched_ext line of the kernel log. ``what`` is ``enabled`` (``text``: "" or
#: ``partial``), ``disabled`` (``text``: the reason; ``sub``: a sub-scheduler), ``message``
#: (``ops`` is what precedes the first ``": "``), ``no_ops``, ``backtrace`` or ``other``.
KmsgEvent = namedtuple("KmsgEvent", "what ops text sub", defaults=("", "", False))


def _scheduler_line(body: str) -> KmsgEvent | None:
    for prefix, sub in (('BPF scheduler "', False), ('BPF sub-scheduler "', True)):
        if not body.startswith(prefix):
            continue
        rest = body[len(prefix) :]
        d = rest.rfind('" disabled (')
        if d >= 0 and rest.endswith(")"):
            return KmsgEvent("disabled", rest[:d], rest[d + 12 : -1], sub)
        e = rest.rfind('" enabled')
        if e >= 0:
            partial = "partial" if rest[e + 9 :].strip() == "(partial)" else ""
            return KmsgEvent("enabled", rest[:e], partial, sub)
    return None


def parse_kmsg_line(line: str) -> KmsgEvent | None:
    """Classify one kernel log line; None if it is not about sched_ext.

    >>> parse_kmsg_line('[    9.101] sched_ext: BPF scheduler "simple" disabled (unregistered from user space)')
    KmsgEvent(what='disabled', ops='simple', text='unregistered from user space', sub=False)
    """
    text = strip_kmsg_prefix(line)
    if text.startswith(" "):
        frame = text.strip()
        sym = frame.split(" ", 1)[0]  # "[module]" may follow
        if "+0x" in sym and "/0x" in sym:
            return KmsgEvent("backtrace", "", frame)
        return None
    if not text.startswith("sched_ext: "):
        return None
    body = text[11:]
    ev = _scheduler_line(body)
    if ev is not None:
        return ev
    if body.startswith("ops error detected without ops (") and body.endswith(")"):
        return KmsgEvent("no_ops", "", body[32:-1])
    i = body.find(": ")
    if i > 0:
        return KmsgEvent("message", body[:i], body[i + 2 :])
    return KmsgEvent("other", "", body)


class KmsgExitParser:
    """Incremental reader of kernel log lines that keeps the scheduler's disable record.

    The first ``disabled`` line (for ``ops`` when given) is kept with the ``<ops>: <msg>``
    line right after it and the backtrace frames that follow. A later ``enabled`` line of
    the same ops (a new load) starts over.

    :param ops: the ops name to follow; "" follows any scheduler.
    """

    def __init__(self, ops: str = "") -> None:
        self.ops = ops
        self.enabled_ops = ""
        self._disabled: KmsgEvent | None = None
        self._message: str | None = None
        self._no_ops = ""
        self._backtrace: list[str] = []
        self._last = ""  # what the previous sched_ext line was: frames follow a message only

    def feed(self, line: str) -> None:
        """Take one line (any framing :func:`strip_kmsg_prefix` accepts)."""
        ev = parse_kmsg_line(line)
        if ev is None:
            return
        if ev.what == "backtrace":
            if self._last in ("message", "backtrace") and len(self._backtrace) < _BACKTRACE_MAX:
                self._backtrace.append(ev.text[:_FRAME_MAX])
                self._last = "backtrace"
            return
        self._last = ""
        wanted = not self.ops or ev.ops == self.ops
        if ev.what == "enabled" and wanted and not ev.sub:
            self.enabled_ops = ev.ops
            self._disabled, self._message, self._backtrace = None, None, []
        elif ev.what == "disabled" and wanted and self._disabled is None:
            self._disabled = ev
        elif ev.what == "message" and self._disabled is not None and self._message is None:
            if ev.ops == self._disabled.ops:
                self._message = ev.text
                self._last = "message"
        elif ev.what == "no_ops" and not self._no_ops:
            self._no_ops = ev.text

    def feed_text(self, text: str) -> None:
        """Take several lines at once."""
        for line in text.splitlines():
            self.feed(line)

    @property
    def complete(self) -> bool:
        """The disable record is whole: its line, and for an error kind its message."""
        d = self._disabled
        if d is None:
            return False
        return self._message is not None or kind_of(d.text)[1] < ERROR_MIN

    def result(self) -> SchedExit | None:
        """The exit read so far (source ``kmsg``), or None if no disable line was seen."""
        d = self._disabled
        if d is None:
            if self._no_ops:
                return SchedExit("ERROR", 1024, "ops error detected without ops", self._no_ops,
                                 source="kmsg")  # fmt: skip
            return None
        return _make(d.text, self._message or "", d.ops, "kmsg", tuple(self._backtrace))


def combine(
    kmsg: SchedExit | None, exit_line: tuple[str, str] | None, ops: str = ""
) -> SchedExit | None:
    """Merge the kernel's record with the scheduler's ``EXIT:`` line.

    The kernel's record wins (it names the ops and carries the backtrace); the ``EXIT:``
    line fills a missing message. Either alone is enough.

    :param ops: the ops name to report when only the ``EXIT:`` line is known.
    """
    if kmsg is not None:
        if exit_line is None:
            return kmsg
        reason, msg = exit_line
        agree = reason == kmsg.reason or kind_of(reason)[1] == kmsg.code
        if not agree:
            return kmsg
        if not kmsg.message and msg:
            return _make(kmsg.reason, msg, kmsg.ops, "kmsg+stderr", kmsg.backtrace)
        return kmsg._replace(source="kmsg+stderr")
    if exit_line is not None:
        return _make(exit_line[0], exit_line[1], ops, "stderr")
    return None


def extract_debug_dump(text: str) -> str:
    """The scheduler's own ``DEBUG DUMP`` block from its stderr, "" if there is none.

    ``UEI_REPORT`` writes ``\\nDEBUG DUMP\\n``, a rule of 80 ``=``, a blank line, the dump,
    then a rule again. A block cut short (the log was truncated) is returned to the end.
    """
    marker = "DEBUG DUMP\n" + _DUMP_RULE + "\n"
    i = text.find(marker)
    while i > 0 and text[i - 1] != "\n":  # the marker must start a line
        i = text.find(marker, i + 1)
    if i < 0:
        return ""
    body = text[i + len(marker) :]
    body = body[1:] if body.startswith("\n") else body
    end = body.find("\n" + _DUMP_RULE)
    return (body if end < 0 else body[:end]).rstrip("\n")


def trace_dump_lines(text: str) -> list[str]:
    """The dump lines of ``sched_ext_dump`` trace events, ftrace prefixes removed.

    ``  kworker/1:2-57  [001] d..2.  42.1: sched_ext_dump: CPU 1 : nr_run=2`` ->
    ``CPU 1 : nr_run=2``. Lines of other events are skipped; blank dump lines stay blank.
    """
    out = []
    for line in text.splitlines():
        i = line.find("sched_ext_dump:")
        if i >= 0:
            rest = line[i + 15 :]
            out.append(rest[1:] if rest.startswith(" ") else rest)
    return out
