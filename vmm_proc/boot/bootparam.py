"""Offsets and flags of ``struct boot_params`` and ``struct setup_header``.

Mirrors :linux:`arch/x86/include/uapi/asm/bootparam.h` and
:linux:`arch/x86/include/asm/e820/types.h`; offsets are from the start of the zero page
(equal to offsets in a bzImage file, whose first 0x290 bytes have the same layout).
"""

from __future__ import annotations

__all__ = (
    "BOOT_PARAMS_SIZE",
    "E820_ACPI",
    "E820_MAX_ENTRIES",
    "E820_RAM",
    "E820_RESERVED",
)

BOOT_PARAMS_SIZE = 4096

# struct boot_params (outside the setup header)
BP_ACPI_RSDP_ADDR = 0x070  # u64, boot protocol 2.14
BP_EXT_RAMDISK_IMAGE = 0x0C0  # u32
BP_EXT_RAMDISK_SIZE = 0x0C4  # u32
BP_EXT_CMD_LINE_PTR = 0x0C8  # u32
BP_E820_ENTRIES = 0x1E8  # u8
BP_SENTINEL = 0x1EF  # u8; must stay 0 or the kernel wipes fields it thinks are stale
BP_HDR = 0x1F1  # struct setup_header
BP_HDR_END = 0x290  # edd_mbr_sig_buffer follows the header
BP_E820_TABLE = 0x2D0  # struct boot_e820_entry[128]
E820_ENTRY_SIZE = 20
E820_MAX_ENTRIES = 128

# struct setup_header
HDR_SETUP_SECTS = 0x1F1  # u8
HDR_SYSSIZE = 0x1F4  # u32, in 16-byte paragraphs
HDR_VID_MODE = 0x1FA  # u16
HDR_BOOT_FLAG = 0x1FE  # u16
HDR_JUMP = 0x200  # u16; its second byte is the header length past 0x202
HDR_HEADER = 0x202  # u32 "HdrS"
HDR_VERSION = 0x206  # u16
HDR_TYPE_OF_LOADER = 0x210  # u8
HDR_LOADFLAGS = 0x211  # u8
HDR_CODE32_START = 0x214  # u32
HDR_RAMDISK_IMAGE = 0x218  # u32
HDR_RAMDISK_SIZE = 0x21C  # u32
HDR_HEAP_END_PTR = 0x224  # u16
HDR_CMD_LINE_PTR = 0x228  # u32
HDR_INITRD_ADDR_MAX = 0x22C  # u32
HDR_KERNEL_ALIGNMENT = 0x230  # u32
HDR_RELOCATABLE = 0x234  # u8
HDR_XLOADFLAGS = 0x236  # u16
HDR_CMDLINE_SIZE = 0x238  # u32
HDR_HARDWARE_SUBARCH = 0x23C  # u32
HDR_SETUP_DATA = 0x250  # u64
HDR_PREF_ADDRESS = 0x258  # u64
HDR_INIT_SIZE = 0x260  # u32
HDR_MIN_END = 0x264  # the fields up to init_size (protocol 2.10) must be present

BOOT_FLAG_MAGIC = 0xAA55
HDRS_MAGIC = 0x53726448  # "HdrS" little-endian
TYPE_OF_LOADER_UNDEFINED = 0xFF

# loadflags
LOADED_HIGH = 0x01
KEEP_SEGMENTS = 0x40
CAN_USE_HEAP = 0x80

# xloadflags
XLF_KERNEL_64 = 0x01
XLF_CAN_BE_LOADED_ABOVE_4G = 0x02

# Versions that introduced the fields we rely on (Documentation/arch/x86/boot.rst).
PROTOCOL_XLOADFLAGS = 0x020C
PROTOCOL_ACPI_RSDP = 0x020E
PROTOCOL_SYNTHESIZED = 0x020F  # what we claim for an ELF vmlinux, which has no header

# struct boot_e820_entry types
E820_RAM = 1
E820_RESERVED = 2
E820_ACPI = 3
