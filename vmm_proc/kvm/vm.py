"""VmFd: ioctls valid on a VM fd (memory slots, irqchip, PIT, irqfd, ioeventfd, vCPUs)."""

from __future__ import annotations

from typing import Any

from vmm_proc.kvm import ioctls
from vmm_proc.kvm._convert_state import (
    ioapic_from_c,
    ioapic_to_c,
    pic_from_c,
    pic_to_c,
    pit_from_c,
    pit_to_c,
)
from vmm_proc.kvm._fd import FdOwner
from vmm_proc.kvm._ffi import ffi
from vmm_proc.kvm.cap import Cap
from vmm_proc.kvm.state_types import ClockData, IoapicState, PicState, PitState
from vmm_proc.kvm.vcpu import VcpuFd

__all__ = (
    "DISABLE_EXITS_CSTATE",
    "DISABLE_EXITS_HLT",
    "DISABLE_EXITS_MWAIT",
    "DISABLE_EXITS_PAUSE",
    "IRQCHIP_IOAPIC",
    "IRQCHIP_PIC_MASTER",
    "IRQCHIP_PIC_SLAVE",
    "KVM_MEM_LOG_DIRTY_PAGES",
    "KVM_MEM_READONLY",
    "KVM_PIT_SPEAKER_DUMMY",
    "VmFd",
)

KVM_MEM_LOG_DIRTY_PAGES = 1 << 0
KVM_MEM_READONLY = 1 << 1
KVM_PIT_SPEAKER_DUMMY = 1
_IRQFD_FLAG_DEASSIGN = 1 << 0
_IRQFD_FLAG_RESAMPLE = 1 << 1
_IOEVENTFD_FLAG_DATAMATCH = 1 << 0
_IOEVENTFD_FLAG_PIO = 1 << 1
_IOEVENTFD_FLAG_DEASSIGN = 1 << 2
IRQCHIP_PIC_MASTER, IRQCHIP_PIC_SLAVE, IRQCHIP_IOAPIC = 0, 1, 2  # KVM_IRQCHIP_*
# KVM_X86_DISABLE_EXITS_* (arguments of Cap.X86_DISABLE_EXITS)
DISABLE_EXITS_MWAIT, DISABLE_EXITS_HLT, DISABLE_EXITS_PAUSE, DISABLE_EXITS_CSTATE = 1, 2, 4, 8


