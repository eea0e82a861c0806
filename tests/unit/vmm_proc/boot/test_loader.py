import struct
from pathlib import Path

import pytest

from schedlab_shared.cache import kernels_dir
from tests.framework.fake_memory import FakeGuestMemory
from tests.framework.prereq import missing
from vmm_proc.boot import bootparam as bp
from vmm_proc.boot.loader import (
    LoaderError,
    load_bzimage,
    load_elf,
    load_initrd,
    load_kernel,
    place_initrd,
)

FIXTURES = Path(__file__).with_name("fixtures")
MIB = 1 << 20


def elf_image():
    return bytearray((FIXTURES / "tiny_vmlinux.elf").read_bytes())


def bz_image():
    return bytearray((FIXTURES / "tiny_bzimage.bin").read_bytes())


def test_elf_segments_land_at_paddr_with_bss_zeroed():
    mem = FakeGuestMemory(8 * MIB)
    mem.write(0x200100, b"\xaa" * 0x100)  # stale bytes in the bss range must be cleared
    res = load_elf(mem, bytes(elf_image()), 8 * MIB)
    assert res.kind == "elf"
    assert res.entry_64 == 0x200010
    assert res.kernel_load == 0x200000
    assert res.kernel_end == 0x205000
    assert mem.read(0x200000, 0x11) == b"\x90" * 0x10 + b"\xf4"
    assert mem.read(0x200100, 0x100) == bytes(0x100)
    assert mem.read(0x204000, 16) == b"DATA-SEGMENT-02\0"
    assert res.setup_header is None and res.protocol == bp.PROTOCOL_SYNTHESIZED


def test_elf_virtual_entry_is_translated():
    img = elf_image()
    struct.pack_into("<Q", img, 24, 0xFFFF_FFFF_8020_0010)
    res = load_elf(FakeGuestMemory(8 * MIB), bytes(img), 8 * MIB)
    assert res.entry_64 == 0x200010


@pytest.mark.parametrize(
    "mutate, step, text",
    [
        (lambda b: b.__setitem__(4, 1), "elf header", "ELF64"),
        (lambda b: struct.pack_into("<H", b, 18, 3), "elf header", "EM_X86_64"),
        (lambda b: struct.pack_into("<H", b, 16, 3), "elf header", "ET_EXEC"),
        (
            lambda b: struct.pack_into("<Q", b, 64 + 24, 0x10000),
            "elf segments",
            "outside guest RAM",
        ),
        (lambda b: struct.pack_into("<Q", b, 64 + 32, 0x3000), "elf segments", "filesz > memsz"),
        (lambda b: struct.pack_into("<Q", b, 24, 0x900000), "elf entry", "no PT_LOAD"),
        (
            lambda b: [struct.pack_into("<I", b, 64 + i * 56, 4) for i in (0, 1)],
            "elf segments",
            "no PT_LOAD",
        ),
    ],
)
def test_elf_errors_name_their_step(mutate, step, text):
    img = elf_image()
    mutate(img)
    with pytest.raises(LoaderError) as exc:
        load_elf(FakeGuestMemory(8 * MIB), bytes(img), 8 * MIB)
    assert exc.value.step == step and text in str(exc.value)


def test_elf_segment_past_ram_end_is_rejected():
    with pytest.raises(LoaderError, match="outside guest RAM"):
        load_elf(FakeGuestMemory(8 * MIB), bytes(elf_image()), 0x201000)


def test_truncated_elf_is_rejected():
    with pytest.raises(LoaderError) as exc:
        load_elf(FakeGuestMemory(8 * MIB), bytes(elf_image()[:0x1B8]), 8 * MIB)
    assert exc.value.step in ("elf header", "elf segments")


def test_bzimage_code_lands_at_1mib_and_entry_is_plus_0x200():
    img = bytes(bz_image())
    mem = FakeGuestMemory(16 * MIB)
    res = load_kernel(mem, img, 16 * MIB)
    assert res.kind == "bzimage"
    assert res.kernel_load == MIB and res.entry_64 == MIB + 0x200
    assert mem.read(MIB, 4096) == img[5 * 512 :]
    # Relocatable: runtime start is max(1 MiB aligned to 2 MiB, pref 4 MiB) = 4 MiB.
    assert res.kernel_end == 0x400000 + 0x100000
    assert res.setup_header == img[0x1F1:0x26C]
    assert res.protocol == 0x020F and res.cmdline_size == 2047
    assert res.initrd_addr_max == 0x7FFFFFFF


