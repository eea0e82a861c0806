"""How a VM gets its first instructions: a ``Boot`` strategy writes memory and returns a plan.

``LinuxBoot`` (``linux_boot.py``) loads a kernel; ``RawBoot`` puts a code blob and entry
registers in place for micro-guests. Both only describe vCPU state; the engine applies it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal, Protocol

from vmm_proc.arch.x86_64.gdt import write_gdt
from vmm_proc.arch.x86_64.paging import write_identity_page_tables
from vmm_proc.arch.x86_64.regs import long_mode_sregs
from vmm_proc.kvm.types import Regs, Sregs
from vmm_proc.mem.access import GuestMemoryAccess

__all__ = (
    "Boot",
    "BootPlan",
    "MmioDevice",
    "RawBoot",
    "VcpuEntry",
    "MP_STATE_RUNNABLE",
    "long_mode",
    "real_mode",
)

# KVM_MP_STATE_RUNNABLE (include/uapi/linux/kvm.h)
MP_STATE_RUNNABLE = 0


@dataclass(frozen=True)
class MmioDevice:
    """A virtio-mmio device the firmware tables must describe."""

    base: int
    size: int
    gsi: int


SregsEdit = Callable[[Sregs], Sregs]


@dataclass
class VcpuEntry:
    """Entry state of one vCPU.

    :param sregs: maps the vCPU's current special registers (KVM_GET_SREGS, which holds
        e.g. its APIC base) to the entry ones; None keeps KVM's reset state.
    :param msrs: ``(index, value)`` pairs to set.
    """

    regs: Regs
    sregs: SregsEdit | None = None
    msrs: tuple[tuple[int, int], ...] = ()


def real_mode(cs_base: int = 0) -> SregsEdit:
    """Real mode with CS base ``cs_base`` (KVM's reset CS base is 0xffff0000)."""

    def edit(sregs: Sregs) -> Sregs:
        sregs.cs.base, sregs.cs.selector = cs_base, cs_base >> 4
        return sregs

    return edit


def long_mode(mem: GuestMemoryAccess) -> SregsEdit:
    """64-bit mode with [0, 4 GiB) identity-mapped; writes the GDT and page tables."""
    gdt = write_gdt(mem)
    cr3 = write_identity_page_tables(mem, 4)
    return lambda sregs: long_mode_sregs(sregs, gdt, cr3)


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
    """A micro-guest: ``code`` at ``gpa``, the BSP entering at ``regs.rip``.

    :param regs: BSP registers (in real mode ``rip`` is an offset from CS base 0).
    :param mode: "real" (flat CS base 0) or "long" (64-bit, 4 GiB identity-mapped).
    :param ap_regs: if given, every AP starts RUNNABLE in ``mode`` with these registers
        plus ``rbx = vcpu index``; if None, APs wait for INIT/SIPI.
    :param extra: more blobs to write, ``(gpa, bytes)``.
    """

    code: bytes
    gpa: int = 0x1000
    regs: Regs = field(default_factory=lambda: Regs(rip=0x1000, rsp=0x8000))
    mode: Literal["real", "long"] = "real"
    ap_regs: Regs | None = None
    extra: tuple[tuple[int, bytes], ...] = ()

    def prepare(
        self, mem: GuestMemoryAccess, mem_bytes: int, nr_vcpus: int, devices: list[MmioDevice]
    ) -> BootPlan:
        edit = long_mode(mem) if self.mode == "long" else real_mode(0)
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
            aps.append(VcpuEntry(regs, edit))
        return BootPlan(VcpuEntry(Regs(**vars(self.regs)), edit), aps)
