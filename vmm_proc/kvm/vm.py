"""VmFd: ioctls valid on a VM fd (memory slots, irqchip, PIT, irqfd, ioeventfd, vCPUs)."""

from __future__ import annotations

from vmm_proc.kvm import ioctls
from vmm_proc.kvm._fd import FdOwner
from vmm_proc.kvm._ffi import ffi
from vmm_proc.kvm.cap import Cap
from vmm_proc.kvm.vcpu import VcpuFd

__all__ = (
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
