import pytest

from monitor_proc.memory import FaultError, ReaderMemory
from monitor_proc.translate import (
    AddressTranslator,
    TranslationError,
    discover_layout,
    discover_phys_base,
)
from tests.framework.fake_memory import FakeGuestMemory

VMALLOC_VA = 0xFFFF_C900_0000_3000


def _discover(g):
    mem = ReaderMemory(g.mem.read)
    pb = discover_phys_base(
        mem,
        g.syms["phys_base"],
        g.syms["linux_banner"],
        g.mem.read(g.pa(g.syms["linux_banner"]), 32),
    )
    lay = discover_layout(
        mem,
        phys_base=pb,
        page_offset_base_sym=g.syms["page_offset_base"],
        init_top_pgt_sym=g.syms["init_top_pgt"],
        check_va=g.syms["_text"],
    )
    return AddressTranslator(mem, lay)


@pytest.mark.parametrize("levels", [4, 5])
@pytest.mark.parametrize("phys_base", [0, 0x600000])
def test_discovery_and_all_three_paths(synthetic_guest, levels, phys_base):
    g = synthetic_guest(levels=levels, phys_base=phys_base)
    t = _discover(g)
    assert (t.layout.levels, t.layout.phys_base, t.layout.page_offset_base) == (
        levels,
        phys_base,
        g.pob,
    )
    text = g.syms["_text"]
    assert t.to_phys(text) == 0x1000000 + phys_base  # image map
    assert t.walk(text + 0x1234) == t.to_phys(text + 0x1234)  # 2 MiB pages
    assert t.to_phys(g.pob + 0x2800123) == 0x2800123  # direct map
    assert t.walk(g.pob + 0x2800123) == 0x2800123  # 1 GiB page
    assert t.to_phys(VMALLOC_VA + 5) == 0x3000005  # 4 KiB page walk
    assert t.linear_extent(VMALLOC_VA + 5) == 0x1000 - 5


def test_unmapped_address_faults(synthetic_guest):
    t = _discover(synthetic_guest())
    with pytest.raises(FaultError) as e:
        t.to_phys(0xFFFF_C900_0010_0000)
    assert e.value.address == 0xFFFF_C900_0010_0000


def test_blank_memory_is_not_a_kernel(synthetic_guest):
    g = synthetic_guest()
    blank = ReaderMemory(FakeGuestMemory(len(g.mem.buf)).read)
    with pytest.raises(TranslationError):
        discover_phys_base(blank, g.syms["phys_base"], g.syms["linux_banner"], b"Linux")


def test_page_tables_that_disagree_are_rejected(synthetic_guest):
    g = synthetic_guest()
    g.write_u64(g.syms["init_top_pgt"] + 8 * 511, 0)  # drop the image mapping
    with pytest.raises(TranslationError, match="do not map"):
        _discover(g)


def test_missing_direct_map_means_not_ready(synthetic_guest):
    g = synthetic_guest()
    idx = (g.pob >> 39) & 0x1FF
    g.write_u64(g.syms["init_top_pgt"] + 8 * idx, 0)  # early boot: image mapped only
    with pytest.raises(TranslationError, match="no direct map"):
        _discover(g)