@pytest.mark.parametrize(
    "mutate, step, text",
    [
        (lambda b: b.__delitem__(slice(0x250, None)), "bzimage header", "too short"),
        (lambda b: b.__setitem__(slice(0x202, 0x206), b"HdrX"), "bzimage header", "HdrS"),
        (lambda b: struct.pack_into("<H", b, 0x1FE, 0), "bzimage header", "boot_flag"),
        (lambda b: struct.pack_into("<H", b, 0x206, 0x0206), "bzimage protocol", "2.06"),
        (lambda b: b.__setitem__(0x211, 0), "bzimage loadflags", "LOADED_HIGH"),
        (lambda b: struct.pack_into("<H", b, 0x236, 2), "bzimage xloadflags", "XLF_KERNEL_64"),
        (lambda b: b.__setitem__(0x1F1, 60), "bzimage size", "past the image end"),
        (
            lambda b: struct.pack_into("<I", b, 0x260, 64 * MIB),
            "bzimage init_size",
            "outside guest RAM",
        ),
    ],
)
def test_bzimage_errors_name_their_step(mutate, step, text):
    img = bz_image()
    mutate(img)
    with pytest.raises(LoaderError) as exc:
        load_bzimage(FakeGuestMemory(16 * MIB), bytes(img), 16 * MIB)
    assert exc.value.step == step and text in str(exc.value)


def test_bzimage_zero_setup_sects_means_four():
    img = bz_image()
    img[0x1F1] = 0
    mem = FakeGuestMemory(16 * MIB)
    load_bzimage(mem, bytes(img), 16 * MIB)
    assert mem.read(MIB, 16) == bytes(range(16))


def test_initrd_goes_high_page_aligned_and_above_kernel():
    mem = FakeGuestMemory(16 * MIB)
    res = load_bzimage(mem, bytes(bz_image()), 16 * MIB)
    rd = load_initrd(mem, res, b"initrd!" * 1000, 16 * MIB)
    assert rd.gpa % 4096 == 0 and rd.gpa >= res.kernel_end
    assert rd.gpa + rd.size <= 16 * MIB and 16 * MIB - (rd.gpa + rd.size) < 4096
    assert mem.read(rd.gpa, 7) == b"initrd!"


def test_initrd_respects_initrd_addr_max_and_avoid_ranges():
    res = load_bzimage(FakeGuestMemory(16 * MIB), bytes(bz_image()), 16 * MIB)
    capped = type(res)(**{**res.__dict__, "initrd_addr_max": 8 * MIB - 1})
    gpa = place_initrd(5000, capped, 16 * MIB)
    assert gpa + 5000 <= 8 * MIB
    gpa2 = place_initrd(5000, res, 16 * MIB, avoid=[(15 * MIB, MIB), (15 * MIB - 4096, 4096)])
    assert gpa2 + 5000 <= 15 * MIB - 4096 and gpa2 % 4096 == 0


def test_initrd_too_big_is_an_error():
    res = load_bzimage(FakeGuestMemory(16 * MIB), bytes(bz_image()), 16 * MIB)
    with pytest.raises(LoaderError, match="does not fit"):
        place_initrd(12 * MIB, res, 16 * MIB)
    with pytest.raises(LoaderError, match="positive"):
        place_initrd(0, res, 16 * MIB)


def _real_kernel_dir():
    for candidate in sorted(kernels_dir().glob("*/"), reverse=True) + [Path("/root/dev-kernel")]:
        if (candidate / "vmlinux").is_file():
            return candidate
    reason = f"no kernel with a vmlinux in {kernels_dir()} or /root/dev-kernel"
    missing(reason)


def _find_vmlinuz(d):
    for p in [d / "vmlinuz", *d.glob("x/usr/lib/modules/*/vmlinuz")]:
        if p.is_file():
            return p
    return None


def test_real_vmlinux_elf_loads():
    d = _real_kernel_dir()
    mem = FakeGuestMemory(160 * MIB)
    res = load_elf(mem, (d / "vmlinux").read_bytes(), 160 * MIB)
    assert res.kernel_load == 16 * MIB  # LOAD_PHYSICAL_ADDR
    assert res.kernel_load < res.entry_64 < res.kernel_end <= 160 * MIB


def test_real_bzimage_loads_and_header_is_64bit():
    d = _real_kernel_dir()
    vmlinuz = _find_vmlinuz(d)
    if vmlinuz is None:
        missing(f"no vmlinuz next to {d}")
    img = vmlinuz.read_bytes()
    mem = FakeGuestMemory(256 * MIB)
    res = load_bzimage(mem, img, 256 * MIB)
    assert res.protocol >= 0x020F and res.entry_64 == MIB + 0x200
    assert res.setup_header[bp.HDR_HEADER - bp.BP_HDR :][:4] == b"HdrS"
    assert res.kernel_end > 16 * MIB  # decompresses to pref_address and needs init_size there
    rd = load_initrd(mem, res, b"\0" * 4 * MIB, 256 * MIB)
    assert rd.gpa >= res.kernel_end
