"""Machine: the KVM VM with its RAM, in-kernel irqchip, PIT and vCPUs, before any boot state.

Created in the order KVM requires: TSS and identity-map pages and the irqchip before any
vCPU (Documentation/virt/kvm/api.rst, KVM_CREATE_IRQCHIP), PIT2 after the irqchip.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence

from vmm_proc.engines.base import EngineError
from vmm_proc.engines.kvm.vcpu_setup import CpuidFor
from vmm_proc.kvm.cap import Cap
from vmm_proc.kvm.system import Kvm
from vmm_proc.kvm.vcpu import VcpuFd
from vmm_proc.kvm.vm import VmFd
from vmm_proc.mem.guest_memory import GuestMemory

__all__ = ("Machine", "REQUIRED_CAPS", "TSS_ADDR", "IDENTITY_MAP_ADDR")

log = logging.getLogger(__name__)

# Everything the engine relies on; checked up front so a host without one fails by name.
REQUIRED_CAPS = (
    Cap.USER_MEMORY,
    Cap.IRQCHIP,
    Cap.PIT2,
    Cap.IRQFD,
    Cap.IOEVENTFD,
    Cap.SET_TSS_ADDR,
    Cap.EXT_CPUID,
    Cap.MP_STATE,
    Cap.IMMEDIATE_EXIT,
)

# Three TSS pages plus the identity-map page just below the BIOS area, inside the PCI hole
# (never RAM); the same spot firecracker and QEMU use.
TSS_ADDR = 0xFFFB_D000
IDENTITY_MAP_ADDR = 0xFFFB_C000


def check_caps(kvm: Kvm) -> None:
    """Raise EngineError naming every missing capability."""
    missing = [c.name for c in REQUIRED_CAPS if not kvm.has(c)]
    if missing:
        raise EngineError(f"/dev/kvm lacks capabilities the KVM engine needs: {', '.join(missing)}")


class Machine:
    """Owns the KVM handles and guest RAM of one VM; ``close()`` releases all (idempotent).

    Build with :meth:`create`; vCPU ``i`` has KVM vcpu id (initial APIC ID) ``apic_ids[i]``.
    """

    def __init__(self, kvm: Kvm) -> None:
        self.kvm = kvm
        self.vm: VmFd | None = None
        self.mem: GuestMemory | None = None
        self.vcpus: list[VcpuFd] = []
        self.vm_caps: list[str] = []  # VM capabilities enabled at creation (for the log)

    @classmethod
    def create(
        cls,
        mem_path: str,
        mem_bytes: int,
        apic_ids: Sequence[int],
        cpuid_for: CpuidFor | None,
        kvm_path: str = "/dev/kvm",
        memory: Callable[[], GuestMemory] | None = None,
        before_vcpus: Callable[[Machine], None] | None = None,
    ) -> Machine:
        """Open KVM, check capabilities, create the VM, RAM, irqchip, PIT and vCPUs.

        :param cpuid_for: ``(supported, i)`` -> the CPUID table of vCPU ``i``; None leaves
            CPUID and the LAPIC to a snapshot restore.
        :param memory: makes the guest RAM (default: a new file at ``mem_path``).
        :param before_vcpus: VM-wide setup that KVM accepts only before any vCPU exists
            (KVM_CAP_X86_DISABLE_EXITS).
        :raises EngineError: a missing capability.
        :raises KvmError, OSError: a failed ioctl or RAM file (everything made is released).
        """
        m = cls(Kvm.open(kvm_path))
        try:
            check_caps(m.kvm)
            m._build(mem_path, mem_bytes, apic_ids, cpuid_for, memory, before_vcpus)
        except BaseException:
            m.close()
            raise
        return m

    def _build(
        self,
        mem_path: str,
        mem_bytes: int,
        apic_ids: Sequence[int],
        cpuid_for: CpuidFor | None,
        memory: Callable[[], GuestMemory] | None,
        before_vcpus: Callable[[Machine], None] | None,
    ) -> None:
        self.vm = vm = self.kvm.create_vm()
        vm.set_tss_addr(TSS_ADDR)
        if self.kvm.has(Cap.SET_IDENTITY_MAP_ADDR):
            vm.set_identity_map_addr(IDENTITY_MAP_ADDR)
        vm.create_irqchip()
        vm.create_pit2()
        self.mem = memory() if memory is not None else GuestMemory.create(mem_path, mem_bytes)
        for slot, region in enumerate(self.mem.regions):
            vm.set_user_memory_region(slot, region.gpa, region.size, region.host_addr)
        if before_vcpus is not None:
            before_vcpus(self)
        supported = self.kvm.supported_cpuid() if cpuid_for is not None else []
        for index, apic_id in enumerate(apic_ids):
            vcpu = vm.create_vcpu(apic_id)
            self.vcpus.append(vcpu)
            if cpuid_for is None:
                continue
            vcpu.set_cpuid2(cpuid_for(supported, index))
            # LINT0 ExtINT (PIC virtual wire) and LINT1 NMI on every CPU, as firmware does.
            vcpu.configure_lints()

    def close(self) -> None:
        """Close vCPUs, the VM, KVM and RAM (unmapping and unlinking its file)."""
        vcpus, self.vcpus = self.vcpus, []
        for vcpu in vcpus:
            vcpu.close()
        if self.vm is not None:
            self.vm.close()
        self.kvm.close()
        if self.mem is not None:
            self.mem.close()
