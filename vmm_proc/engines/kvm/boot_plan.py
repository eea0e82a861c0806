"""How a VM gets its first instructions: a ``Boot`` strategy writes memory and returns a plan.

``LinuxBoot`` (``linux_boot.py``) loads a kernel; ``RawBoot`` puts a code blob and entry
registers in place for micro-guests. Both only describe vCPU state; the engine applies it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

from vmm_proc.kvm.types import Regs, Sregs
from vmm_proc.mem.access import GuestMemoryAccess

__all__ = ("Boot", "BootPlan", "MmioDevice", "RawBoot", "VcpuEntry", "MP_STATE_RUNNABLE")

# KVM_MP_STATE_RUNNABLE (include/uapi/linux/kvm.h)
MP_STATE_RUNNABLE = 0


@dataclass(frozen=True)
class MmioDevice:
    """A virtio-mmio device the firmware tables must describe."""

    base: int
    size: int
    gsi: int


@dataclass
class VcpuEntry:
    """Entry state of one vCPU.

    :param sregs: full special registers (e.g. long mode), or None to keep KVM's reset state.
    :param real_mode_cs_base: if set, CS gets this base and selector ``base >> 4`` (real
        mode; KVM's reset CS base is 0xffff0000).
    :param msrs: ``(index, value)`` pairs to set.
    """

    regs: Regs
    sregs: Sregs | None = None
    real_mode_cs_base: int | None = None
    msrs: tuple[tuple[int, int], ...] = ()


@dataclass
class BootPlan:
    """What the engine applies before starting the vCPUs.

    :param bsp: vCPU 0.
    :param aps: one entry per other vCPU, or None: it waits for INIT/SIPI from the BSP
        through the in-kernel local APIC (KVM_MP_STATE_UNINITIALIZED); it still runs
        KVM_RUN, which sleeps in the kernel until the SIPI arrives.
    :param cmdline: the final kernel command line (for the log), if any.
    """

    bsp: VcpuEntry
    aps: list[VcpuEntry | None] = field(default_factory=list)
    cmdline: str = ""


class Boot(Protocol):
    """Writes the guest image into memory and returns the vCPU plan.

    :param mem: guest RAM.
    :param mem_bytes: RAM size.
    :param nr_vcpus: vCPUs of the VM (``aps`` of the plan has ``nr_vcpus - 1`` items).
    :param devices: virtio-mmio devices to describe to the guest.
    """

    def prepare(
        self, mem: GuestMemoryAccess, mem_bytes: int, nr_vcpus: int, devices: list[MmioDevice]
    ) -> BootPlan: ...


@dataclass(frozen=True)
class RawBoot:
    """A micro-guest: ``code`` at ``gpa``, the BSP entering in real mode at ``regs.rip``.

    :param regs: BSP registers (``rip`` is a real-mode offset from CS base 0).
    :param ap_regs: if given, every AP starts RUNNABLE in real mode with these registers
        plus ``rbx = vcpu index``; if None, APs wait for INIT/SIPI.
    :param extra: more blobs to write, ``(gpa, bytes)``.
    """

    code: bytes
    gpa: int = 0x1000
    regs: Regs = field(default_factory=lambda: Regs(rip=0x1000, rsp=0x8000))
    ap_regs: Regs | None = None
    extra: tuple[tuple[int, bytes], ...] = ()

    def prepare(
        self, mem: GuestMemoryAccess, mem_bytes: int, nr_vcpus: int, devices: list[MmioDevice]
    ) -> BootPlan:
        mem.write(self.gpa, self.code)
        for gpa, blob in self.extra:
            mem.write(gpa, blob)
        aps: list[VcpuEntry | None] = []
        for index in range(1, nr_vcpus):
            if self.ap_regs is None:
                aps.append(None)
                continue
            regs = Regs(**vars(self.ap_regs))
            regs.rbx = index
            aps.append(VcpuEntry(regs, real_mode_cs_base=0))
        return BootPlan(VcpuEntry(Regs(**vars(self.regs)), real_mode_cs_base=0), aps)
