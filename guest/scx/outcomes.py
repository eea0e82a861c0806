"""How attaching and stopping a scheduler went: the values :mod:`guest.scx.run` returns.

Each has ``as_map()``, the payload of its frame (SCHED_ATTACH, SCHED_STOP).
"""

from __future__ import annotations

from collections import namedtuple

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

__all__ = (
    "ATTACH_STATUSES",
    "MESSAGE_MAX",
    "ATTACHED",
    "BUSY",
    "CANCELLED",
    "CLEAN",
    "DIED",
    "EXITED",
    "KILLED",
    "NOT_DETACHED",
    "NOT_STARTED",
    "SPAWN_FAILED",
    "STOP_STATUSES",
    "SYSFS_ABSENT",
    "TIMED_OUT",
    "AttachOutcome",
    "StopOutcome",
)

#: Characters of an attach message (a scheduler's output summary and what the kernel said).
MESSAGE_MAX = 16000

ATTACHED = "attached"
TIMED_OUT = "timed_out"  #: alive but not enabled in time (then killed)
SYSFS_ABSENT = "sysfs_absent"  #: no /sys/kernel/sched_ext: the kernel lacks sched_ext
DIED = "died"  #: exited before attaching
SPAWN_FAILED = "spawn_failed"  #: could not be started at all
BUSY = "busy"  #: another scheduler was loaded (or sched_ext not disabled) before ours
CANCELLED = "cancelled"  #: the host asked to stop while we waited (then killed)
ATTACH_STATUSES = (ATTACHED, TIMED_OUT, SYSFS_ABSENT, DIED, SPAWN_FAILED, BUSY, CANCELLED)

CLEAN = "clean"  #: exited on SIGINT and sched_ext detached
KILLED = "killed"  #: ignored SIGINT, SIGKILL ended it
NOT_DETACHED = "not_detached"  #: sched_ext not back to ``disabled`` after it exited
EXITED = "exited"  #: it had already ended during the run (see the SCHED_EXIT event)
NOT_STARTED = "not_started"  #: it never attached, nothing to stop
STOP_STATUSES = (CLEAN, KILLED, NOT_DETACHED, EXITED, NOT_STARTED)


class AttachOutcome(
    namedtuple(
        "AttachOutcome",
        "status ops attach_ms message pid exit_status state",
        defaults=("", None, "", 0, "", ""),
    )
):
    """Result of :meth:`~guest.scx.run.SchedulerRun.start`.

    :param status: one of :data:`ATTACH_STATUSES`.
    :param ops: the ops name sysfs showed ("" unless attached).
    :param attach_ms: spawn to ``enabled`` with an ops name, in ms (None unless attached).
    :param message: "" when attached; else the error. For ``died`` it starts with the
        first lines of the scheduler's output (verifier loops collapsed).
    :param pid: the scheduler's pid (0 if it never started).
    :param exit_status: how it ended when it did not attach (``exited 1``).
    :param state: the sched_ext state last read.
    """

    __slots__ = ()

    @property
    def attached(self) -> bool:
        return self.status == ATTACHED

    def as_map(self) -> dict[str, Any]:
        """The SCHED_ATTACH payload (``attach_ms`` only when attached)."""
        m: dict[str, Any] = {
            "status": self.status,
            "attached": self.attached,
            "ops": self.ops,
            "message": self.message[:MESSAGE_MAX],
            "pid": self.pid,
            "exit_status": self.exit_status,
            "state": self.state,
        }
        if self.attach_ms is not None:
            m["attach_ms"] = self.attach_ms
        return m


class StopOutcome(
    namedtuple(
        "StopOutcome",
        "status detached killed problems exit_status state wait_ms exit",
        defaults=(True, False, (), "", "", 0.0, None),
    )
):
    """Result of :meth:`~guest.scx.run.SchedulerRun.stop`.

    :param status: one of :data:`STOP_STATUSES`.
    :param detached: sched_ext was back to ``disabled`` afterwards.
    :param killed: SIGKILL was needed.
    :param problems: what to report, one line each (``had to be killed ...``,
        ``did not detach ...``); empty for a clean stop.
    :param exit_status: the process's status (``exited 0``, ``killed by SIGKILL``).
    :param state: the sched_ext state afterwards.
    :param wait_ms: from SIGINT to the process gone.
    :param exit: the :class:`~guest.scx.exit_parse.SchedExit` the kernel log and the
        ``EXIT:`` line give (``unregistered from user space`` when clean), or None.
    """

    __slots__ = ()

    def as_map(self) -> dict[str, Any]:
        """The SCHED_STOP payload (``exit`` only when known)."""
        m: dict[str, Any] = {
            "status": self.status,
            "detached": self.detached,
            "killed": self.killed,
            "problems": [p[:1024] for p in self.problems],
            "exit_status": self.exit_status,
            "state": self.state,
            "wait_ms": self.wait_ms,
        }
        if self.exit is not None:
            m["exit"] = self.exit.as_map()
        return m
