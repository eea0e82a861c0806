"""Identity-mapped boot page tables (4-level, 2 MiB pages).

The 64-bit boot protocol needs the kernel, zero page and command line identity mapped;
we map [0, gib GiB). 2 MiB pages rather than 1 GiB ones because the latter need the
pdpe1gb CPUID feature, which qemu64-class CPUs (the testbed's) lack. Tables live at
layout.PML4_ADDR, PDPT_ADDR and PD_ADDR (one PD page per GiB).
"""

from __future__ import annotations

import struct

from vmm_proc.arch.x86_64.layout import MAX_IDENTITY_GIB, PD_ADDR, PDPT_ADDR, PML4_ADDR
from vmm_proc.mem.access import GuestMemoryAccess

__all__ = ("PTE_PRESENT", "PTE_PS", "PTE_RW", "identity_page_tables", "write_identity_page_tables")

PTE_PRESENT = 1 << 0
PTE_RW = 1 << 1
PTE_PS = 1 << 7  # large page in a PD entry
_ENTRIES = 512
_GIB = 1 << 30
_2MIB = 1 << 21


def identity_page_tables(
    gib: int = 4, pml4: int = PML4_ADDR, pdpt: int = PDPT_ADDR, pd: int = PD_ADDR
) -> list[tuple[int, bytes]]:
    """Page-table pages mapping [0, ``gib`` GiB) one to one.

    :return: ``[(gpa, 4096 bytes), ...]``; CR3 is ``pml4``.
    """
    if not 1 <= gib <= MAX_IDENTITY_GIB:
        raise ValueError(f"identity map size {gib} GiB not in 1..{MAX_IDENTITY_GIB}")
    flags = PTE_PRESENT | PTE_RW
    pages = [(pml4, struct.pack("<Q", pdpt | flags) + bytes(8 * (_ENTRIES - 1)))]
    pdpt_entries = [pd + i * 4096 | flags for i in range(gib)] + [0] * (_ENTRIES - gib)
    pages.append((pdpt, struct.pack(f"<{_ENTRIES}Q", *pdpt_entries)))
    for i in range(gib):
        base = i * _GIB
        pds = [base + j * _2MIB | flags | PTE_PS for j in range(_ENTRIES)]
        pages.append((pd + i * 4096, struct.pack(f"<{_ENTRIES}Q", *pds)))
    return pages


def write_identity_page_tables(mem: GuestMemoryAccess, gib: int = 4) -> int:
    """Write :func:`identity_page_tables` at the layout addresses; return CR3."""
    for gpa, page in identity_page_tables(gib):
        mem.write(gpa, page)
    return PML4_ADDR
