import itertools

import pytest

from schedlab_shared.topology import Topology
from vmm_proc.arch.x86_64.cpuid import build_cpuid, vendor_of
from vmm_proc.kvm.types import CpuidEntry

# KVM_GET_SUPPORTED_CPUID on this project's dev machine (AMD family 0x19, non-zero leaves):
# (function, index, flags, eax, ebx, ecx, edx)
AMD_ZEN4 = [
    (0x0, 0, 0, 0x1C, 0x68747541, 0x444D4163, 0x69746E65),
    (0x1, 0, 0, 0xA10F11, 0x20800, 0x81202000, 0x78BFBFF),
    (0x4, 0, 1, 0x0, 0x0, 0x0, 0x0),
    (0x6, 0, 0, 0x4, 0x0, 0x0, 0x0),
    (0x7, 0, 1, 0x1, 0x1800002, 0x104, 0x20000000),
    (0xD, 0, 1, 0xE7, 0x980, 0x980, 0x0),
    (0xD, 2, 1, 0x100, 0x240, 0x0, 0x0),
    (0xD, 5, 1, 0x40, 0x340, 0x0, 0x0),
    (0xD, 6, 1, 0x200, 0x380, 0x0, 0x0),
    (0xD, 7, 1, 0x400, 0x580, 0x0, 0x0),
    (0x80000000, 0, 0, 0x80000021, 0x68747541, 0x444D4163, 0x69746E65),
    (0x80000001, 0, 0, 0xA10F11, 0x40000000, 0x400393, 0x23D3FBFF),
    (0x80000005, 0, 0, 0xFF48FF40, 0xFF48FF40, 0x20080140, 0x20080140),
    (0x80000006, 0, 0, 0x5C002200, 0x6C004200, 0x4006140, 0xA009140),
    (0x80000007, 0, 0, 0x0, 0x0, 0x0, 0x100),
    (0x80000008, 0, 0, 0x3030, 0x50020005, 0x7001, 0x0),
    (0x8000001A, 0, 0, 0x6, 0x0, 0x0, 0x0),
    (0x8000001D, 0, 1, 0x121, 0x1C0003F, 0x3F, 0x0),
    (0x8000001D, 1, 1, 0x122, 0x1C0003F, 0x3F, 0x0),
    (0x8000001D, 2, 1, 0x143, 0x1C0003F, 0x7FF, 0x2),
    (0x8000001D, 3, 1, 0x4163, 0x3C0003F, 0x7FFF, 0x1),
    (0x80000021, 0, 0, 0x204, 0x0, 0x6, 0x0),
    (0x40000000, 0, 0, 0x40000001, 0x4B4D564B, 0x564B4D56, 0x4D),
    (0x40000001, 0, 0, 0x1007EFB, 0x0, 0x0, 0x0),
]

INTEL = [
    (0x0, 0, 0, 0x1B, 0x756E6547, 0x6C65746E, 0x49656E69),
    (0x1, 0, 0, 0x000906EA, 0x00100800, 0x7FFAFBFF, 0xBFEBFBFF),
    (0x4, 0, 1, 0x1C004121, 0x01C0003F, 0x0000003F, 0),
    (0x4, 1, 1, 0x1C004122, 0x01C0003F, 0x0000003F, 0),
    (0x4, 2, 1, 0x1C004143, 0x00C0003F, 0x000003FF, 0),
    (0x4, 3, 1, 0x1C03C163, 0x03C0003F, 0x00002FFF, 0x6),
    (0x4, 4, 1, 0, 0, 0, 0),
    (0xA, 0, 0, 0x07300404, 0, 0, 0x603),
    (0xB, 0, 1, 0x1, 0x2, 0x100, 0x0),
    (0x40000000, 0, 0, 0x40000001, 0x4B4D564B, 0x564B4D56, 0x4D),
    (0x80000000, 0, 0, 0x80000008, 0, 0, 0),
    (0x80000001, 0, 0, 0, 0, 0x121, 0x2C100800),
]

# qemu64-like (the testbed L1 CPU): AMD family 15, no TOPOEXT, no 0x8000001D/E, max basic leaf 0xd.
QEMU64 = [
    (0x0, 0, 0, 0xD, 0x68747541, 0x444D4163, 0x69746E65),
    (0x1, 0, 0, 0x000F06B1, 0x00000800, 0x80802001, 0x078BFBFF),
    (0x80000000, 0, 0, 0x8000000A, 0x68747541, 0x444D4163, 0x69746E65),
    (0x80000001, 0, 0, 0x000F06B1, 0, 0x00000025, 0x2191ABFF),
    (0x80000005, 0, 0, 0x01FF01FF, 0x01FF01FF, 0x40020140, 0x40020140),
    (0x80000006, 0, 0, 0, 0x42004200, 0x02008140, 0),
    (0x80000008, 0, 0, 0x00003028, 0, 0, 0),
]


def entries(rows):
    return [CpuidEntry(f, i, fl, a, b, c, d) for f, i, fl, a, b, c, d in rows]


def table(out):
    return {(e.function, e.index): e for e in out}


def family(t):
    eax = t[(1, 0)].eax
    fam = (eax >> 8) & 0xF
    return fam + ((eax >> 20) & 0xFF) if fam == 0xF else fam


