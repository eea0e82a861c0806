"""One scheduler under test, from spawn to detach: what PID 1 calls.

>>> run = SchedulerRun("/sched/scx_simple", ["-f"], bulk.send)       # doctest: +SKIP
>>> out = run.start()          # spawn, wait for enabled + ops: AttachOutcome
>>> run.watch(on_exit)         # death / disable -> one ExitEvent (callback + SCHED_EXIT)
>>> ...                        # the workload
>>> stop = run.stop()          # SIGINT, bounded wait, SIGKILL; detach check: StopOutcome

Frames sent through ``send``: SCHED_ATTACH after :meth:`start`, SCHED_LOG for the
scheduler's output all along, DUMP (source ``sched_ext_dump``) with the kernel's state dump
before SCHED_EXIT when the exit is an error, SCHED_STOP after :meth:`stop`. Nothing here
blocks on the bulk port except those sends themselves.
"""

from __future__ import annotations

import os
import signal
import threading
import time

from guest.scx.child import DEFAULT_ENV, Child
from guest.scx.exit_parse import KmsgExitParser, combine
from guest.scx.log_pump import LogPump
from guest.scx.outcomes import (
    ATTACHED,
    BUSY,
    CANCELLED,
    CLEAN,
    DIED,
    EXITED,
    KILLED,
    NOT_DETACHED,
    NOT_STARTED,
    SPAWN_FAILED,
    SYSFS_ABSENT,
    TIMED_OUT,
    AttachOutcome,
    StopOutcome,
)
from guest.scx.sysfs import ScxSysfs
from guest.scx.trace import TraceDump
from guest.scx.verifier_log import summarize
from guest.scx.watch import ExitEvent, ExitWatcher, KmsgTail
from guest.wire import FrameType

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

    Send = Callable[[FrameType, dict[str, Any]], bool]

__all__ = ("DUMP_SOURCE", "SchedulerRun")

DUMP_SOURCE = "sched_ext_dump"  #: DUMP frame source of trace_pipe dump text
_DUMP_CHUNK = 512 * 1024  # DUMP frames stay well under wire.MAX_FRAME
_DUMP_MAX = 4 << 20


def _boottime_ns() -> int:
    return time.clock_gettime_ns(time.CLOCK_BOOTTIME)


