import struct
from pathlib import Path

import pytest

from tests.framework.fake_memory import FakeGuestMemory
from vmm_proc.arch.x86_64.layout import (
    ACPI_TABLES_ADDR,
    ACPI_TABLES_SIZE,
    CMDLINE_ADDR,
    ZERO_PAGE_ADDR,
)
from vmm_proc.boot import bootparam as bp
from vmm_proc.boot.cmdline import Cmdline
from vmm_proc.boot.loader import InitrdPlacement, LoaderError, load_bzimage, load_elf
from vmm_proc.boot.params import E820Entry, build_e820, build_zero_page, write_boot_params

FIXTURES = Path(__file__).with_name("fixtures")
MIB = 1 << 20
GIB = 1 << 30


def test_e820_low_memory_holes_and_high_ram():
    e820 = build_e820([(0, 3 * GIB), (4 * GIB, 2 * GIB)], acpi=(ACPI_TABLES_ADDR, ACPI_TABLES_SIZE))
    assert e820 == [
        E820Entry(0, 0x9FC00, bp.E820_RAM),
        E820Entry(0x9FC00, 0x400, bp.E820_RESERVED),
        E820Entry(0xE0000, 0x20000, bp.E820_ACPI),
        E820Entry(MIB, 3 * GIB - MIB, bp.E820_RAM),
        E820Entry(4 * GIB, 2 * GIB, bp.E820_RAM),
    ]


def test_e820_cuts_an_acpi_area_out_of_ram():
    e820 = build_e820([(0, 64 * MIB)], acpi=(32 * MIB, 64 * 1024))
    assert e820[-3:] == [
        E820Entry(MIB, 31 * MIB, bp.E820_RAM),
        E820Entry(32 * MIB, 64 * 1024, bp.E820_ACPI),
        E820Entry(32 * MIB + 64 * 1024, 32 * MIB - 64 * 1024, bp.E820_RAM),
    ]
    with pytest.raises(ValueError, match="bad ACPI region"):
        build_e820([(0, 64 * MIB)], acpi=(32 * MIB, 0))


def test_e820_rejects_overlap_and_bad_regions():
    with pytest.raises(ValueError, match="overlaps"):
        build_e820([(0, 64 * MIB), (32 * MIB, 64 * MIB)])
    with pytest.raises(ValueError, match="bad RAM region"):
        build_e820([(0, 0)])


def _fields(page):
    return {
        "loader": page[bp.HDR_TYPE_OF_LOADER],
        "loadflags": page[bp.HDR_LOADFLAGS],
        "cmd": struct.unpack_from("<I", page, bp.HDR_CMD_LINE_PTR)[0],
        "ext_cmd": struct.unpack_from("<I", page, bp.BP_EXT_CMD_LINE_PTR)[0],
        "rd": struct.unpack_from("<I", page, bp.HDR_RAMDISK_IMAGE)[0],
        "ext_rd": struct.unpack_from("<I", page, bp.BP_EXT_RAMDISK_IMAGE)[0],
        "rd_size": struct.unpack_from("<I", page, bp.HDR_RAMDISK_SIZE)[0],
        "rsdp": struct.unpack_from("<Q", page, bp.BP_ACPI_RSDP_ADDR)[0],
        "n_e820": page[bp.BP_E820_ENTRIES],
        "magic": page[bp.HDR_HEADER : bp.HDR_HEADER + 4],
        "version": struct.unpack_from("<H", page, bp.HDR_VERSION)[0],
    }


def test_zero_page_from_bzimage_keeps_header_and_sets_loader_fields():
    img = (FIXTURES / "tiny_bzimage.bin").read_bytes()
    mem = FakeGuestMemory(16 * MIB)
    res = load_bzimage(mem, img, 16 * MIB)
    cl = Cmdline()
    cl.insert("console", "ttyS0")
    e820 = build_e820([(0, 16 * MIB)])
    rd = InitrdPlacement(0x5_0000_0000, 0x1234)  # above 4 GiB: needs the ext_ fields
    zp = write_boot_params(mem, res, cl, e820, initrd=rd, rsdp_gpa=0xE0000)
    assert zp == ZERO_PAGE_ADDR
    page = mem.read(zp, 4096)
    f = _fields(page)
    assert f["loader"] == 0xFF and f["loadflags"] & bp.LOADED_HIGH
    assert (f["cmd"], f["ext_cmd"]) == (CMDLINE_ADDR, 0)
    assert (f["rd"], f["ext_rd"], f["rd_size"]) == (0, 5, 0x1234)
    assert f["rsdp"] == 0xE0000 and f["magic"] == b"HdrS" and f["version"] == 0x020F
    assert page[bp.HDR_XLOADFLAGS] & bp.XLF_KERNEL_64
    assert f["n_e820"] == len(e820) == 3
    last = struct.unpack_from("<QQI", page, bp.BP_E820_TABLE + 2 * bp.E820_ENTRY_SIZE)
    assert last == (MIB, 15 * MIB, bp.E820_RAM)
    assert mem.read(CMDLINE_ADDR, 14) == b"console=ttyS0\0"


def test_zero_page_for_elf_has_a_synthesized_header():
    res = load_elf(FakeGuestMemory(8 * MIB), (FIXTURES / "tiny_vmlinux.elf").read_bytes(), 8 * MIB)
    page = build_zero_page(
        res, cmdline_gpa=CMDLINE_ADDR, e820=build_e820([(0, 8 * MIB)]), rsdp_gpa=0xE0000
    )
    f = _fields(page)
    assert f["magic"] == b"HdrS" and f["version"] == bp.PROTOCOL_SYNTHESIZED
    assert struct.unpack_from("<H", page, bp.HDR_BOOT_FLAG)[0] == 0xAA55
    assert f["rsdp"] == 0xE0000 and f["loader"] == 0xFF and page[bp.BP_SENTINEL] == 0


def test_old_protocol_gets_no_rsdp_field():
    img = bytearray((FIXTURES / "tiny_bzimage.bin").read_bytes())
    struct.pack_into("<H", img, bp.HDR_VERSION, 0x020C)
    res = load_bzimage(FakeGuestMemory(16 * MIB), bytes(img), 16 * MIB)
    page = build_zero_page(res, cmdline_gpa=CMDLINE_ADDR, e820=[], rsdp_gpa=0xE0000)
    assert _fields(page)["rsdp"] == 0


def test_cmdline_longer_than_kernel_limit_is_rejected():
    img = bytearray((FIXTURES / "tiny_bzimage.bin").read_bytes())
    struct.pack_into("<I", img, bp.HDR_CMDLINE_SIZE, 8)
    mem = FakeGuestMemory(16 * MIB)
    res = load_bzimage(mem, bytes(img), 16 * MIB)
    with pytest.raises(LoaderError, match="accepts 8"):
        write_boot_params(mem, res, "console=ttyS0", [])
    write_boot_params(mem, res, "quiet", [])
    assert mem.read(CMDLINE_ADDR, 6) == b"quiet\0"


def test_too_many_e820_entries():
    res = load_bzimage(
        FakeGuestMemory(16 * MIB), (FIXTURES / "tiny_bzimage.bin").read_bytes(), 16 * MIB
    )
    many = [E820Entry(i * 8192, 4096, bp.E820_RAM) for i in range(129)]
    with pytest.raises(LoaderError, match="e820"):
        build_zero_page(res, cmdline_gpa=CMDLINE_ADDR, e820=many)
