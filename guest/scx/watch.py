"""Catch the scheduler's end during the workload: its death, or sched_ext leaving ``enabled``.

One thread polls the scheduler's pidfd (readable the moment the process exits, whoever
reaps it) with the sysfs state read at each poll timeout: an error exit turns the state to
``disabling`` before the scheduler's userspace notices (the C examples look once a
second). Whichever comes first makes one event. Its reason is read from the kernel log and
the scheduler's ``EXIT:`` line, waiting until the kernel has finished disabling: the disable
lines are printed after every task was switched out, just before the state reads
``disabled`` (milliseconds natively, a second or more under TCG with many tasks).
"""

from __future__ import annotations

import errno
import os
import select
import threading
import time
from collections import namedtuple

from guest.scx.exit_parse import KmsgExitParser, SchedExit, combine

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable

    from guest.scx.child import Child
    from guest.scx.log_pump import LogPump
    from guest.scx.sysfs import ScxSysfs

__all__ = ("ExitEvent", "ExitWatcher", "KmsgTail")

_RECORD = 8192
_RECORDS_PER_POLL = 2000


class KmsgTail:
    """Kernel log lines written from now on, fed to a :class:`KmsgExitParser`.

    Opens ``/dev/kmsg`` at its end (every open has its own position, so PID 1's reader is
    unaffected). A regular file works too (tests append ``prio,seq,usec,-;text`` lines).

    :param path: ``<root>/dev/kmsg``.
    :param parser: where lines go.
    """

    def __init__(self, path: str, parser: KmsgExitParser) -> None:
        self.parser = parser
        self.lines = 0
        try:
            self.fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
            os.lseek(self.fd, 0, os.SEEK_END)
        except OSError:
            self.fd = -1
        self._partial = b""

    @property
    def available(self) -> bool:
        return self.fd >= 0

    def poll(self) -> int:
        """Read the new records now; return how many lines were fed."""
        fed = 0
        for _ in range(_RECORDS_PER_POLL):
            if self.fd < 0:
                break
            try:
                data = os.read(self.fd, _RECORD)
            except OSError as e:
                if e.errno == errno.EPIPE:  # overwritten before we read them: go on
                    continue
                break  # EAGAIN
            if not data:
                break
            *lines, self._partial = (self._partial + data).split(b"\n")
            for raw in lines:
                if raw and not raw.startswith(b" "):  # " KEY=value" continuation lines
                    self.parser.feed(raw.decode("utf-8", "replace"))
                    fed += 1
        self.lines += fed
        return fed

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1


class ExitEvent(namedtuple("ExitEvent", "t_ns trigger state exit exit_status ops dump_bytes")):
    """The scheduler's end during a run (one per run).

    :param t_ns: CLOCK_BOOTTIME when it was seen (the guest's timestamp of the exit).
    :param trigger: ``died`` (the process exited) or ``disabled`` (sched_ext left ``enabled``).
    :param state: the sched_ext state read then.
    :param exit: the :class:`~guest.scx.exit_parse.SchedExit`, or None if no reason was found.
    :param exit_status: the process's status (``exited 0``), "" while it still runs.
    :param ops: the ops name it attached with.
    :param dump_bytes: bytes of ``sched_ext_dump`` trace sent before this event.
    """

    __slots__ = ()

    def as_map(self) -> dict:
        """The SCHED_EXIT frame payload (``exit`` only when a reason was found)."""
        e = self.exit
        m = {
            "t_ns": self.t_ns,
            "trigger": self.trigger,
            "state": self.state,
            "exit_status": self.exit_status,
            "ops": self.ops,
            "dump_bytes": self.dump_bytes,
            "headline": "" if e is None else e.headline(),
        }
        if e is not None:
            m["exit"] = e.as_map()
        return m


class ExitWatcher:
    """The watch thread (see the module docstring).

    :param child: the scheduler process.
    :param sysfs: its sched_ext sysfs.
    :param kmsg: the kernel log tail (its parser keeps the disable record).
    :param pump: the scheduler's log pump (its ``EXIT:`` line).
    :param ops: the ops name it attached with.
    :param report: called once, in the thread, with the :class:`ExitEvent`.
    :param clock: CLOCK_BOOTTIME in ns.
    :param interval_s: how often the state is read.
    :param grace_s: the most to wait for the reason after the trigger.
    """

    def __init__(
        self,
        child: Child,
        sysfs: ScxSysfs,
        kmsg: KmsgTail,
        pump: LogPump,
        ops: str,
        report: Callable[[ExitEvent], None],
        clock: Callable[[], int],
        interval_s: float = 0.1,
        grace_s: float = 5.0,
    ) -> None:
        self._child, self._sysfs, self._kmsg, self._pump = child, sysfs, kmsg, pump
        self._ops = ops
        self._report = report
        self._clock = clock
        self._interval_ms = max(1, int(interval_s * 1000))
        self._grace_s = grace_s
        self._stop = threading.Event()
        self._wake_r, self._wake_w = os.pipe()
        self._thread: threading.Thread | None = None
        self.event: ExitEvent | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="sched-exit-watch", daemon=True)
        self._thread.start()

    def stop(self, timeout_s: float = 2.0) -> None:
        """End the watch without an event (before stopping the scheduler on purpose).

        An event being reported when this is called is let finish (bounded).
        """
        self._stop.set()
        try:
            os.write(self._wake_w, b"x")
        except OSError:
            pass
        if self._thread is not None:
            self._thread.join(timeout_s)
        for fd in (self._wake_r, self._wake_w):
            try:
                os.close(fd)
            except OSError:
                pass
        self._wake_r = self._wake_w = -1

    def _run(self) -> None:
        poller = select.poll()
        if self._child.pidfd >= 0:
            poller.register(self._child.pidfd, select.POLLIN)
        poller.register(self._wake_r, select.POLLIN)
        while not self._stop.is_set():
            ready = {fd for fd, _ in poller.poll(self._interval_ms)}
            if self._stop.is_set():
                return
            self._kmsg.poll()
            state = self._sysfs.state() or ""
            if state != "enabled":  # look twice: a failed read must not stop the VM
                state = self._sysfs.state() or ""
            if self._child.pidfd < 0 or self._child.pidfd in ready:
                self._finish("died", state)
                return
            if state != "enabled":
                self._finish("disabled", state)
                return

    def _finish(self, trigger: str, state: str) -> None:
        t_ns = self._clock()
        end = time.monotonic() + self._grace_s
        while time.monotonic() < end and not self._stop.is_set():
            self._kmsg.poll()
            if self._kmsg.parser.complete or self._pump.exit_seen.is_set():
                break
            if self._kmsg.available and self._sysfs.state() == "disabled":
                self._kmsg.poll()  # the kernel logged before it set DISABLED: nothing more comes
                break
            if trigger == "died" and self._pump.eof.is_set() and not self._kmsg.available:
                break
            self._pump.exit_seen.wait(0.02)
        self._kmsg.poll()
        if trigger == "died":
            self._pump.wait_eof(max(0.0, min(0.2, end - time.monotonic())))
        status = self._child.reap() if self._child.exited(0) else ""
        found: SchedExit | None = combine(
            self._kmsg.parser.result(), self._pump.exit_line, self._ops
        )
        self.event = ExitEvent(t_ns, trigger, state, found, status, self._ops, 0)
        self._report(self.event)
