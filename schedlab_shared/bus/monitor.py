"""Contract of the monitor_proc channels."""

from __future__ import annotations

import enum

from .codec import Message, message

__all__ = ("MonitorState", "Sample", "MonitorStatusReply", "MonitorStatus")


class MonitorState(enum.StrEnum):
    """``MonitorStatusReply.state``."""

    WAITING = "waiting"  # for the VM to run and the guest to send SYS_RDY
    SAMPLING = "sampling"
    STOPPED = "stopped"


@message("monitor.sample")
class Sample(Message):
    """Event ``{elapsed_ms, cpus: [{cpu, nr_running, rq_clock, ...}], monitor, scx?,
    vcpus?, domains?, watchdog?}`` on ``vm.<id>.monitor.sample``; ``elapsed_ms`` counts
    from VM start (host clock). The fields are those of a sample line
    (:mod:`schedlab_shared.monitor_schema`); an absent one is None here."""

    elapsed_ms: float
    cpus: list
    monitor: str = ""
    scx: dict | None = None
    vcpus: dict | None = None
    domains: list | None = None
    watchdog: dict | None = None


@message("monitor.status.reply")
class MonitorStatusReply(Message):
    """``{state, samples, errors, last_error}``; ``state`` is a MonitorState."""

    state: str
    samples: int
    errors: int
    last_error: str = ""


@message("monitor.status", reply=MonitorStatusReply)
class MonitorStatus(Message):
    """Request ``{}`` -> MonitorStatusReply."""
