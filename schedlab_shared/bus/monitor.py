"""Contract of the monitor_proc channels."""

from __future__ import annotations

from .codec import Message, message

__all__ = ("Sample", "MonitorStatusReply", "MonitorStatus")


@message("monitor.sample")
class Sample(Message):
    """Event ``{elapsed_ms, cpus: [{cpu, nr_running, rq_clock, ...}], monitor}`` on
    ``vm.<id>.monitor.sample``; ``elapsed_ms`` counts from VM start (host clock)."""

    elapsed_ms: float
    cpus: list
    monitor: str = ""


@message("monitor.status.reply")
class MonitorStatusReply(Message):
    """``{state, samples, errors, last_error}``; state: waiting | sampling | stopped."""

    state: str
    samples: int
    errors: int
    last_error: str = ""


@message("monitor.status", reply=MonitorStatusReply)
class MonitorStatus(Message):
    """Request ``{}`` -> MonitorStatusReply."""
