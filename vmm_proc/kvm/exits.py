"""One frozen dataclass per KVM_RUN outcome, as returned by ``VcpuFd.run()``.

Dispatch with ``match``::

    match vcpu.run():
        case IoOut(port=0x3F8, data=data): uart.write(0, data)
        case IoIn(port=port, size=size) as e: e.reply(bus.read(port, size))
        case Interrupted(): check_control_queue()

IoIn and MmioRead must be answered with ``reply(data)`` before the next ``run()``; KVM
completes the guest's instruction with that data on re-entry.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

__all__ = (
    "FailEntry",
    "Hlt",
    "InternalError",
    "Interrupted",
    "IoIn",
    "IoOut",
    "MmioRead",
    "MmioWrite",
    "Shutdown",
    "SystemEvent",
    "Unsupported",
    "VcpuExit",
    "SYSTEM_EVENT_SHUTDOWN",
    "SYSTEM_EVENT_RESET",
    "SYSTEM_EVENT_CRASH",
)

# struct kvm_run::system_event.type values (include/uapi/linux/kvm.h).
SYSTEM_EVENT_SHUTDOWN = 1
SYSTEM_EVENT_RESET = 2
SYSTEM_EVENT_CRASH = 3


@dataclass(frozen=True, slots=True)
class IoIn:
    """KVM_EXIT_IO, direction in: the guest reads ``count`` items of ``size`` bytes from ``port``.

    :param sink: writes the answer into kvm_run; use :meth:`reply`.
    """

    port: int
    size: int
    count: int
    sink: Callable[[bytes], None] = field(repr=False, compare=False)

    def reply(self, data: bytes) -> None:
        """Supply exactly ``size * count`` bytes for the guest's ``in``/``ins``."""
        if len(data) != self.size * self.count:
            raise ValueError(
                f"port {self.port:#x}: {len(data)} bytes for a {self.size}x{self.count} read"
            )
        self.sink(data)


@dataclass(frozen=True, slots=True)
class IoOut:
    """KVM_EXIT_IO, direction out: ``data`` (``size * count`` bytes) written to ``port``."""

    port: int
    size: int
    count: int
    data: bytes


@dataclass(frozen=True, slots=True)
class MmioRead:
    """KVM_EXIT_MMIO read of ``length`` (1..8) bytes at guest physical ``addr``."""

    addr: int
    length: int
    sink: Callable[[bytes], None] = field(repr=False, compare=False)

    def reply(self, data: bytes) -> None:
        """Supply exactly ``length`` bytes for the guest's load."""
        if len(data) != self.length:
            raise ValueError(
                f"mmio {self.addr:#x}: {len(data)} bytes for a {self.length}-byte read"
            )
        self.sink(data)


@dataclass(frozen=True, slots=True)
class MmioWrite:
    """KVM_EXIT_MMIO write of ``data`` (1..8 bytes) at guest physical ``addr``."""

    addr: int
    data: bytes


@dataclass(frozen=True, slots=True)
class Hlt:
    """KVM_EXIT_HLT: the guest halted (only without an in-kernel irqchip)."""


@dataclass(frozen=True, slots=True)
class Shutdown:
    """KVM_EXIT_SHUTDOWN: triple fault or equivalent; the vCPU cannot continue."""


@dataclass(frozen=True, slots=True)
class SystemEvent:
    """KVM_EXIT_SYSTEM_EVENT: ``type`` is SYSTEM_EVENT_SHUTDOWN/RESET/CRASH/...; ``data`` its payload."""

    type: int
    data: tuple[int, ...] = ()


@dataclass(frozen=True, slots=True)
class FailEntry:
    """KVM_EXIT_FAIL_ENTRY: hardware refused VM entry (``reason`` is vendor-specific)."""

    reason: int
    cpu: int = 0


@dataclass(frozen=True, slots=True)
class InternalError:
    """KVM_EXIT_INTERNAL_ERROR: ``suberror`` 1 is an emulation failure; ``data`` is debug words."""

    suberror: int
    data: tuple[int, ...] = ()


@dataclass(frozen=True, slots=True)
class Interrupted:
    """KVM_RUN returned EINTR/EAGAIN (a kick): check the control queue, then run again."""


@dataclass(frozen=True, slots=True)
class Unsupported:
    """Any other exit reason (``KVM_EXIT_*`` number); the consumer decides what it means."""

    reason: int


VcpuExit = (
    IoIn
    | IoOut
    | MmioRead
    | MmioWrite
    | Hlt
    | Shutdown
    | SystemEvent
    | FailEntry
    | InternalError
    | Interrupted
    | Unsupported
)
