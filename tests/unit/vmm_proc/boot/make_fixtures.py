"""Regenerate the tiny kernel fixtures: ``python tests/unit/vmm_proc/boot/make_fixtures.py``.

tiny_vmlinux.elf: ELF64 x86-64 ET_EXEC, two PT_LOAD segments at physical 2 MiB (code + bss)
and 2 MiB + 16 KiB, virtual addresses in the kernel map, e_entry physical 0x200010.
tiny_bzimage.bin: 5 setup sectors of a protocol 2.15 header (relocatable, 64-bit capable,
init_size 1 MiB) followed by 4 KiB of protected-mode "code".
"""

from __future__ import annotations

import struct
from pathlib import Path

HERE = Path(__file__).parent / "fixtures"
KERNEL_VBASE = 0xFFFF_FFFF_8000_0000


def tiny_elf() -> bytes:
    ehdr_size, phdr_size = 64, 56
    seg1 = b"\x90" * 0x10 + b"\xf4" + b"\xcc" * 0xEF  # 0x100 bytes of code
    seg2 = b"DATA-SEGMENT-02\0"
    off1 = ehdr_size + 2 * phdr_size
    off2 = off1 + len(seg1)
    ehdr = b"\x7fELF" + bytes([2, 1, 1, 0]) + bytes(8)
    ehdr += struct.pack(
        "<HHIQQQIHHHHHH", 2, 62, 1, 0x200010, ehdr_size, 0, 0, ehdr_size, phdr_size, 2, 64, 0, 0
    )
    phdrs = struct.pack(
        "<IIQQQQQQ", 1, 5, off1, KERNEL_VBASE + 0x200000, 0x200000, len(seg1), 0x2000, 0x1000
    )
    phdrs += struct.pack(
        "<IIQQQQQQ", 1, 6, off2, KERNEL_VBASE + 0x204000, 0x204000, len(seg2), len(seg2), 0x1000
    )
    return ehdr + phdrs + seg1 + seg2


def tiny_bzimage() -> bytes:
    setup_sects = 4
    img = bytearray((setup_sects + 1) * 512)
    img[0x1F1] = setup_sects
    struct.pack_into("<H", img, 0x1FE, 0xAA55)
    img[0x200:0x202] = bytes([0xEB, 0x6A])  # jmp: header ends at 0x26c
    img[0x202:0x206] = b"HdrS"
    struct.pack_into("<H", img, 0x206, 0x020F)
    img[0x211] = 0x01  # LOADED_HIGH
    struct.pack_into("<I", img, 0x214, 0x100000)
    struct.pack_into("<I", img, 0x22C, 0x7FFFFFFF)  # initrd_addr_max
    struct.pack_into("<I", img, 0x230, 0x200000)  # kernel_alignment
    img[0x234] = 1  # relocatable
    struct.pack_into("<H", img, 0x236, 0x3)  # XLF_KERNEL_64 | CAN_BE_LOADED_ABOVE_4G
    struct.pack_into("<I", img, 0x238, 2047)
    struct.pack_into("<Q", img, 0x258, 0x400000)  # pref_address
    struct.pack_into("<I", img, 0x260, 0x100000)  # init_size
    code = bytes(range(256)) * 16
    return bytes(img) + code


if __name__ == "__main__":
    HERE.mkdir(exist_ok=True)
    (HERE / "tiny_vmlinux.elf").write_bytes(tiny_elf())
    (HERE / "tiny_bzimage.bin").write_bytes(tiny_bzimage())
