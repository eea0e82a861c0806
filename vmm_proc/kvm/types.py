"""Plain-Python vCPU state types, free of cffi, shared by the KVM layer and the boot code.

They mirror ``struct kvm_regs``, ``struct kvm_sregs`` and ``struct kvm_cpuid_entry2`` of
linux/kvm.h (arch/x86/include/uapi/asm/kvm.h) field for field.
"""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = ("Regs", "Segment", "DTable", "Sregs", "CpuidEntry")


@dataclass
class Regs:
    """struct kvm_regs."""

    rax: int = 0
    rbx: int = 0
    rcx: int = 0
    rdx: int = 0
    rsi: int = 0
    rdi: int = 0
    rsp: int = 0
    rbp: int = 0
    r8: int = 0
    r9: int = 0
    r10: int = 0
    r11: int = 0
    r12: int = 0
    r13: int = 0
    r14: int = 0
    r15: int = 0
    rip: int = 0
    rflags: int = 0x2  # bit 1 is reserved and always set


@dataclass
class Segment:
    """struct kvm_segment."""

    base: int = 0
    limit: int = 0
    selector: int = 0
    type: int = 0
    present: int = 0
    dpl: int = 0
    db: int = 0
    s: int = 0
    l: int = 0  # noqa: E741 - the kernel's name
    g: int = 0
    avl: int = 0
    unusable: int = 0


@dataclass
class DTable:
    """struct kvm_dtable (GDTR/IDTR)."""

    base: int = 0
    limit: int = 0


@dataclass
class Sregs:
    """struct kvm_sregs; ``interrupt_bitmap`` is a pending external interrupt (snapshots)."""

    cs: Segment = field(default_factory=Segment)
    ds: Segment = field(default_factory=Segment)
    es: Segment = field(default_factory=Segment)
    fs: Segment = field(default_factory=Segment)
    gs: Segment = field(default_factory=Segment)
    ss: Segment = field(default_factory=Segment)
    tr: Segment = field(default_factory=Segment)
    ldt: Segment = field(default_factory=Segment)
    gdt: DTable = field(default_factory=DTable)
    idt: DTable = field(default_factory=DTable)
    cr0: int = 0
    cr2: int = 0
    cr3: int = 0
    cr4: int = 0
    cr8: int = 0
    efer: int = 0
    apic_base: int = 0
    interrupt_bitmap: tuple[int, int, int, int] = (0, 0, 0, 0)


@dataclass
class CpuidEntry:
    """struct kvm_cpuid_entry2."""

    function: int
    index: int = 0
    flags: int = 0
    eax: int = 0
    ebx: int = 0
    ecx: int = 0
    edx: int = 0
