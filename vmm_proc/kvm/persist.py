"""Save and restore the KVM-side state of a VM and its vCPUs, in the order KVM needs.

Restore order of a vCPU and why (Firecracker's x86_64 vCPU persist code and
Documentation/virt/kvm/api.rst give the same reasons):

* CPUID first: KVM derives what the other SET ioctls accept (XSAVE features, MSRs) from it.
* REGS before VCPU_EVENTS: KVM_SET_REGS clears pending exceptions; the events restore them.
* SREGS before LAPIC: SREGS carries the APIC base MSR the LAPIC page is interpreted with.
* LAPIC before MSRs: the TSC-deadline MSR only takes when the LAPIC is in that timer mode.
* IA32_TSC before IA32_TSC_DEADLINE: a deadline is meaningful only on the restored TSC.
* VCPU_EVENTS last: the other SET ioctls may change pending-event state.

The VM's irqchip and PIT go in before the vCPUs run; its clock is set after every vCPU's
TSC (``restore_clock``), so the kvmclock the guest reads continues from the saved value.
"""

from __future__ import annotations

import errno
from dataclasses import dataclass

from vmm_proc.kvm.cap import Cap
from vmm_proc.kvm.errors import KvmError
from vmm_proc.kvm.state_types import ClockData, DebugRegs, IoapicState, PicState, PitState, Xcr
from vmm_proc.kvm.types import CpuidEntry, Regs, Sregs
from vmm_proc.kvm.vcpu import VcpuFd
from vmm_proc.kvm.vcpu_state_ioctls import VCPU_EVENTS_SIZE, XSAVE_LEGACY_SIZE
from vmm_proc.kvm.vm import IRQCHIP_PIC_MASTER, IRQCHIP_PIC_SLAVE, VmFd

__all__ = (
    "MSR_IA32_TSC",
    "MSR_IA32_TSC_DEADLINE",
    "VcpuSaved",
    "VmSaved",
    "msrs_to_save",
    "restore_clock",
    "restore_vcpu",
    "restore_vm",
    "save_vcpu",
    "save_vm",
)

MSR_IA32_TSC = 0x10
MSR_IA32_TSC_DEADLINE = 0x6E0
LAPIC_SIZE = 1024
# In KVM_GET_MSR_INDEX_LIST but not state to carry: IA32_FEATURE_CONTROL and IA32_MCG_CTL
# are not exported by Linux guests (Firecracker leaves them out for that reason). MSRs that
# this vCPU's CPUID hides fail KVM_GET_MSRS and are dropped at save time.
_NOT_STATE = frozenset({0x3A, 0x17B})
_DEFERRED = (MSR_IA32_TSC_DEADLINE,)
# Two TSC rates within 250 ppm are the same clock calibrated twice (Firecracker's bound).
_TSC_KHZ_TOLERANCE = 250e-6


@dataclass
class VcpuSaved:
    """Everything KVM holds for one vCPU; ``msrs`` keeps KVM's index order."""

    vcpu_id: int
    cpuid: list[CpuidEntry]
    mp_state: int
    regs: Regs
    sregs: Sregs
    xsave: bytes
    xcrs: list[Xcr]
    debugregs: DebugRegs
    lapic: bytes
    msrs: dict[int, int]
    events: bytes
    tsc_khz: int


@dataclass
class VmSaved:
    """The in-kernel irqchip (PIC pair, IOAPIC), PIT and kvmclock of a VM."""

    pic_master: PicState
    pic_slave: PicState
    ioapic: IoapicState
    pit: PitState
    clock: ClockData


# Not in KVM_GET_MSR_INDEX_LIST yet guest state KVM keeps per vCPU (QEMU carries them too):
# MTRRdefType, the fixed-range and the eight variable-range MTRR pairs.
_MTRRS = (0x2FF, 0x250, 0x258, 0x259, *range(0x268, 0x270), *range(0x200, 0x210))


def msrs_to_save(index_list: list[int]) -> list[int]:
    """The MSRs of KVM_GET_MSR_INDEX_LIST worth carrying in a snapshot, plus the MTRRs."""
    listed = [i for i in index_list if i not in _NOT_STATE]
    return listed + [i for i in _MTRRS if i not in listed]


def _readable_msrs(vcpu: VcpuFd, indices: list[int]) -> dict[int, int]:
    """KVM_GET_MSRS of ``indices``; MSRs this vCPU's CPUID hides are left out one by one."""
    try:
        return vcpu.get_msrs(indices)
    except KvmError as e:
        if e.errno != errno.EINVAL:
            raise
    out: dict[int, int] = {}
    for index in indices:
        try:
            out.update(vcpu.get_msrs([index]))
        except KvmError as e:
            if e.errno != errno.EINVAL:
                raise
    return out


