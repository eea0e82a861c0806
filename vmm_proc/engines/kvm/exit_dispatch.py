"""Generic vCPU exit dispatch: MMIO to the MMIO bus, guest-ending exits to a ``VcpuStop``.

Port I/O is architecture-specific and goes to ``pio_x86_64.dispatch_pio``. Nothing here
raises on guest behaviour: every exit either continues the vCPU or names why it stops.
"""

from __future__ import annotations

import logging
import threading
from collections import Counter
from typing import Protocol

from schedlab_shared.bus.vmm import ExitReason
from vmm_proc.engines.kvm.pio_x86_64 import dispatch_pio
from vmm_proc.engines.kvm.vcpu_control import VcpuStop
from vmm_proc.kvm.exits import (
    SYSTEM_EVENT_CRASH,
    SYSTEM_EVENT_RESET,
    SYSTEM_EVENT_SHUTDOWN,
    FailEntry,
    Hlt,
    InternalError,
    IoIn,
    IoOut,
    MmioRead,
    MmioWrite,
    Shutdown,
    SystemEvent,
    Unsupported,
    VcpuExit,
)

__all__ = ("BusPort", "ExitDispatcher", "ShutdownLatch")

log = logging.getLogger(__name__)

# KVM_INTERNAL_ERROR_* suberrors (include/uapi/linux/kvm.h).
_INTERNAL_ERRORS = {1: "emulation failure", 2: "simultaneous exception", 3: "delivery event"}


class BusPort(Protocol):
    """An address space: reads of ``size`` bytes and writes; unmapped addresses are the bus's job."""

    def read(self, addr: int, size: int) -> bytes: ...

    def write(self, addr: int, data: bytes) -> None: ...


class ShutdownLatch:
    """What the guest said about ending: a clean shutdown begun, or an exit requested.

    ``set`` marks a clean shutdown (the kernel printed ``reboot:``): a triple fault after
    it is the tail of a reboot, not a crash. ``request`` comes from a device (i8042 reset,
    ACPI S5): the vCPU that made the access stops with GUEST_EXIT.
    """

    def __init__(self) -> None:
        self._event = threading.Event()
        self._requested = threading.Event()
        self.how = ""
        self.panic = ""

    def mark_panic(self, line: str) -> None:
        """The guest kernel panicked: its reboot or triple fault that follows is a crash."""
        if not self.panic:
            self.panic = line

    def set(self, how: str) -> None:
        if not self._event.is_set():
            self.how = how
            self._event.set()

    def request(self, how: str) -> None:
        """A device asked for the exit; ``how`` names it (and the console line, if any)."""
        if not self._requested.is_set():
            self.how = f"{how} after {self.how!r}" if self.how else how
            self._event.set()
            self._requested.set()

    def is_set(self) -> bool:
        return self._event.is_set()

    @property
    def requested(self) -> bool:
        return self._requested.is_set()


class ExitDispatcher:
    """Handles one vCPU's exits; callable as the ``VcpuThread`` dispatch function.

    :param index: the vCPU index, for messages.
    :param pio: the port I/O bus.
    :param mmio: the MMIO bus.
    :param shutdown: tells a clean reboot's triple fault from a crash.
    """

    def __init__(self, index: int, pio: BusPort, mmio: BusPort, shutdown: ShutdownLatch) -> None:
        self.index = index
        self.counts: Counter[str] = Counter()
        self._pio = pio
        self._mmio = mmio
        self._shutdown = shutdown

    def __call__(self, exit_: VcpuExit) -> VcpuStop | None:
        self.counts[type(exit_).__name__] += 1
        match exit_:
            case IoIn() | IoOut():
                dispatch_pio(self._pio, exit_)
                return self._requested_exit()
            case MmioRead(addr=addr, length=length):
                data = self._mmio.read(addr, length)
                # Zero-fill a short answer so no stale kvm_run bytes reach the guest.
                exit_.reply(data[:length].ljust(length, b"\0"))
                return None
            case MmioWrite(addr=addr, data=data):
                self._mmio.write(addr, data)
                return self._requested_exit()
            case SystemEvent(type=kind):
                return self._system_event(kind)
            case Shutdown():
                return self._triple_fault()
            case FailEntry(reason=reason, cpu=cpu):
                return self._stop(
                    ExitReason.CRASH,
                    f"KVM_EXIT_FAIL_ENTRY, hardware reason {reason:#x} on cpu {cpu}",
                )
            case InternalError(suberror=sub, data=data):
                what = _INTERNAL_ERRORS.get(sub, f"suberror {sub}")
                words = " ".join(f"{d:#x}" for d in data[:8])
                return self._stop(ExitReason.CRASH, f"KVM internal error: {what} [{words}]")
            case Hlt():
                # With the in-kernel irqchip KVM handles HLT itself; one here is a setup bug.
                return self._unexpected("KVM_EXIT_HLT with an in-kernel irqchip")
            case Unsupported(reason=reason):
                return self._unexpected(f"unsupported exit reason {reason}")
            case _:
                return self._unexpected(f"unhandled exit {exit_!r}")

    def _requested_exit(self) -> VcpuStop | None:
        if not self._shutdown.requested:
            return None
        if self._shutdown.panic:
            return VcpuStop(
                ExitReason.CRASH, f"guest {self._shutdown.how} after: {self._shutdown.panic}"
            )
        return VcpuStop(ExitReason.GUEST_EXIT, f"guest {self._shutdown.how}")

    def _system_event(self, kind: int) -> VcpuStop:
        if kind in (SYSTEM_EVENT_SHUTDOWN, SYSTEM_EVENT_RESET):
            how = "shutdown" if kind == SYSTEM_EVENT_SHUTDOWN else "reset"
            self._shutdown.set(how)
            return VcpuStop(ExitReason.GUEST_EXIT, f"guest {how} (KVM system event)")
        if kind == SYSTEM_EVENT_CRASH:
            return self._stop(ExitReason.CRASH, "guest crash (KVM system event)")
        return self._unexpected(f"system event type {kind}")

    def _triple_fault(self) -> VcpuStop:
        if self._shutdown.panic:
            return self._stop(ExitReason.CRASH, f"triple fault after: {self._shutdown.panic}")
        if self._shutdown.is_set():
            return VcpuStop(ExitReason.GUEST_EXIT, f"guest {self._shutdown.how} (triple fault)")
        return self._stop(ExitReason.CRASH, "triple fault (KVM_EXIT_SHUTDOWN)")

    def _stop(self, reason: ExitReason, detail: str) -> VcpuStop:
        log.warning("vcpu%d: %s", self.index, detail)
        return VcpuStop(reason, f"vcpu{self.index}: {detail}")

    def _unexpected(self, detail: str) -> VcpuStop:
        self.counts["unexpected"] += 1
        return self._stop(ExitReason.ERROR, detail)