class SchedulerRun:
    """Spawn, attach, watch and stop one sched_ext scheduler.

    :param path: the scheduler executable in the guest.
    :param args: its arguments.
    :param send: ``send(FrameType, payload) -> bool`` (``BulkChannel.send``), thread-safe.
    :param root: filesystem root (a temporary tree in tests).
    :param name: how messages name it (default: the file name).
    :param env: variables added to :data:`~guest.scx.child.DEFAULT_ENV`.
    :param attach_timeout_s: how long to wait for ``enabled`` (BPF verification under TCG
        takes seconds).
    :param stop_timeout_s: how long SIGINT may take before SIGKILL.
    :param kill_timeout_s: how long to wait after SIGKILL.
    :param detach_timeout_s: how long sched_ext may take to read ``disabled`` afterwards.
    :param trace: capture ``sched_ext_dump`` events (tracefs).
    :param mount: ``mount(source, target, fstype)`` used if tracefs is not mounted.
    :param clock: CLOCK_BOOTTIME in ns (the timestamps the host compares).
    :param watch_interval_s: how often the watch reads the sched_ext state.
    :param reason_grace_s: the most an exit waits for its reason (the kernel's disable lines,
        the ``EXIT:`` line) before it is reported; usually milliseconds.
    """

    def __init__(
        self,
        path: str,
        args: list[str],
        send: Send,
        root: str = "/",
        *,
        name: str = "",
        env: dict[str, str] | None = None,
        attach_timeout_s: float = 20.0,
        stop_timeout_s: float = 8.0,
        kill_timeout_s: float = 3.0,
        detach_timeout_s: float = 3.0,
        trace: bool = True,
        mount: Callable[[str, str, str], None] | None = None,
        clock: Callable[[], int] = _boottime_ns,
        watch_interval_s: float = 0.1,
        reason_grace_s: float = 5.0,
    ) -> None:
        self.path = path
        self.args = list(args)
        self.root = root
        self.name = name or os.path.basename(path)
        self._send_fn = send
        self._env = dict(env or {})
        self._attach_timeout_s = attach_timeout_s
        self._stop_timeout_s = stop_timeout_s
        self._kill_timeout_s = kill_timeout_s
        self._detach_timeout_s = detach_timeout_s
        self._want_trace = trace
        self._mount = mount
        self._clock = clock
        self._watch_interval_s = watch_interval_s
        self._grace_s = reason_grace_s
        self.sysfs = ScxSysfs(root)
        self.parser = KmsgExitParser()
        self.kmsg: KmsgTail | None = None
        self.trace: TraceDump | None = None
        self.child: Child | None = None
        self.pump: LogPump | None = None
        self.attach: AttachOutcome | None = None
        self.exit_event: ExitEvent | None = None
        self.notes: list[str] = []
        self._watcher: ExitWatcher | None = None
        self._on_exit: Callable[[ExitEvent], None] | None = None
        self._stopped: StopOutcome | None = None

    @property
    def pid(self) -> int:
        """The scheduler's pid (0 before it started)."""
        return self.child.pid if self.child is not None else 0

    def claim_status(self, pid: int, status: int) -> bool:
        """For PID 1's orphan reaper: hand over the ``waitpid`` status if ``pid`` is ours."""
        return self.child is not None and self.child.claim(pid, status)

    def _send(self, ftype: FrameType, payload: dict[str, Any]) -> bool:
        try:
            return bool(self._send_fn(ftype, payload))
        except Exception:  # a broken sender must not break the lifecycle
            return False

    def _note(self, msg: str) -> None:
        self.notes.append(msg)
        self._send(FrameType.LOG, {"level": "warning", "msg": f"{self.name}: {msg}"})

    # -- attach --------------------------------------------------------------------------

    def start(self, cancel: threading.Event | None = None) -> AttachOutcome:
        """Spawn the scheduler and wait until sched_ext is ``enabled`` with its ops name.

        A scheduler that does not attach is killed and reaped before this returns.

        :param cancel: set it (e.g. on a host shutdown request) to give up the wait.
        """
        if self.attach is not None:
            return self.attach
        try:
            out = self._start(cancel)
        except BaseException:
            self._teardown()
            raise
        self.attach = out
        if not out.attached:
            self._teardown()
        self._send(FrameType.SCHED_ATTACH, out.as_map())
        return out

    def _start(self, cancel: threading.Event | None) -> AttachOutcome:
        absent = self.sysfs.absent_reason()
        if absent:
            return AttachOutcome(SYSFS_ABSENT, message=absent)
        state = self.sysfs.state() or ""
        if state != "disabled":
            ops = self.sysfs.ops()
            loaded = f" with scheduler {ops!r} loaded" if ops else ""
            return AttachOutcome(
                BUSY, message=f"sched_ext is {state!r}{loaded} before {self.name} started",
                state=state,
            )  # fmt: skip
        self.kmsg = KmsgTail(os.path.join(self.root, "dev/kmsg"), self.parser)
        if self._want_trace:
            self.trace = TraceDump(self.root, self._mount)
            if not self.trace.enable():
                self._note(f"sched_ext dumps will not be captured: {self.trace.error}")
                self.trace = None
        t0 = self._clock()
        try:
            self.child = Child.spawn(self.path, self.args, {**DEFAULT_ENV, **self._env})
        except OSError as e:
            return AttachOutcome(
                SPAWN_FAILED, message=f"cannot start {self.path}: {e.strerror or e}"
            )
        self.pump = LogPump(self.child.fds, self._send)
        self.pump.start()
        child = self.child

        def wait_exit(timeout_s: float) -> bool:
            return child.exited(timeout_s) or (cancel is not None and cancel.is_set())

        deadline = time.monotonic() + self._attach_timeout_s
        how, state, ops = self.sysfs.wait_attached(deadline, wait_exit)
        if how == "attached":
            self.parser.ops = ops  # from now on follow this scheduler's records only
            ms = round((self._clock() - t0) / 1e6, 3)
            return AttachOutcome(ATTACHED, ops, ms, pid=child.pid, state=state)
        if how == "exited" and child.exited(0):
            return self._died(state)
        return self._not_attached(CANCELLED if how == "exited" else TIMED_OUT, state, ops)

    def _output_summary(self) -> str:
        assert self.pump is not None
        return summarize(self.pump.output_text())

    def _died(self, state: str) -> AttachOutcome:
        assert self.child is not None and self.pump is not None and self.kmsg is not None
        self.pump.wait_eof(1.0)
        status = self.child.reap()
        self.kmsg.poll()
        trailer = f"{self.name} exited before attaching to sched_ext ({status})"
        kernel = self.parser.result()
        if kernel is not None:
            trailer += f"; the kernel says: {kernel.headline()}"
            if kernel.error:
                self._send_dump(self._drain_trace(), "attach")
        out = self._output_summary()
        msg = f"{out}\n-- {trailer}" if out else trailer
        return AttachOutcome(DIED, message=msg, pid=self.child.pid, exit_status=status, state=state)

    def _not_attached(self, status: str, state: str, ops: str) -> AttachOutcome:
        assert self.child is not None and self.pump is not None
        self.child.signal(signal.SIGKILL)  # alive but not bound: nothing to tear down in BPF
        self.child.exited(self._kill_timeout_s)
        exit_status = self.child.reap()
        self.pump.wait_eof(0.5)
        seen = f"sched_ext state {state!r}" + (f", ops {ops!r}" if ops else "")
        if status == CANCELLED:
            head = f"{self.name}: attach cancelled ({seen}); killed"
        else:
            head = (
                f"{self.name} did not attach within {self._attach_timeout_s:g} s ({seen}); killed"
            )
        out = self._output_summary()
        msg = f"{head}\n{out}" if out else head
        return AttachOutcome(status, message=msg, pid=self.child.pid, exit_status=exit_status,
                             state=state)  # fmt: skip

    # -- watch ---------------------------------------------------------------------------

    def watch(self, on_exit: Callable[[ExitEvent], None] | None = None) -> bool:
        """Watch for the scheduler's death or sched_ext leaving ``enabled`` (a thread).

        On the first of them, the kernel's dump is sent (DUMP frames, for an error exit),
        then SCHED_EXIT, then ``on_exit(event)`` is called in the watch thread.

        :return: False if the scheduler is not attached (nothing to watch).
        """
        if self.attach is None or not self.attach.attached or self._watcher is not None:
            return False
        assert self.child is not None and self.kmsg is not None and self.pump is not None
        self._on_exit = on_exit
        self._watcher = ExitWatcher(
            self.child, self.sysfs, self.kmsg, self.pump, self.attach.ops, self._report,
            self._clock, self._watch_interval_s, self._grace_s,
        )  # fmt: skip
        self._watcher.start()
        return True

    def _report(self, event: ExitEvent) -> None:
        dump = b""
        if event.exit is None or event.exit.error:
            dump = self._drain_trace()
        event = event._replace(dump_bytes=self._send_dump(dump, "exit"))
        self.exit_event = event
        self._send(FrameType.SCHED_EXIT, event.as_map())
        if self._on_exit is not None:
            try:
                self._on_exit(event)
            except Exception as e:  # the callback's failure must not hide the exit
                self._note(f"exit callback failed: {type(e).__name__}: {e}")

    # -- dumps ---------------------------------------------------------------------------

    def _drain_trace(self) -> bytes:
        return self.trace.drain(_DUMP_MAX) if self.trace is not None else b""

    def _send_dump(self, data: bytes, trigger: str) -> int:
        for part, i in enumerate(range(0, len(data), _DUMP_CHUNK)):
            chunk = data[i : i + _DUMP_CHUNK]
            self._send(
                FrameType.DUMP,
                {"source": DUMP_SOURCE, "data": chunk, "trigger": trigger, "part": part},
            )
        return len(data)

    def sysrq_dump(self) -> bytes:
        """SysRq-D now: the kernel's dump of every loaded scheduler, sent as DUMP frames.

        :return: the trace_pipe text (b"" when tracing is off).
        """
        if self.trace is None:
            return b""
        data = self.trace.sysrq_dump()
        self._send_dump(data, "sysrq")
        return data

    def debug_dump(self) -> str:
        """The scheduler's own DEBUG DUMP block from its stderr ("" if none)."""
        return self.pump.debug_dump() if self.pump is not None else ""

    # -- stop ----------------------------------------------------------------------------

    def stop(self) -> StopOutcome:
        """Stop the scheduler (SIGINT, bounded wait, SIGKILL) and check it detached."""
        if self._stopped is not None:
            return self._stopped
        try:
            out = self._stop()
        finally:
            self._teardown()
        self._stopped = out
        self._send(FrameType.SCHED_STOP, out.as_map())
        return out

    def _stop(self) -> StopOutcome:
        if self.attach is None or not self.attach.attached:
            return StopOutcome(NOT_STARTED, state=self.sysfs.state() or "")
        assert self.child is not None and self.pump is not None and self.kmsg is not None
        if self._watcher is not None:
            self._watcher.stop()
        problems: list[str] = []
        already = self.child.exited(0) or self.exit_event is not None
        killed, wait_ms = self._terminate(problems) if not self.child.exited(0) else (False, 0.0)
        status = self.child.reap() if self.child.exited(0) else ""
        self.pump.wait_eof(1.0)
        state = self._wait_detached()
        detached = state == "disabled"
        if not detached:
            problems.append(f"did not detach: sched_ext state is {state!r} after {self.name} ended")
        found = combine(self.parser.result(), self.pump.exit_line, self.attach.ops)
        if not already:
            if found is not None and found.kind != "UNREG":
                problems.append(f"ended with {found.headline()[:300]!r}, not an unregistration")
            elif detached and self.kmsg.available and self.parser.result() is None:
                problems.append(
                    'no "disabled (unregistered from user space)" line in the kernel log'
                )
        if already:
            how = EXITED
        elif not detached:
            how = NOT_DETACHED
        else:
            how = KILLED if killed else CLEAN
        return StopOutcome(how, detached, killed, tuple(problems), status, state, wait_ms, found)

    def _terminate(self, problems: list[str]) -> tuple[bool, float]:
        """SIGINT, then SIGKILL if needed; returns (killed, ms until the process was gone)."""
        assert self.child is not None
        t0 = time.monotonic()
        self.child.signal(signal.SIGINT)
        killed = False
        if not self.child.exited(self._stop_timeout_s):
            killed = True
            problems.append(
                f"had to be killed: still running {self._stop_timeout_s:g} s after SIGINT"
            )
            self.child.signal(signal.SIGKILL)
            if not self.child.exited(self._kill_timeout_s):
                problems.append(f"still running {self._kill_timeout_s:g} s after SIGKILL")
        return killed, round((time.monotonic() - t0) * 1000, 3)

    def _wait_detached(self) -> str:
        """Poll until sched_ext reads ``disabled`` (and the kernel logged the disable)."""
        assert self.kmsg is not None
        end = time.monotonic() + self._detach_timeout_s
        while True:
            self.kmsg.poll()
            state = self.sysfs.state() or ""
            logged = not self.kmsg.available or self.parser.result() is not None
            if (state == "disabled" and logged) or time.monotonic() >= end:
                return state
            time.sleep(0.02)

    def _teardown(self) -> None:
        if self._watcher is not None:
            self._watcher.stop(0.5)
        if self.pump is not None:
            self.pump.stop(1.0)
        if self.trace is not None:
            self.trace.close()
        if self.kmsg is not None:
            self.kmsg.close()
        if self.child is not None:
            self.child.close()
