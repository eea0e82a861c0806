"""x86_64 kernel virtual -> guest physical addresses.

Three ways, as the kernel maps itself (Documentation/arch/x86/x86_64/mm.rst):

* the direct map: ``pa = va - page_offset_base`` (``page_offset_base`` read from the guest);
* the kernel image: ``pa = va - __START_KERNEL_map + phys_base``;
* a 4- or 5-level walk of ``init_top_pgt`` for everything else (vmalloc, vmemmap) and to
  verify the two linear maps once at discovery.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from monitor_proc.memory import FaultError, PhysMemory

__all__ = (
    "START_KERNEL_MAP",
    "AddressTranslator",
    "Layout",
    "TranslationError",
    "discover_layout",
    "discover_phys_base",
)

START_KERNEL_MAP = 0xFFFF_FFFF_8000_0000
KERNEL_IMAGE_SIZE = 1 << 30  # the image mapping covers 1 GiB (KASLR layout)
DIRECT_MAP_SIZE = {4: 64 << 40, 5: 32 << 50}
PAGE_SIZE = 4096
_PRESENT = 1 << 0
_PSE = 1 << 7
_ADDR_MASK = 0x000F_FFFF_FFFF_F000  # bits 12..51 (SDM vol. 3, 4.5)
_PHYS_ALIGN = 2 << 20
_MAX_PHYS_BASE = 64 << 30


class TranslationError(Exception):
    """The guest's address-space layout could not be established (yet)."""


@dataclass(frozen=True)
class Layout:
    """What the linear maps need; all read from the guest at discovery."""

    page_offset_base: int
    phys_base: int
    pgd_pa: int
    levels: int


class AddressTranslator:
    """Translate kernel virtual addresses of one guest.

    >>> t = AddressTranslator(mem, Layout(0xffff888000000000, 0, 0x322a000, 4))
    >>> hex(t.to_phys(0xffffffff81000000))
    '0x1000000'
    """

    def __init__(self, mem: PhysMemory, layout: Layout) -> None:
        self.mem = mem
        self.layout = layout
        self._dm_end = layout.page_offset_base + DIRECT_MAP_SIZE[layout.levels]

    def to_phys(self, va: int) -> int:
        """Physical address of ``va`` (linear maps first, then the page tables).

        :raises FaultError: ``va`` is not mapped.
        """
        lay = self.layout
        if START_KERNEL_MAP <= va < START_KERNEL_MAP + KERNEL_IMAGE_SIZE:
            return va - START_KERNEL_MAP + lay.phys_base
        if lay.page_offset_base <= va < self._dm_end:
            return va - lay.page_offset_base
        return self.walk(va)

    def linear(self, va: int, size: int) -> int | None:
        """``to_phys(va)`` when all ``size`` bytes lie in one linear map (the image or the
        direct map), else None: the monitor's hot reads take this path, no walk, one test."""
        lay = self.layout
        if START_KERNEL_MAP <= va and va + size <= START_KERNEL_MAP + KERNEL_IMAGE_SIZE:
            return va - START_KERNEL_MAP + lay.phys_base
        if lay.page_offset_base <= va and va + size <= self._dm_end:
            return va - lay.page_offset_base
        return None

    def linear_extent(self, va: int) -> int:
        """Bytes from ``va`` that are physically contiguous for sure (to the page end when
        ``va`` needs the page-table walk)."""
        lay = self.layout
        if START_KERNEL_MAP <= va < START_KERNEL_MAP + KERNEL_IMAGE_SIZE:
            return START_KERNEL_MAP + KERNEL_IMAGE_SIZE - va
        if lay.page_offset_base <= va < self._dm_end:
            return self._dm_end - va
        return PAGE_SIZE - (va & (PAGE_SIZE - 1))

    def walk(self, va: int) -> int:
        """Translate ``va`` through ``init_top_pgt`` (4 KiB, 2 MiB and 1 GiB pages).

        :raises FaultError: a non-present entry on the way.
        """
        table = self.layout.pgd_pa
        shift = 39 if self.layout.levels == 4 else 48
        while True:
            idx = (va >> shift) & 0x1FF
            raw = self.mem.read(table + 8 * idx, 8)
            entry = struct.unpack("<Q", raw)[0]
            if not entry & _PRESENT:
                raise FaultError(va, 0, "virtual")
            if shift == 12 or (shift in (21, 30) and entry & _PSE):
                page_mask = (1 << shift) - 1
                return (entry & _ADDR_MASK & ~page_mask) | (va & page_mask)
            table = entry & _ADDR_MASK
            shift -= 9


def _read_u64(mem: PhysMemory, pa: int) -> int:
    return struct.unpack("<Q", mem.read(pa, 8))[0]


def discover_phys_base(mem: PhysMemory, phys_base_sym: int, probe_va: int, probe: bytes) -> int:
    """Find ``phys_base`` from the guest: the value stored at ``&phys_base`` must equal the
    offset used to read it, and the known bytes ``probe`` (e.g. ``linux_banner`` from the
    image) must be found at ``probe_va`` with it. Follows the value read first (usually 0),
    then scans 2 MiB-aligned candidates (CONFIG_PHYSICAL_ALIGN) up to the end of RAM.

    :raises TranslationError: no consistent value (kernel not loaded yet).
    """

    def consistent(c: int) -> bool | None:
        """True/False, or None when ``c`` lies beyond guest RAM."""
        try:
            v = _read_u64(mem, phys_base_sym - START_KERNEL_MAP + c)
            return v == c and mem.read(probe_va - START_KERNEL_MAP + c, len(probe)) == probe
        except FaultError:
            return None

    if consistent(0):
        return 0
    for k in range(1, _MAX_PHYS_BASE // _PHYS_ALIGN):
        ok = consistent(k * _PHYS_ALIGN)
        if ok:
            return k * _PHYS_ALIGN
        if ok is None:
            break
    raise TranslationError("kernel image not found in guest memory (phys_base unresolved)")


def discover_layout(
    mem: PhysMemory,
    *,
    phys_base: int,
    page_offset_base_sym: int,
    init_top_pgt_sym: int,
    check_va: int,
) -> Layout:
    """Read ``page_offset_base`` and pick the paging depth whose walk maps ``check_va`` (a
    kernel-image address) where the image mapping says it is; then check the direct map
    the same way (it appears only after ``init_mem_mapping()`` in early boot).

    :raises TranslationError: neither 4- nor 5-level walks agree, or no direct map yet.
    """
    pob = _read_u64(mem, page_offset_base_sym - START_KERNEL_MAP + phys_base)
    pgd = init_top_pgt_sym - START_KERNEL_MAP + phys_base
    want = check_va - START_KERNEL_MAP + phys_base
    # 5-level paging puts the direct map at 0xff11000000000000 (mm.rst); try that first then.
    order = (5, 4) if pob < 0xFF80_0000_0000_0000 else (4, 5)
    for levels in order:
        tr = AddressTranslator(mem, Layout(pob, phys_base, pgd, levels))
        try:
            if tr.walk(check_va) != want:
                continue
        except FaultError:
            continue
        try:
            direct_ok = tr.walk(pob + pgd) == pgd
        except FaultError:
            direct_ok = False
        if not direct_ok:
            raise TranslationError(f"no direct map at {pob:#x} yet")
        return tr.layout
    raise TranslationError(f"page tables at {pgd:#x} do not map {check_va:#x} to {want:#x}")
