import struct

import pytest

from tests.framework.fake_memory import FakeGuestMemory
from vmm_proc.arch.x86_64 import gdt, paging, regs
from vmm_proc.arch.x86_64.layout import (
    BOOT_GDT_ADDR,
    BOOT_STACK_TOP,
    BOOT_TSS_ADDR,
    PD_ADDR,
    PDPT_ADDR,
    PML4_ADDR,
    ram_regions,
    virtio_mmio_slot,
)
from vmm_proc.arch.x86_64.msrs import MSR_IA32_MISC_ENABLE, boot_msrs
from vmm_proc.kvm.types import Segment, Sregs

MIB = 1 << 20


def test_gdt_entries_are_the_classic_flat_descriptors():
    entries = gdt.boot_gdt(tss_base=0)
    assert entries[:4] == [0, 0, 0x00AF9B000000FFFF, 0x00CF93000000FFFF]


def test_segments_match_the_boot_protocol():
    cs, ds, tr = gdt.boot_segments()
    assert (cs.selector, cs.l, cs.db, cs.type, cs.present, cs.s, cs.limit) == (
        0x10,
        1,
        0,
        0xB,
        1,
        1,
        0xFFFFFFFF,
    )
    assert (ds.selector, ds.db, ds.type, ds.limit, ds.g) == (0x18, 1, 3, 0xFFFFFFFF, 1)
    assert (tr.selector, tr.type, tr.s, tr.base, tr.limit, tr.present) == (
        0x20,
        0xB,
        0,
        BOOT_TSS_ADDR,
        103,
        1,
    )


def test_write_gdt_round_trips_through_memory():
    mem = FakeGuestMemory(MIB)
    dt = gdt.write_gdt(mem)
    assert (dt.base, dt.limit) == (BOOT_GDT_ADDR, 6 * 8 - 1)
    raw = struct.unpack("<6Q", mem.read(BOOT_GDT_ADDR, 48))
    assert gdt.segment_from_entry(raw[2], 0x10) == gdt.boot_segments()[0]


def _translate(mem, va):
    """Walk the 4-level tables like the MMU does for a 2 MiB mapping."""
    pml4e = struct.unpack("<Q", mem.read(PML4_ADDR + ((va >> 39) & 511) * 8, 8))[0]
    assert pml4e & 1
    pdpte = struct.unpack("<Q", mem.read((pml4e & ~0xFFF) + ((va >> 30) & 511) * 8, 8))[0]
    if not pdpte & 1:
        return None
    pde = struct.unpack("<Q", mem.read((pdpte & ~0xFFF) + ((va >> 21) & 511) * 8, 8))[0]
    assert pde & paging.PTE_PS and pde & paging.PTE_RW
    return (pde & ~0x1FFFFF & ((1 << 52) - 1)) | (va & 0x1FFFFF)


@pytest.mark.parametrize("va", [0, 0x7000, 0x1000000 + 0x200, 0xFEC00000, 0xFFFFFFFF])
def test_identity_map_covers_4gib(va):
    mem = FakeGuestMemory(MIB)
    assert paging.write_identity_page_tables(mem) == PML4_ADDR
    assert _translate(mem, va) == va
    assert _translate(mem, 4 << 30) is None
    assert PML4_ADDR < PDPT_ADDR < PD_ADDR


def test_identity_map_size_is_bounded():
    with pytest.raises(ValueError):
        paging.identity_page_tables(gib=0)
    with pytest.raises(ValueError):
        paging.identity_page_tables(gib=17)


def test_long_mode_sregs_keep_apic_base_and_set_modes():
    base = Sregs(apic_base=0xFEE00900, ldt=Segment(type=2, present=1))
    mem = FakeGuestMemory(MIB)
    s = regs.long_mode_sregs(base, gdt.write_gdt(mem), PML4_ADDR)
    assert s.apic_base == 0xFEE00900 and s.ldt.type == 2
    assert s.cr0 & regs.CR0_PE and s.cr0 & regs.CR0_PG
    assert s.cr4 & regs.CR4_PAE and s.efer == regs.EFER_LME | regs.EFER_LMA
    assert s.cr3 == PML4_ADDR and s.cs.l == 1 and s.cs.selector == 0x10
    assert {seg.selector for seg in (s.ds, s.es, s.fs, s.gs, s.ss)} == {0x18}
    assert base.cr0 == 0  # the input is not modified


def test_boot_regs():
    r = regs.boot_regs(0x1000200, 0x7000)
    assert (r.rip, r.rsi, r.rsp, r.rflags) == (0x1000200, 0x7000, BOOT_STACK_TOP, 2)


def test_layout_helpers():
    assert ram_regions(512 * MIB) == [(0, 512 * MIB)]
    assert ram_regions(4 << 30) == [(0, 3 << 30), (4 << 30, 1 << 30)]
    assert virtio_mmio_slot(0) == (0xD0000000, 0x1000, 5)
    assert virtio_mmio_slot(3)[2] == 10
    with pytest.raises(ValueError):
        virtio_mmio_slot(100)


def test_boot_msrs_enable_fast_strings():
    assert dict(boot_msrs())[MSR_IA32_MISC_ENABLE] & 1
