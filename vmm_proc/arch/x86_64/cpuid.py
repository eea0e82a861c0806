"""Per-vCPU CPUID: KVM's supported table rewritten to describe a :class:`Topology`.

What Linux reads to build its CPU topology (arch/x86/kernel/cpu/topology_*.c, cacheinfo.c):

- leaf 1: initial APIC ID, addressable IDs per package, HTT; the hypervisor bit.
- leaves 0x1F / 0xB: SMT, core and die (= LLC) shifts; the package is a NUMA node.
- Intel: leaf 4 "threads sharing this cache" gives the LLC id (apicid >> log2(sharing)).
- AMD: with TOPOEXT, leaves 0x1F/0xB as above, 0x8000001E (ext APIC id, node id) and
  0x8000001D cache sharing (the LLC for family >= 0x17); families < 0x17 take the LLC from
  0x8000001E's node id, so we put the LLC index there (checked in the KVM-in-TCG testbed:
  qemu64 family 0xF guests see the intended LLC, die, package, SMT and node groups). TOPOEXT is switched on (these
  leaves are plain data to KVM) and missing 0x8000001D leaves are synthesized.

Known limit: on family 0x17 models <= 0x1F (Zen 1) Linux hard-codes LLC = APIC ID >> 3, so
an LLC there spans 8 APIC IDs whatever we say.

Leaf 0xA (architectural PMU) is zeroed: no guest PMU. KVM's paravirt leaves are kept.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable

from schedlab_shared.topology import Cpu, Topology
from vmm_proc.kvm.types import CpuidEntry

__all__ = ("build_cpuid", "vendor_of")

KVM_CPUID_FLAG_SIGNIFCANT_INDEX = 1
LEAF1_ECX_HYPERVISOR = 1 << 31
LEAF1_EDX_HTT = 1 << 28
EXT1_ECX_TOPOEXT = 1 << 22
# Level types of leaves 0xB/0x1F (Intel SDM vol 2A, CPUID leaf 1FH).
LEVEL_SMT, LEVEL_CORE, LEVEL_DIE = 1, 2, 5
# Cache types of leaves 4 / 0x8000001D.
CACHE_DATA, CACHE_INST, CACHE_UNIFIED = 1, 2, 3
AMD_VENDORS = ("AuthenticAMD", "HygonGenuine")
# AMD L2/L3 associativity encodings of leaf 0x80000006 (AMD APM vol 3, E.4.6).
_AMD_ASSOC = {1: 1, 2: 2, 4: 4, 6: 8, 8: 16, 0xA: 32, 0xB: 48, 0xC: 64, 0xD: 96, 0xE: 128}

Table = dict[tuple[int, int], CpuidEntry]


def vendor_of(entries: Iterable[CpuidEntry]) -> str:
    """The 12-character vendor string of leaf 0 (``""`` if absent)."""
    for e in entries:
        if e.function == 0 and e.index == 0:
            return b"".join(r.to_bytes(4, "little") for r in (e.ebx, e.edx, e.ecx)).decode(
                "ascii", "replace"
            )
    return ""


def _entry(table: Table, function: int, index: int = 0, flags: int = 0) -> CpuidEntry:
    if (function, index) not in table:
        table[(function, index)] = CpuidEntry(function=function, index=index, flags=flags)
    return table[(function, index)]


def _drop_leaf(table: Table, function: int) -> None:
    for key in [k for k in table if k[0] == function]:
        del table[key]


def _raise_max(table: Table, base: int, needed: int) -> None:
    leaf = _entry(table, base)
    leaf.eax = max(leaf.eax, needed)


def _set_leaf1(table: Table, topo: Topology, cpu: Cpu) -> None:
    leaf = _entry(table, 1)
    addressable = min(255, 1 << topo.apic_shifts[2])
    leaf.ebx = (leaf.ebx & 0xFFFF) | (addressable << 16) | ((cpu.apic_id & 0xFF) << 24)
    leaf.ecx |= LEAF1_ECX_HYPERVISOR
    if addressable > 1:
        leaf.edx |= LEAF1_EDX_HTT
    else:
        leaf.edx &= ~LEAF1_EDX_HTT


def _set_ext_topology(
    table: Table, function: int, levels: list[tuple[int, int, int]], apic: int
) -> None:
    """Write subleaves (level type, shift, logical CPUs at that level) and a terminator."""
    _drop_leaf(table, function)
    for i, (kind, shift, count) in enumerate(levels):
        e = _entry(table, function, i, KVM_CPUID_FLAG_SIGNIFCANT_INDEX)
        e.eax, e.ebx, e.ecx, e.edx = shift & 0x1F, count & 0xFFFF, (kind << 8) | i, apic
    end = _entry(table, function, len(levels), KVM_CPUID_FLAG_SIGNIFCANT_INDEX)
    end.ecx, end.edx = len(levels), apic


def _cache_eax(kind: int, level: int, sharing_shift: int, cores_shift: int | None) -> int:
    eax = kind | (level << 5) | (1 << 8) | (((1 << sharing_shift) - 1) << 14)
    if cores_shift is not None:  # Intel only: addressable core IDs in the package - 1
        eax |= (min(64, 1 << cores_shift) - 1) << 26
    return eax


def _cache_regs(size: int, ways: int, line: int) -> tuple[int, int]:
    """(EBX, ECX) of a cache descriptor for ``size`` bytes, ``ways``-way, ``line``-byte lines."""
    sets = max(1, size // (ways * line))
    return ((ways - 1) << 22) | (line - 1), sets - 1


def _sharing_shift(level: int, topo: Topology) -> int:
    core_shift, llc_shift, _ = topo.apic_shifts
    return llc_shift if level >= 3 else core_shift


def _amd_l2l3(reg: int, size_unit_shift: int, size_lsb: int) -> tuple[int, int, int] | None:
    """Decode an L2 (ECX) or L3 (EDX) field of leaf 0x80000006; None when not usable."""
    size = (reg >> size_lsb) << size_unit_shift
    ways = _AMD_ASSOC.get((reg >> 12) & 0xF)
    line = reg & 0xFF
    return (size, ways, line) if size and ways and line else None


def _amd_default_caches(table: Table) -> list[tuple[int, int, int, int, int]]:
    """(type, level, size, ways, line) from leaves 0x80000005/6, with plain defaults."""
    l1 = table.get((0x8000_0005, 0))
    l2l3 = table.get((0x8000_0006, 0))
    caches = []
    for kind, reg in ((CACHE_DATA, l1.ecx if l1 else 0), (CACHE_INST, l1.edx if l1 else 0)):
        size, ways, line = (reg >> 24) << 10, (reg >> 16) & 0xFF, reg & 0xFF
        ok = size and line and 0 < ways < 0xFF
        caches.append((kind, 1, *((size, ways, line) if ok else (32 << 10, 8, 64))))
    l2 = _amd_l2l3(l2l3.ecx, 10, 16) if l2l3 else None
    l3 = _amd_l2l3(l2l3.edx, 19, 18) if l2l3 else None
    caches.append((CACHE_UNIFIED, 2, *(l2 or (512 << 10, 8, 64))))
    caches.append((CACHE_UNIFIED, 3, *(l3 or (16 << 20, 16, 64))))
    return caches


def _new_cache(kind: int, level: int, size: int, ways: int, line: int) -> CpuidEntry:
    ebx, ecx = _cache_regs(size, ways, line)
    return CpuidEntry(function=0, eax=kind | (level << 5), ebx=ebx, ecx=ecx)


def _set_cache_leaf(table: Table, function: int, topo: Topology, intel: bool) -> None:
    """Fix the sharing fields of leaf 4 / 0x8000001D, adding an L3 (or all) if missing.

    Linux takes the last subleaf before the type-0 terminator as the LLC, so the
    subleaves are renumbered 0..n-1 with the L3 last.
    """
    cores_shift = topo.apic_shifts[2] - topo.apic_shifts[0] if intel else None
    subs = sorted(
        (e for (f, _), e in table.items() if f == function and e.eax & 0x1F), key=lambda e: e.index
    )
    _drop_leaf(table, function)
    if not subs and not intel:
        subs = [_new_cache(*c) for c in _amd_default_caches(table)]
    if not any((e.eax >> 5) & 7 >= 3 for e in subs):
        subs.append(_new_cache(CACHE_UNIFIED, 3, 16 << 20, 16, 64))
    subs.sort(key=lambda e: (e.eax >> 5) & 7)
    for i, e in enumerate([*subs, CpuidEntry(function=0)]):
        kind, level = e.eax & 0x1F, (e.eax >> 5) & 7
        if kind:
            keep = e.eax & 0x3E00  # fully-associative and reserved bits as KVM gave them
            e.eax = _cache_eax(kind, level, _sharing_shift(level, topo), cores_shift) | keep
        e.function, e.index, e.flags = function, i, KVM_CPUID_FLAG_SIGNIFCANT_INDEX
        table[(function, i)] = e


def _set_amd_leaves(table: Table, topo: Topology, cpu: Cpu) -> None:
    core_shift, _, node_shift = topo.apic_shifts
    per_pkg = topo.llcs * topo.cores * topo.threads
    _raise_max(table, 0x8000_0000, 0x8000_001E)
    _entry(table, 0x8000_0001).ecx |= EXT1_ECX_TOPOEXT
    addr = _entry(table, 0x8000_0008)
    addr.ecx = (addr.ecx & ~0xF0FF) | (min(per_pkg, 256) - 1) | (node_shift << 12)
    _set_cache_leaf(table, 0x8000_001D, topo, intel=False)
    ext = _entry(table, 0x8000_001E)
    ext.eax = cpu.apic_id
    ext.ebx = ((topo.threads - 1) << 8) | ((cpu.apic_id >> core_shift) & 0xFF)
    # NodeId = LLC index (families < 0x17 take the LLC from it); NodesPerProcessor stays 0:
    # more than one makes Linux fold core IDs modulo it (cpu_topology_fixup_amd), which
    # can give two cores of one LLC the same ID and pair them as SMT siblings.
    ext.ecx = cpu.llc & 0xFF
    ext.edx = 0


def build_cpuid(
    supported: list[CpuidEntry], topology: Topology, cpu_index: int
) -> list[CpuidEntry]:
    """The CPUID table for vCPU ``cpu_index`` (KVM_SET_CPUID2 input).

    :param supported: KVM_GET_SUPPORTED_CPUID output (not modified).
    :param topology: the guest topology; ``topology.cpus()[cpu_index]`` gives the APIC ID.
    :return: entries sorted by (function, index).
    """
    cpus = topology.cpus()
    if not 0 <= cpu_index < len(cpus):
        raise ValueError(f"cpu_index {cpu_index} not in 0..{len(cpus) - 1}")
    cpu = cpus[cpu_index]
    table: Table = {(e.function, e.index): copy.copy(e) for e in supported}
    vendor = vendor_of(supported)
    core_shift, llc_shift, node_shift = topology.apic_shifts
    threads, per_llc = topology.threads, topology.threads * topology.cores
    per_pkg = per_llc * topology.llcs
    _raise_max(table, 0, 0x1F)
    _set_leaf1(table, topology, cpu)
    _set_ext_topology(
        table,
        0xB,
        [(LEVEL_SMT, core_shift, threads), (LEVEL_CORE, node_shift, per_pkg)],
        cpu.apic_id,
    )
    _set_ext_topology(
        table,
        0x1F,
        [
            (LEVEL_SMT, core_shift, threads),
            (LEVEL_CORE, llc_shift, per_llc),
            (LEVEL_DIE, node_shift, per_pkg),
        ],
        cpu.apic_id,
    )
    _drop_leaf(table, 0xA)
    _entry(table, 0xA)
    if vendor in AMD_VENDORS:
        _set_amd_leaves(table, topology, cpu)
    else:
        _set_cache_leaf(table, 4, topology, intel=True)
    return [table[k] for k in sorted(table)]
