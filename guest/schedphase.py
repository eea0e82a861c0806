"""The scheduler phase of the init process: start the scheduler under test, watch it, stop it.

Between the inputs phase and the workload (:mod:`guest.lifecycle`):

1. :meth:`SchedulerPhase.start` spawns the scheduler the run document names and waits until
   it is attached (:class:`~guest.scx.run.SchedulerRun`; SCHED_ATTACH tells the host). Not
   attached: the RESULT says why (no sched_ext, it died loading with its first output
   lines, it timed out) and the run ends with ``SETUP_FAILED``.
2. During the workload its exit or disable sends SCHED_EXIT; the phase then asks the
   workload to stop (``stop`` event) and sends the scheduler SIGINT, so it prints its own
   ``DEBUG DUMP`` and ``EXIT:`` line now rather than at its next once-a-second check.
3. :meth:`SchedulerPhase.finish` stops it (SIGINT, bounded wait, SIGKILL), checks it
   detached (SCHED_STOP), and ships the kernel log, so the host has the disable lines
   before the RESULT.

A host dump request (``D`` on the control port) is a real SysRq-D: ``scx_dump_state()`` of
the loaded scheduler, its ``sched_ext_dump`` trace lines sent as DUMP frames
(:func:`sysrq_dump`); with no scheduler running, one is triggered all the same.
"""

from __future__ import annotations

import os
import signal
import threading

from guest.wire import ExitCode, FrameType

TYPE_CHECKING = False  # typing costs ~0.4 s of guest startup under TCG
if TYPE_CHECKING:
    from guest.env import Env
    from guest.reporter import Reporter
    from guest.rundoc import Scheduler
    from guest.scx.run import SchedulerRun
    from guest.scx.watch import ExitEvent

__all__ = ("SchedulerPhase", "sysrq_dump")

DUMP_SOURCE = "sched_ext_dump"  # guest.scx.run.DUMP_SOURCE (guest.scx loads only when needed)
_DUMP_CHUNK = 512 * 1024


def _mount(env: Env):  # noqa: ANN202 - the guest avoids typing at run time
    def mount(source: str, target: str, fstype: str) -> None:
        env.system.mount(source, target, fstype)

    return mount


def _send_sysrq(out: Reporter, data: bytes, why: str) -> None:
    """SysRq-D's answer: at least one (maybe empty) DUMP frame, so the request shows."""
    if not data:
        out.send(FrameType.DUMP, {"source": DUMP_SOURCE, "data": b"", "trigger": "sysrq",
                                  "part": 0})  # fmt: skip
        out.log("info", f"SysRq-D: no sched_ext dump lines ({why})")


def sysrq_dump(env: Env, out: Reporter, run: SchedulerRun | None) -> None:
    """Answer a host dump request with SysRq-D (runs in the control thread)."""
    if run is not None and run.trace is not None:
        _send_sysrq(out, run.sysrq_dump(), "the scheduler's dump was empty")
        return
    from guest.scx.trace import TraceDump

    trace = TraceDump(env.root, _mount(env))
    if not trace.enable():
        _send_sysrq(out, b"", trace.error)
        return
    try:
        data = trace.sysrq_dump()
        for part, i in enumerate(range(0, len(data), _DUMP_CHUNK)):
            out.send(FrameType.DUMP, {"source": DUMP_SOURCE, "data": data[i : i + _DUMP_CHUNK],
                                      "trigger": "sysrq", "part": part})  # fmt: skip
        _send_sysrq(out, data, "no sched_ext scheduler is loaded")
    finally:
        trace.close()


class SchedulerPhase:
    """One run's scheduler under test (nothing at all for EEVDF).

    :param env: the init's environment.
    :param out: where frames go.
    :param sched: the run document's ``scheduler``.
    :param stop: the workload's stop event, set when the scheduler exits.
    :param attach_timeout_s: how long it may take to attach (BPF verification under TCG).
    """

    def __init__(
        self,
        env: Env,
        out: Reporter,
        sched: Scheduler,
        stop: threading.Event,
        attach_timeout_s: float = 30.0,
    ) -> None:
        self.env = env
        self.out = out
        self.sched = sched
        self.stop = stop
        self.run: SchedulerRun | None = None
        self.exit_event: ExitEvent | None = None
        self._attach_timeout_s = attach_timeout_s
        self._finished = False

    @property
    def name(self) -> str:
        return os.path.basename(self.sched.path)

    def start(self) -> tuple[ExitCode, str] | None:
        """Spawn and attach; None when attached (or EEVDF), else the exit code and why."""
        if self.sched.eevdf:
            return None
        from guest.scx.run import SchedulerRun

        self.out.phase("scheduler")
        send = self.out.bulk.send if self.out.bulk is not None else (lambda _t, _p: False)
        self.run = SchedulerRun(
            self.sched.path, list(self.sched.args), send, self.env.root,
            env=dict(self.sched.env), mount=_mount(self.env),
            attach_timeout_s=self._attach_timeout_s,
        )  # fmt: skip
        got = self.run.start(cancel=self.stop)
        if not got.attached:
            return ExitCode.SETUP_FAILED, got.message or f"{self.name}: {got.status}"
        self.run.watch(self._on_exit)
        return None

    def _on_exit(self, event: ExitEvent) -> None:
        """The scheduler ended during the test (watch thread): stop the workload, nudge it."""
        self.exit_event = event
        self.stop.set()
        if self.run is not None and self.run.child is not None:
            self.run.child.signal(signal.SIGINT)  # report now, not at its next 1 s check

    def exit_reason(self) -> str:
        """The RESULT reason when the scheduler ended during the test ("" if it did not)."""
        e = self.exit_event
        if e is None:
            return ""
        how = "was disabled" if e.trigger == "disabled" else "exited"
        words = e.exit.headline() if e.exit is not None else "no reason found"
        return f"scheduler {self.name} {how} during the test: {words}"

    def sysrq_dump(self) -> None:
        """SysRq-D now (the control thread's dump request)."""
        sysrq_dump(self.env, self.out, self.run)

    def finish(self) -> None:
        """Stop the scheduler and check it detached (SCHED_STOP); then the kernel log."""
        if self.run is None or self._finished:
            return
        self._finished = True
        self.run.stop()
        self.out.send_kmsg()