class VmFd(FdOwner):
    """A KVM virtual machine; made by ``Kvm.create_vm()``.

    :param fd: the VM descriptor, owned from now on.
    :param vcpu_mmap_size: KVM_GET_VCPU_MMAP_SIZE, needed to map each vCPU's kvm_run.
    """

    def __init__(self, fd: int, vcpu_mmap_size: int) -> None:
        super().__init__(fd)
        self.vcpu_mmap_size = vcpu_mmap_size

    def check_extension(self, cap: Cap) -> int:
        """KVM_CHECK_EXTENSION on the VM (per-VM answers, Cap.CHECK_EXTENSION_VM)."""
        return self._ioctl(ioctls.KVM_CHECK_EXTENSION, int(cap), "KVM_CHECK_EXTENSION")

    def set_user_memory_region(
        self, slot: int, gpa: int, size: int, host_addr: int, flags: int = 0
    ) -> None:
        """KVM_SET_USER_MEMORY_REGION; ``size == 0`` deletes the slot.

        :param host_addr: the userspace address of the backing mapping.
        :param flags: KVM_MEM_LOG_DIRTY_PAGES / KVM_MEM_READONLY.
        """
        region = ffi.new(
            "struct kvm_userspace_memory_region *",
            {
                "slot": slot,
                "flags": flags,
                "guest_phys_addr": gpa,
                "memory_size": size,
                "userspace_addr": host_addr,
            },
        )
        self._ioctl(ioctls.KVM_SET_USER_MEMORY_REGION, region, "KVM_SET_USER_MEMORY_REGION")

    def set_tss_addr(self, addr: int) -> None:
        """KVM_SET_TSS_ADDR: three pages below 4 GiB that Intel VMX needs for real mode."""
        self._ioctl(ioctls.KVM_SET_TSS_ADDR, addr, "KVM_SET_TSS_ADDR")

    def set_identity_map_addr(self, addr: int) -> None:
        """KVM_SET_IDENTITY_MAP_ADDR: one page for the VMX real-mode identity page table."""
        value = ffi.new("uint64_t *", addr)
        self._ioctl(ioctls.KVM_SET_IDENTITY_MAP_ADDR, value, "KVM_SET_IDENTITY_MAP_ADDR")

    def create_irqchip(self) -> None:
        """KVM_CREATE_IRQCHIP: in-kernel PIC pair, IOAPIC and per-vCPU local APICs."""
        self._ioctl(ioctls.KVM_CREATE_IRQCHIP, None, "KVM_CREATE_IRQCHIP")

    def create_pit2(self, flags: int = KVM_PIT_SPEAKER_DUMMY) -> None:
        """KVM_CREATE_PIT2 (after create_irqchip); the dummy speaker absorbs port 0x61."""
        config = ffi.new("struct kvm_pit_config *", {"flags": flags})
        self._ioctl(ioctls.KVM_CREATE_PIT2, config, "KVM_CREATE_PIT2")

    def set_irq_line(self, irq: int, level: int) -> None:
        """KVM_IRQ_LINE: drive GSI ``irq`` to ``level`` (0 or 1) on the in-kernel irqchip."""
        arg = ffi.new("struct kvm_irq_level *", {"irq": irq, "level": level})
        self._ioctl(ioctls.KVM_IRQ_LINE, arg, "KVM_IRQ_LINE")

    def irqfd(self, eventfd: int, gsi: int, resamplefd: int | None = None) -> None:
        """KVM_IRQFD: writing to ``eventfd`` raises GSI ``gsi`` (level-triggered with resample)."""
        flags = 0 if resamplefd is None else _IRQFD_FLAG_RESAMPLE
        self._irqfd(eventfd, gsi, flags, resamplefd or 0)

    def irqfd_deassign(self, eventfd: int, gsi: int) -> None:
        """KVM_IRQFD with KVM_IRQFD_FLAG_DEASSIGN."""
        self._irqfd(eventfd, gsi, _IRQFD_FLAG_DEASSIGN, 0)

    def _irqfd(self, eventfd: int, gsi: int, flags: int, resamplefd: int) -> None:
        arg = ffi.new(
            "struct kvm_irqfd *",
            {"fd": eventfd, "gsi": gsi, "flags": flags, "resamplefd": resamplefd},
        )
        self._ioctl(ioctls.KVM_IRQFD, arg, "KVM_IRQFD")

    def ioeventfd(
        self,
        eventfd: int,
        addr: int,
        length: int,
        datamatch: int | None = None,
        pio: bool = False,
    ) -> None:
        """KVM_IOEVENTFD: a guest write of ``length`` bytes at ``addr`` signals ``eventfd``.

        :param length: 1, 2, 4 or 8 (0: any length, Cap.IOEVENTFD_ANY_LENGTH).
        :param datamatch: only writes of this value signal, if given.
        :param pio: port I/O space instead of MMIO.
        """
        self._ioeventfd(eventfd, addr, length, datamatch, pio, 0)

    def ioeventfd_deassign(
        self,
        eventfd: int,
        addr: int,
        length: int,
        datamatch: int | None = None,
        pio: bool = False,
    ) -> None:
        """Undo an ioeventfd() registered with the same arguments."""
        self._ioeventfd(eventfd, addr, length, datamatch, pio, _IOEVENTFD_FLAG_DEASSIGN)

    def _ioeventfd(
        self, eventfd: int, addr: int, length: int, datamatch: int | None, pio: bool, flags: int
    ) -> None:
        if datamatch is not None:
            flags |= _IOEVENTFD_FLAG_DATAMATCH
        if pio:
            flags |= _IOEVENTFD_FLAG_PIO
        arg = ffi.new(
            "struct kvm_ioeventfd *",
            {
                "datamatch": datamatch or 0,
                "addr": addr,
                "len": length,
                "fd": eventfd,
                "flags": flags,
            },
        )
        self._ioctl(ioctls.KVM_IOEVENTFD, arg, "KVM_IOEVENTFD")

    def create_vcpu(self, vcpu_id: int) -> VcpuFd:
        """KVM_CREATE_VCPU; the fd is owned before its kvm_run page is mapped.

        :param vcpu_id: becomes the initial APIC ID.
        """
        fd = self._ioctl(ioctls.KVM_CREATE_VCPU, vcpu_id, "KVM_CREATE_VCPU")
        vcpu = VcpuFd(fd, vcpu_id)
        try:
            vcpu.map_run(self.vcpu_mmap_size)
        except BaseException:
            vcpu.close()
            raise
        return vcpu

    # -- VM-wide state (snapshots) -----------------------------------------------------

    def get_pic(self, chip: int) -> PicState:
        """KVM_GET_IRQCHIP for IRQCHIP_PIC_MASTER or IRQCHIP_PIC_SLAVE."""
        if chip not in (IRQCHIP_PIC_MASTER, IRQCHIP_PIC_SLAVE):
            raise ValueError(f"chip {chip} is not a PIC")
        return pic_from_c(self._get_irqchip(chip).chip.pic)

    def set_pic(self, chip: int, state: PicState) -> None:
        """KVM_SET_IRQCHIP for one PIC."""
        if chip not in (IRQCHIP_PIC_MASTER, IRQCHIP_PIC_SLAVE):
            raise ValueError(f"chip {chip} is not a PIC")
        c = ffi.new("struct kvm_irqchip *", {"chip_id": chip})
        pic_to_c(state, c.chip.pic)
        self._ioctl(ioctls.KVM_SET_IRQCHIP, c, "KVM_SET_IRQCHIP")

    def get_ioapic(self) -> IoapicState:
        """KVM_GET_IRQCHIP for the IOAPIC."""
        return ioapic_from_c(self._get_irqchip(IRQCHIP_IOAPIC).chip.ioapic)

    def set_ioapic(self, state: IoapicState) -> None:
        """KVM_SET_IRQCHIP for the IOAPIC."""
        c = ffi.new("struct kvm_irqchip *", {"chip_id": IRQCHIP_IOAPIC})
        ioapic_to_c(state, c.chip.ioapic)
        self._ioctl(ioctls.KVM_SET_IRQCHIP, c, "KVM_SET_IRQCHIP")

    def _get_irqchip(self, chip: int) -> Any:
        c = ffi.new("struct kvm_irqchip *", {"chip_id": chip})
        self._ioctl(ioctls.KVM_GET_IRQCHIP, c, "KVM_GET_IRQCHIP")
        return c

    def get_pit2(self) -> PitState:
        """KVM_GET_PIT2 (Cap.PIT_STATE2)."""
        c = ffi.new("struct kvm_pit_state2 *")
        self._ioctl(ioctls.KVM_GET_PIT2, c, "KVM_GET_PIT2")
        return pit_from_c(c)

    def set_pit2(self, state: PitState) -> None:
        """KVM_SET_PIT2."""
        self._ioctl(ioctls.KVM_SET_PIT2, pit_to_c(state), "KVM_SET_PIT2")

    def get_clock(self) -> ClockData:
        """KVM_GET_CLOCK: the kvmclock value in ns (Cap.ADJUST_CLOCK)."""
        c = ffi.new("struct kvm_clock_data *")
        self._ioctl(ioctls.KVM_GET_CLOCK, c, "KVM_GET_CLOCK")
        return ClockData(int(c.clock), int(c.flags))

    def set_clock(self, clock: int) -> None:
        """KVM_SET_CLOCK to ``clock`` ns with no flags: the guest's clock resumes from there
        (KVM_CLOCK_REALTIME would instead add the host time passed since the save)."""
        c = ffi.new("struct kvm_clock_data *", {"clock": clock})
        self._ioctl(ioctls.KVM_SET_CLOCK, c, "KVM_SET_CLOCK")

    def enable_cap(self, cap: Cap, *args: int) -> None:
        """KVM_ENABLE_CAP on the VM (Cap.ENABLE_CAP_VM), e.g. X86_DISABLE_EXITS with a mask."""
        if len(args) > 4:
            raise ValueError("KVM_ENABLE_CAP takes at most 4 arguments")
        c = ffi.new("struct kvm_enable_cap *", {"cap": int(cap), "args": list(args)})
        self._ioctl(ioctls.KVM_ENABLE_CAP, c, f"KVM_ENABLE_CAP({cap.name})")
