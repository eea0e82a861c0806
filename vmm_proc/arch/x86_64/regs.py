"""Register state for the Linux 64-bit entry (boot.rst, "64-bit BOOT PROTOCOL").

Long mode with paging, flat __BOOT_CS/__BOOT_DS segments, interrupts off, rsi pointing at
the zero page.
"""

from __future__ import annotations

import copy

from vmm_proc.arch.x86_64.gdt import boot_segments
from vmm_proc.arch.x86_64.layout import BOOT_STACK_TOP, BOOT_TSS_ADDR
from vmm_proc.kvm.types import DTable, Regs, Sregs

__all__ = ("boot_regs", "long_mode_sregs")

CR0_PE = 1 << 0
CR0_ET = 1 << 4
CR0_NE = 1 << 5
CR0_PG = 1 << 31
CR4_PAE = 1 << 5
EFER_LME = 1 << 8
EFER_LMA = 1 << 10
RFLAGS_RESERVED = 1 << 1  # bit 1 always set; IF clear


def long_mode_sregs(base: Sregs, gdt: DTable, cr3: int, tss_base: int = BOOT_TSS_ADDR) -> Sregs:
    """A copy of ``base`` switched to 64-bit mode.

    :param base: the vCPU's current sregs (KVM_GET_SREGS); apic_base and the LDT are kept,
        since a zero apic_base would disable the local APIC.
    :param gdt: GDTR from :func:`~vmm_proc.arch.x86_64.gdt.write_gdt`.
    :param cr3: PML4 address from the paging module.
    """
    sregs = copy.deepcopy(base)
    cs, ds, tr = boot_segments(tss_base)
    sregs.cs = cs
    sregs.ds, sregs.es, sregs.fs, sregs.gs, sregs.ss = (copy.copy(ds) for _ in range(5))
    sregs.tr = tr
    sregs.gdt = copy.copy(gdt)
    sregs.idt = DTable(base=0, limit=0)  # an early fault becomes a visible triple fault
    sregs.cr0 = CR0_PE | CR0_ET | CR0_NE | CR0_PG
    sregs.cr3 = cr3
    sregs.cr4 = CR4_PAE
    sregs.efer = EFER_LME | EFER_LMA
    return sregs


def boot_regs(entry: int, zero_page: int, stack: int = BOOT_STACK_TOP) -> Regs:
    """General registers at the 64-bit entry: rip=entry, rsi=zero page, IF clear."""
    return Regs(rip=entry, rsi=zero_page, rsp=stack, rbp=stack, rflags=RFLAGS_RESERVED)