def decode(out):
    """Derive (apic, core id, llc id, package id) from CPUID the way Linux does."""
    t = table(out)
    apic = t[(0x1F, 0)].edx
    shifts = {}
    for i in itertools.count():
        e = t[(0x1F, i)]
        kind = (e.ecx >> 8) & 0xFF
        if not kind:
            break
        shifts[kind] = e.eax & 0x1F
    pkg_shift = shifts[max(shifts)]
    amd = vendor_of(out) == "AuthenticAMD"
    if amd and family(t) < 0x17:
        llc = t[(0x8000001E, 0)].ecx & 0xFF
    else:
        leaf = 0x8000001D if amd else 4
        subs = [e for (f, _), e in sorted(t.items()) if f == leaf and e.eax & 0x1F]
        sharing = ((subs[-1].eax >> 14) & 0xFFF) + 1
        llc = apic >> (sharing - 1).bit_length()
    return apic, apic >> shifts[1], llc, apic >> pkg_shift


TOPOLOGIES = [
    (1, 1, 1, 1),
    (1, 1, 2, 1),
    (1, 2, 2, 2),
    (2, 2, 3, 2),
    (2, 1, 4, 1),
    (1, 3, 3, 1),
    (4, 2, 2, 2),
]


@pytest.mark.parametrize("rows", [AMD_ZEN4, INTEL, QEMU64], ids=["amd-zen4", "intel", "qemu64"])
@pytest.mark.parametrize("spec", TOPOLOGIES, ids=lambda s: ",".join(map(str, s)))
def test_linux_view_matches_topology(rows, spec):
    topo = Topology(*spec)
    cpus = topo.cpus()
    seen = [decode(build_cpuid(entries(rows), topo, c.index)) for c in cpus]
    assert [s[0] for s in seen] == [c.apic_id for c in cpus]
    for (a, da), (b, db) in itertools.combinations(zip(cpus, seen, strict=True), 2):
        assert (da[1] == db[1]) == (a.core == b.core), (a, b)
        assert (da[2] == db[2]) == (a.llc == b.llc), (a, b)
        assert (da[3] == db[3]) == (a.node == b.node), (a, b)


@pytest.mark.parametrize("rows", [AMD_ZEN4, INTEL, QEMU64], ids=["amd-zen4", "intel", "qemu64"])
def test_leaf1_and_common_fields(rows):
    topo = Topology(1, 2, 2, 2)
    supported = entries(rows)
    before = [(e.function, e.index, e.eax, e.ebx, e.ecx, e.edx) for e in supported]
    t = table(build_cpuid(supported, topo, 5))
    assert [(e.function, e.index, e.eax, e.ebx, e.ecx, e.edx) for e in supported] == before
    leaf1 = t[(1, 0)]
    assert leaf1.ebx >> 24 == topo.cpus()[5].apic_id
    assert (leaf1.ebx >> 16) & 0xFF == 8 and leaf1.edx & (1 << 28)
    assert leaf1.ecx & (1 << 31)
    assert t[(0, 0)].eax >= 0x1F
    assert (t[(0xA, 0)].eax, t[(0xA, 0)].edx) == (0, 0)
    assert t[(0xB, 0)].flags & 1 and t[(0xB, 2)].ecx >> 8 == 0
    if (0x40000000, 0) in dict.fromkeys((e.function, e.index) for e in supported):
        assert t[(0x40000000, 0)].ebx == 0x4B4D564B


def test_single_cpu_has_no_htt():
    t = table(build_cpuid(entries(INTEL), Topology(1, 1, 1, 1), 0))
    assert not t[(1, 0)].edx & (1 << 28)


def test_amd_leaves():
    topo = Topology(2, 2, 2, 2)
    cpu = topo.cpus()[13]
    t = table(build_cpuid(entries(AMD_ZEN4), topo, 13))
    assert t[(0x80000001, 0)].ecx & (1 << 22)
    assert t[(0x80000000, 0)].eax >= 0x8000001E
    assert t[(0x8000001E, 0)].eax == cpu.apic_id
    assert (t[(0x8000001E, 0)].ebx >> 8) & 0xFF == 1
    # node id = LLC index, one node per package (more would fold core IDs in Linux)
    assert t[(0x8000001E, 0)].ecx == cpu.llc
    ecx8 = t[(0x80000008, 0)].ecx
    assert ecx8 & 0xFF == 7 and (ecx8 >> 12) & 0xF == topo.apic_shifts[2]
    # the host's four cache levels stay, terminated by a type-0 subleaf
    assert [(t[(0x8000001D, i)].eax >> 5) & 7 for i in range(4)] == [1, 1, 2, 3]
    assert t[(0x8000001D, 4)].eax == 0


def test_qemu64_gets_synthesized_cache_leaves():
    t = table(build_cpuid(entries(QEMU64), Topology(1, 2, 2, 1), 0))
    levels = [(t[(0x8000001D, i)].eax >> 5) & 7 for i in range(4)]
    assert levels == [1, 1, 2, 3] and t[(0x8000001D, 4)].eax == 0
    l1d = t[(0x8000001D, 0)]
    assert (l1d.ebx & 0xFFF) + 1 == 64 and (l1d.ebx >> 22) + 1 == 2 and l1d.ecx + 1 == 512  # 64 KiB


def test_intel_leaf4_fields():
    topo = Topology(1, 2, 4, 2)
    t = table(build_cpuid(entries(INTEL), topo, 0))
    l3 = t[(4, 3)]
    assert ((l3.eax >> 14) & 0xFFF) + 1 == 8  # 4 cores x 2 threads share an LLC
    assert ((l3.eax >> 26) & 0x3F) + 1 == 8  # core IDs addressable in the package
    assert l3.ebx == 0x03C0003F and t[(4, 4)].eax == 0


def test_bad_cpu_index():
    with pytest.raises(ValueError):
        build_cpuid(entries(INTEL), Topology(1, 1, 2, 1), 2)
