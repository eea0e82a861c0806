"""KVM ioctl request numbers, computed like the kernel's _IO/_IOR/_IOW/_IOWR macros.

Only the number table lives here (include/uapi/linux/kvm.h; asm-generic/ioctl.h for the
encoding). Each entry names the capability that gates it; "base" means always present.
"""

from __future__ import annotations

from vmm_proc.kvm._ffi import ffi

KVMIO = 0xAE
_NONE, _WRITE, _READ = 0, 1, 2


def _ioc(direction: int, nr: int, size: int) -> int:
    return (direction << 30) | (size << 16) | (KVMIO << 8) | nr


def io(nr: int) -> int:
    """_IO(KVMIO, nr)."""
    return _ioc(_NONE, nr, 0)


def ior(nr: int, ctype: str) -> int:
    """_IOR(KVMIO, nr, ctype)."""
    return _ioc(_READ, nr, ffi.sizeof(ctype))


def iow(nr: int, ctype: str) -> int:
    """_IOW(KVMIO, nr, ctype)."""
    return _ioc(_WRITE, nr, ffi.sizeof(ctype))


def iowr(nr: int, ctype: str) -> int:
    """_IOWR(KVMIO, nr, ctype)."""
    return _ioc(_READ | _WRITE, nr, ffi.sizeof(ctype))


# System (/dev/kvm) ioctls.
KVM_GET_API_VERSION = io(0x00)  # base
KVM_CREATE_VM = io(0x01)  # base
KVM_GET_MSR_INDEX_LIST = iowr(0x02, "struct kvm_msr_list")  # base (x86)
KVM_CHECK_EXTENSION = io(0x03)  # base; on a VM fd: Cap.CHECK_EXTENSION_VM
KVM_GET_VCPU_MMAP_SIZE = io(0x04)  # base
KVM_GET_SUPPORTED_CPUID = iowr(0x05, "struct kvm_cpuid2")  # Cap.EXT_CPUID

# VM ioctls.
KVM_CREATE_VCPU = io(0x41)  # base
KVM_SET_USER_MEMORY_REGION = iow(0x46, "struct kvm_userspace_memory_region")  # Cap.USER_MEMORY
KVM_SET_TSS_ADDR = io(0x47)  # Cap.SET_TSS_ADDR
KVM_SET_IDENTITY_MAP_ADDR = iow(0x48, "uint64_t")  # Cap.SET_IDENTITY_MAP_ADDR
KVM_CREATE_IRQCHIP = io(0x60)  # Cap.IRQCHIP
KVM_IRQ_LINE = iow(0x61, "struct kvm_irq_level")  # Cap.IRQCHIP
KVM_IRQFD = iow(0x76, "struct kvm_irqfd")  # Cap.IRQFD
KVM_CREATE_PIT2 = iow(0x77, "struct kvm_pit_config")  # Cap.PIT2
KVM_IOEVENTFD = iow(0x79, "struct kvm_ioeventfd")  # Cap.IOEVENTFD
KVM_GET_IRQCHIP = iowr(0x62, "struct kvm_irqchip")  # Cap.IRQCHIP
KVM_SET_IRQCHIP = ior(0x63, "struct kvm_irqchip")  # Cap.IRQCHIP (an _IOR by history)
KVM_SET_CLOCK = iow(0x7B, "struct kvm_clock_data")  # Cap.ADJUST_CLOCK
KVM_GET_CLOCK = ior(0x7C, "struct kvm_clock_data")  # Cap.ADJUST_CLOCK
KVM_GET_PIT2 = ior(0x9F, "struct kvm_pit_state2")  # Cap.PIT_STATE2
KVM_SET_PIT2 = iow(0xA0, "struct kvm_pit_state2")  # Cap.PIT_STATE2
KVM_ENABLE_CAP = iow(0xA3, "struct kvm_enable_cap")  # Cap.ENABLE_CAP (VM: ENABLE_CAP_VM)

# vCPU ioctls.
KVM_RUN = io(0x80)  # base
KVM_GET_REGS = ior(0x81, "struct kvm_regs")  # base
KVM_SET_REGS = iow(0x82, "struct kvm_regs")  # base
KVM_GET_SREGS = ior(0x83, "struct kvm_sregs")  # base
KVM_SET_SREGS = iow(0x84, "struct kvm_sregs")  # base
KVM_GET_MSRS = iowr(0x88, "struct kvm_msrs")  # base (x86)
KVM_SET_MSRS = iow(0x89, "struct kvm_msrs")  # base (x86)
KVM_GET_FPU = ior(0x8C, "struct kvm_fpu")  # base
KVM_SET_FPU = iow(0x8D, "struct kvm_fpu")  # base
KVM_GET_LAPIC = ior(0x8E, "struct kvm_lapic_state")  # Cap.IRQCHIP
KVM_SET_LAPIC = iow(0x8F, "struct kvm_lapic_state")  # Cap.IRQCHIP
KVM_SET_CPUID2 = iow(0x90, "struct kvm_cpuid2")  # Cap.EXT_CPUID
KVM_GET_CPUID2 = iowr(0x91, "struct kvm_cpuid2")  # Cap.EXT_CPUID
KVM_GET_MP_STATE = ior(0x98, "struct kvm_mp_state")  # Cap.MP_STATE
KVM_SET_MP_STATE = iow(0x99, "struct kvm_mp_state")  # Cap.MP_STATE
KVM_SET_TSC_KHZ = io(0xA2)  # Cap.TSC_CONTROL
KVM_GET_TSC_KHZ = io(0xA3)  # Cap.GET_TSC_KHZ
KVM_GET_VCPU_EVENTS = ior(0x9F, "struct kvm_vcpu_events")  # Cap.VCPU_EVENTS
KVM_SET_VCPU_EVENTS = iow(0xA0, "struct kvm_vcpu_events")  # Cap.VCPU_EVENTS
KVM_GET_DEBUGREGS = ior(0xA1, "struct kvm_debugregs")  # Cap.DEBUGREGS
KVM_SET_DEBUGREGS = iow(0xA2, "struct kvm_debugregs")  # Cap.DEBUGREGS
KVM_GET_XSAVE = ior(0xA4, "struct kvm_xsave")  # Cap.XSAVE
KVM_SET_XSAVE = iow(0xA5, "struct kvm_xsave")  # Cap.XSAVE
KVM_GET_XCRS = ior(0xA6, "struct kvm_xcrs")  # Cap.XCRS
KVM_SET_XCRS = iow(0xA7, "struct kvm_xcrs")  # Cap.XCRS
KVM_KVMCLOCK_CTRL = io(0xAD)  # Cap.KVMCLOCK_CTRL
KVM_GET_XSAVE2 = ior(0xCF, "struct kvm_xsave")  # Cap.XSAVE2
