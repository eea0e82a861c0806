"""KVM capabilities (``KVM_CAP_*`` of include/uapi/linux/kvm.h) checked through KVM_CHECK_EXTENSION."""

from __future__ import annotations

from enum import IntEnum

__all__ = ("Cap",)


class Cap(IntEnum):
    """The capabilities schedlab may ask about; values are the kernel's ABI numbers."""

    IRQCHIP = 0
    HLT = 1
    USER_MEMORY = 3
    SET_TSS_ADDR = 4
    EXT_CPUID = 7
    NR_VCPUS = 9
    NR_MEMSLOTS = 10
    PIT = 11
    MP_STATE = 14
    COALESCED_MMIO = 15
    SYNC_MMU = 16
    USER_NMI = 22
    IRQ_ROUTING = 25
    IRQ_INJECT_STATUS = 26
    IRQFD = 32
    PIT2 = 33
    SET_BOOT_CPU_ID = 34
    PIT_STATE2 = 35
    IOEVENTFD = 36
    SET_IDENTITY_MAP_ADDR = 37
    ADJUST_CLOCK = 39
    INTERNAL_ERROR_DATA = 40
    VCPU_EVENTS = 41
    DEBUGREGS = 50
    ENABLE_CAP = 54
    XSAVE = 55
    XCRS = 56
    TSC_CONTROL = 60
    GET_TSC_KHZ = 61
    MAX_VCPUS = 66
    TSC_DEADLINE_TIMER = 72
    KVMCLOCK_CTRL = 76
    SIGNAL_MSI = 77
    READONLY_MEM = 81
    IRQFD_RESAMPLE = 82
    EXT_EMUL_CPUID = 95
    ENABLE_CAP_VM = 98
    CHECK_EXTENSION_VM = 105
    SPLIT_IRQCHIP = 121
    MAX_VCPU_ID = 128
    X2APIC_API = 129
    IMMEDIATE_EXIT = 136
    X86_DISABLE_EXITS = 143
    GET_MSR_FEATURES = 153
    XSAVE2 = 208
    SYSTEM_EVENT_DATA = 215