def save_vcpu(vcpu: VcpuFd, msr_indices: list[int], xsave_size: int) -> VcpuSaved:
    """Read a vCPU's state; its thread must be outside KVM_RUN, as must every other vCPU's.

    MP state comes first (KVM_GET_MP_STATE processes pending INIT/SIPI, which changes the
    rest) and events last, mirroring the restore order.
    """
    mp_state = vcpu.get_mp_state()
    regs = vcpu.get_regs()
    sregs = vcpu.get_sregs()
    xsave = vcpu.get_xsave(xsave_size)
    xcrs = vcpu.get_xcrs()
    debugregs = vcpu.get_debugregs()
    lapic = vcpu.get_lapic()
    tsc_khz = vcpu.get_tsc_khz()
    cpuid = vcpu.get_cpuid2()
    msrs = _readable_msrs(vcpu, msr_indices)
    # A zero TSC deadline can hide a timer interrupt KVM has not delivered yet; restoring it
    # as "now" makes it fire at once, and the guest re-arms its timer (Firecracker saw
    # vCPUs with no timer interrupt after restore otherwise). Ignored outside deadline mode.
    if msrs.get(MSR_IA32_TSC_DEADLINE) == 0 and MSR_IA32_TSC in msrs:
        msrs[MSR_IA32_TSC_DEADLINE] = msrs[MSR_IA32_TSC]
    events = vcpu.get_vcpu_events()
    return VcpuSaved(
        vcpu.vcpu_id, cpuid, mp_state, regs, sregs, xsave, xcrs, debugregs, lapic, msrs,
        events, tsc_khz,
    )  # fmt: skip


def check_tsc_khz(saved_khz: int, host_khz: int, can_scale: bool) -> bool:
    """Whether the TSC must be scaled; raises KvmError if it must and cannot be.

    :param can_scale: Cap.TSC_CONTROL is present.
    """
    if abs(host_khz - saved_khz) <= saved_khz * _TSC_KHZ_TOLERANCE:
        return False
    if not can_scale:
        raise KvmError(
            "KVM_SET_TSC_KHZ",
            errno.ENOTSUP,
            f"snapshot TSC runs at {saved_khz} kHz, this host at {host_khz} kHz, and KVM "
            "cannot scale it (no TSC_CONTROL)",
        )
    return True


def restore_vcpu(vcpu: VcpuFd, s: VcpuSaved, can_scale_tsc: bool) -> None:
    """Load ``s`` into a fresh vCPU of the same id, in the order of the module docstring."""
    if vcpu.vcpu_id != s.vcpu_id:
        raise ValueError(f"state of vcpu id {s.vcpu_id} given to vcpu id {vcpu.vcpu_id}")
    if len(s.lapic) != LAPIC_SIZE or len(s.events) != VCPU_EVENTS_SIZE:
        raise ValueError("LAPIC or vCPU events blob has the wrong size")
    if len(s.xsave) < XSAVE_LEGACY_SIZE:
        raise ValueError(f"XSAVE area of {len(s.xsave)} bytes is too small")
    vcpu.set_cpuid2(s.cpuid)
    if check_tsc_khz(s.tsc_khz, vcpu.get_tsc_khz(), can_scale_tsc):
        vcpu.set_tsc_khz(s.tsc_khz)
    vcpu.set_mp_state(s.mp_state)
    vcpu.set_regs(s.regs)
    vcpu.set_sregs(s.sregs)
    vcpu.set_xsave(s.xsave)
    if s.xcrs:  # a host without XSAVE reports none, and refuses KVM_SET_XCRS (EINVAL)
        vcpu.set_xcrs(s.xcrs)
    vcpu.set_debugregs(s.debugregs)
    vcpu.set_lapic(s.lapic)
    first = {i: v for i, v in s.msrs.items() if i not in _DEFERRED}
    later = {i: s.msrs[i] for i in _DEFERRED if i in s.msrs}
    vcpu.set_msrs(first)
    if later:
        vcpu.set_msrs(later)
    vcpu.set_vcpu_events(s.events)


def save_vm(vm: VmFd) -> VmSaved:
    """Read the irqchip, PIT and clock (all vCPUs outside KVM_RUN)."""
    return VmSaved(
        vm.get_pic(IRQCHIP_PIC_MASTER),
        vm.get_pic(IRQCHIP_PIC_SLAVE),
        vm.get_ioapic(),
        vm.get_pit2(),
        vm.get_clock(),
    )


def restore_vm(vm: VmFd, s: VmSaved) -> None:
    """Load irqchip and PIT into a fresh VM (after KVM_CREATE_IRQCHIP and KVM_CREATE_PIT2)."""
    vm.set_pic(IRQCHIP_PIC_MASTER, s.pic_master)
    vm.set_pic(IRQCHIP_PIC_SLAVE, s.pic_slave)
    vm.set_ioapic(s.ioapic)
    vm.set_pit2(s.pit)


def restore_clock(vm: VmFd, s: VmSaved, vcpus: list[VcpuFd]) -> None:
    """Set the kvmclock after every vCPU's TSC, then tell the guest it was paused."""
    vm.set_clock(s.clock.clock)
    for vcpu in vcpus:
        vcpu.kvmclock_ctrl()


def xsave_size(vm: VmFd) -> int:
    """Bytes of the XSAVE area on this host (Cap.XSAVE2 on the VM, else 4 KiB)."""
    try:
        size = vm.check_extension(Cap.XSAVE2)
    except KvmError:
        size = 0
    return max(size, XSAVE_LEGACY_SIZE)
