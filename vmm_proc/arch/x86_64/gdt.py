"""The flat boot GDT required by the 64-bit boot protocol.

boot.rst ("64-bit BOOT PROTOCOL"): selectors __BOOT_CS (0x10) and __BOOT_DS (0x18) must be
flat 4 GiB segments, CS execute/read, DS read/write. A 64-bit TSS at 0x20 gives TR a valid
descriptor (VMX entry checks insist on one).
"""

from __future__ import annotations

import struct

from vmm_proc.arch.x86_64.layout import BOOT_GDT_ADDR, BOOT_TSS_ADDR
from vmm_proc.kvm.types import DTable, Segment
from vmm_proc.mem.access import GuestMemoryAccess

__all__ = (
    "BOOT_CS",
    "BOOT_DS",
    "BOOT_TSS",
    "TSS_SIZE",
    "boot_gdt",
    "boot_segments",
    "gdt_entry",
    "segment_from_entry",
    "write_gdt",
)

BOOT_CS = 0x10
BOOT_DS = 0x18
BOOT_TSS = 0x20
TSS_SIZE = 104  # struct x86_hw_tss

# Access byte and flags nibble, packed as (flags << 12) | access, Intel SDM vol 3 3.4.5.
_CODE64 = 0xA09B  # G=1 L=1, present, DPL0, code exec/read accessed
_DATA = 0xC093  # G=1 D/B=1, present, DPL0, data read/write accessed
_TSS64 = 0x008B  # present, system, 64-bit TSS (busy)


def gdt_entry(flags: int, base: int, limit: int) -> int:
    """Pack an 8-byte segment descriptor.

    :param flags: ``(G, D/B, L, AVL) << 12 | access byte``.
    :param limit: 20-bit limit (in pages when G is set).
    """
    return (
        ((base & 0xFF000000) << 32)
        | ((flags & 0xF0FF) << 40)
        | ((limit & 0xF0000) << 32)
        | ((base & 0x00FFFFFF) << 16)
        | (limit & 0xFFFF)
    )


def segment_from_entry(entry: int, selector: int) -> Segment:
    """The struct kvm_segment that KVM expects for a descriptor (limit expanded to bytes)."""
    base = ((entry >> 16) & 0xFFFFFF) | (((entry >> 56) & 0xFF) << 24)
    limit = (entry & 0xFFFF) | (((entry >> 48) & 0xF) << 16)
    g = (entry >> 55) & 1
    present = (entry >> 47) & 1
    return Segment(
        base=base,
        limit=(limit << 12) | 0xFFF if g else limit,
        selector=selector,
        type=(entry >> 40) & 0xF,
        present=present,
        dpl=(entry >> 45) & 3,
        db=(entry >> 54) & 1,
        s=(entry >> 44) & 1,
        l=(entry >> 53) & 1,
        g=g,
        avl=(entry >> 52) & 1,
        unusable=0 if present else 1,
    )


def boot_gdt(tss_base: int = BOOT_TSS_ADDR) -> list[int]:
    """Descriptors: null, null, code64 (0x10), data (0x18), 16-byte TSS (0x20)."""
    tss_low = gdt_entry(_TSS64, tss_base, TSS_SIZE - 1)
    return [
        0,
        0,
        gdt_entry(_CODE64, 0, 0xFFFFF),
        gdt_entry(_DATA, 0, 0xFFFFF),
        tss_low,
        tss_base >> 32,
    ]


def boot_segments(tss_base: int = BOOT_TSS_ADDR) -> tuple[Segment, Segment, Segment]:
    """``(cs, ds, tr)`` matching :func:`boot_gdt`; use ds for es/fs/gs/ss too."""
    gdt = boot_gdt(tss_base)
    return (
        segment_from_entry(gdt[BOOT_CS // 8], BOOT_CS),
        segment_from_entry(gdt[BOOT_DS // 8], BOOT_DS),
        segment_from_entry(gdt[BOOT_TSS // 8], BOOT_TSS),
    )


def write_gdt(
    mem: GuestMemoryAccess, gdt_gpa: int = BOOT_GDT_ADDR, tss_gpa: int = BOOT_TSS_ADDR
) -> DTable:
    """Write the GDT and a zeroed TSS; return the GDTR value."""
    entries = boot_gdt(tss_gpa)
    mem.write(gdt_gpa, struct.pack(f"<{len(entries)}Q", *entries))
    mem.write(tss_gpa, bytes(TSS_SIZE))
    return DTable(base=gdt_gpa, limit=len(entries) * 8 - 1)
