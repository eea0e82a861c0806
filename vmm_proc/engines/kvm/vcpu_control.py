"""The typed control channel of a vCPU thread: events in, responses out, and its states.

A request that does not fit the current state is answered with ``NOT_ALLOWED`` and a
reason, never silently ignored.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from schedlab_shared.bus.vmm import ExitReason

__all__ = ("VcpuEvent", "VcpuResponse", "VcpuReply", "VcpuState", "VcpuStop")


class VcpuState(enum.Enum):
    PAUSED = "paused"  # not in KVM_RUN; waits for events
    RUNNING = "running"  # loops over KVM_RUN
    EXITED = "exited"  # the guest or an error ended this vCPU; only FINISH is accepted
    FINISHED = "finished"  # the thread has returned (or is about to)


class VcpuEvent(enum.Enum):
    PAUSE = "pause"
    RESUME = "resume"
    FINISH = "finish"


class VcpuResponse(enum.Enum):
    PAUSED = "paused"
    RESUMED = "resumed"
    FINISHED = "finished"
    NOT_ALLOWED = "not-allowed"


@dataclass(frozen=True)
class VcpuReply:
    """One answer to one ``VcpuEvent``; ``reason`` is set for ``NOT_ALLOWED``."""

    response: VcpuResponse
    reason: str = ""


@dataclass(frozen=True)
class VcpuStop:
    """Why a vCPU stopped running the guest: the engine turns the first one into ``exited``."""

    reason: ExitReason
    detail: str
