"""The zero page (``struct boot_params``) and its e820 memory map.

:linux:`arch/x86/include/uapi/asm/bootparam.h`; fields as in
:linux:`Documentation/arch/x86/zero-page.rst` and ``boot.rst`` ("64-bit BOOT PROTOCOL").
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from dataclasses import dataclass

from vmm_proc.arch.x86_64.layout import (
    CMDLINE_ADDR,
    CMDLINE_MAX_SIZE,
    EBDA_START,
    LOW_RAM_HOLE_END,
    ZERO_PAGE_ADDR,
)
from vmm_proc.boot import bootparam as bp
from vmm_proc.boot.cmdline import Cmdline
from vmm_proc.boot.loader import InitrdPlacement, LoaderError, LoadResult
from vmm_proc.mem.access import GuestMemoryAccess, GuestMemoryError

__all__ = ("E820Entry", "build_e820", "build_zero_page", "write_boot_params")

U32_MAX = (1 << 32) - 1


@dataclass(frozen=True)
class E820Entry:
    """struct boot_e820_entry: ``[addr, addr + size)`` of ``type`` (E820_RAM, ...)."""

    addr: int
    size: int
    type: int

    @property
    def end(self) -> int:
        return self.addr + self.size


def build_e820(
    ram: Sequence[tuple[int, int]], acpi: tuple[int, int] | None = None
) -> list[E820Entry]:
    """Turn RAM regions into an e820 map with the PC holes below 1 MiB.

    RAM inside [EBDA_START, 1 MiB) is left out; [EBDA_START, 640 KiB) becomes reserved and
    ``acpi`` (gpa, size), normally the ACPI tables area, becomes E820_ACPI (cut out of the
    RAM entries if it lies in RAM).

    :param ram: ``(gpa, size)`` regions of guest RAM, e.g. ``layout.ram_regions(mem)``.
    :return: sorted, non-overlapping entries.
    """
    entries: list[E820Entry] = []
    for start, size in sorted(ram):
        if size <= 0 or start < 0:
            raise ValueError(f"e820: bad RAM region {start:#x}+{size:#x}")
        end = start + size
        for lo, hi in ((start, min(end, EBDA_START)), (max(start, LOW_RAM_HOLE_END), end)):
            if lo < hi:
                entries.append(E820Entry(lo, hi - lo, bp.E820_RAM))
    if any(start < EBDA_START < start + size for start, size in ram):
        entries.append(E820Entry(EBDA_START, 0xA0000 - EBDA_START, bp.E820_RESERVED))
    if acpi is not None:
        if acpi[1] <= 0 or acpi[0] < 0:
            raise ValueError(f"e820: bad ACPI region {acpi[0]:#x}+{acpi[1]:#x}")
        entries = _cut(entries, acpi[0], acpi[0] + acpi[1])
        entries.append(E820Entry(acpi[0], acpi[1], bp.E820_ACPI))
    entries.sort(key=lambda e: e.addr)
    for prev, cur in zip(entries, entries[1:], strict=False):
        if cur.addr < prev.end:
            raise ValueError(f"e820: {cur} overlaps {prev}")
    if len(entries) > bp.E820_MAX_ENTRIES:
        raise ValueError(f"e820: {len(entries)} entries, the zero page holds {bp.E820_MAX_ENTRIES}")
    return entries


def _cut(entries: list[E820Entry], lo: int, hi: int) -> list[E820Entry]:
    """``entries`` with [lo, hi) removed from every RAM entry."""
    out = []
    for e in entries:
        if e.type != bp.E820_RAM or hi <= e.addr or e.end <= lo:
            out.append(e)
            continue
        if e.addr < lo:
            out.append(E820Entry(e.addr, lo - e.addr, e.type))
        if hi < e.end:
            out.append(E820Entry(hi, e.end - hi, e.type))
    return out


def _synthesized_header() -> bytes:
    """A setup header for an ELF vmlinux, which carries none: just what the kernel reads."""
    page = bytearray(bp.BP_HDR_END)
    struct.pack_into("<H", page, bp.HDR_BOOT_FLAG, bp.BOOT_FLAG_MAGIC)
    struct.pack_into("<I", page, bp.HDR_HEADER, bp.HDRS_MAGIC)
    struct.pack_into("<H", page, bp.HDR_VERSION, bp.PROTOCOL_SYNTHESIZED)
    page[bp.HDR_LOADFLAGS] = bp.LOADED_HIGH
    struct.pack_into("<H", page, bp.HDR_XLOADFLAGS, bp.XLF_KERNEL_64)
    struct.pack_into("<I", page, bp.HDR_KERNEL_ALIGNMENT, 0x20_0000)
    return bytes(page[bp.BP_HDR :])


def _split_addr(page: bytearray, addr: int, low_off: int, ext_off: int, what: str) -> None:
    if not 0 <= addr < 1 << 64:
        raise LoaderError("zero page", f"{what} address {addr:#x} out of range")
    struct.pack_into("<I", page, low_off, addr & U32_MAX)
    struct.pack_into("<I", page, ext_off, addr >> 32)


def build_zero_page(
    kernel: LoadResult,
    *,
    cmdline_gpa: int,
    e820: Sequence[E820Entry],
    initrd: InitrdPlacement | None = None,
    rsdp_gpa: int | None = None,
) -> bytes:
    """Assemble the 4 KiB zero page.

    :param kernel: the loader's result (its setup header is copied in; ELF gets a minimal one).
    :param cmdline_gpa: where the NUL-terminated command line lives.
    :param rsdp_gpa: ACPI RSDP; stored only for protocol >= 2.14 (older kernels scan
        0xe0000-0xfffff, where the default ACPI area lives).
    """
    page = bytearray(bp.BOOT_PARAMS_SIZE)
    hdr = kernel.setup_header if kernel.setup_header is not None else _synthesized_header()
    page[bp.BP_HDR : bp.BP_HDR + len(hdr)] = hdr
    page[bp.BP_SENTINEL] = 0
    page[bp.HDR_TYPE_OF_LOADER] = bp.TYPE_OF_LOADER_UNDEFINED
    # CAN_USE_HEAP/heap_end_ptr only matter to the real-mode setup code we skip.
    page[bp.HDR_LOADFLAGS] |= bp.LOADED_HIGH
    _split_addr(page, cmdline_gpa, bp.HDR_CMD_LINE_PTR, bp.BP_EXT_CMD_LINE_PTR, "command line")
    if initrd is not None:
        _split_addr(page, initrd.gpa, bp.HDR_RAMDISK_IMAGE, bp.BP_EXT_RAMDISK_IMAGE, "initrd")
        _split_addr(page, initrd.size, bp.HDR_RAMDISK_SIZE, bp.BP_EXT_RAMDISK_SIZE, "initrd size")
    if rsdp_gpa is not None and kernel.protocol >= bp.PROTOCOL_ACPI_RSDP:
        struct.pack_into("<Q", page, bp.BP_ACPI_RSDP_ADDR, rsdp_gpa)
    if len(e820) > bp.E820_MAX_ENTRIES:
        raise LoaderError("zero page", f"{len(e820)} e820 entries, at most {bp.E820_MAX_ENTRIES}")
    page[bp.BP_E820_ENTRIES] = len(e820)
    for i, entry in enumerate(e820):
        struct.pack_into(
            "<QQI",
            page,
            bp.BP_E820_TABLE + i * bp.E820_ENTRY_SIZE,
            entry.addr,
            entry.size,
            entry.type,
        )
    return bytes(page)


def write_boot_params(
    mem: GuestMemoryAccess,
    kernel: LoadResult,
    cmdline: Cmdline | str,
    e820: Sequence[E820Entry],
    *,
    initrd: InitrdPlacement | None = None,
    rsdp_gpa: int | None = None,
    zero_page_gpa: int = ZERO_PAGE_ADDR,
    cmdline_gpa: int = CMDLINE_ADDR,
) -> int:
    """Write the command line and the zero page into guest memory.

    :return: the zero page's gpa (goes into rsi at the 64-bit entry).
    :raises LoaderError: command line longer than the kernel's cmdline_size, or a write
        outside guest memory.
    """
    line = cmdline.as_bytes() if isinstance(cmdline, Cmdline) else cmdline.encode("ascii") + b"\0"
    limit = min(kernel.cmdline_size, CMDLINE_MAX_SIZE - 1)
    if len(line) - 1 > limit:
        raise LoaderError("command line", f"{len(line) - 1} bytes, the kernel accepts {limit}")
    page = build_zero_page(
        kernel, cmdline_gpa=cmdline_gpa, e820=e820, initrd=initrd, rsdp_gpa=rsdp_gpa
    )
    try:
        mem.write(cmdline_gpa, line)
        mem.write(zero_page_gpa, page)
    except GuestMemoryError as e:
        raise LoaderError("zero page", f"cannot write boot parameters: {e}") from e
    return zero_page_gpa
