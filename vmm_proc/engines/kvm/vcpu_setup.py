"""Per-vCPU initial state: CPUID with topology, and applying a boot plan's entry state."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

from schedlab_shared.topology import Topology
from vmm_proc.engines.kvm.boot_plan import MP_STATE_RUNNABLE, VcpuEntry
from vmm_proc.kvm.types import CpuidEntry
from vmm_proc.kvm.vcpu import VcpuFd

__all__ = ("apply_entry", "cpuid_for_topology", "CpuidFor")

CpuidFor = Callable[[list[CpuidEntry], int], list[CpuidEntry]]

# Leaves whose EDX is the x2APIC ID of the executing CPU (Intel SDM vol. 2, CPUID 0Bh/1Fh).
_X2APIC_LEAVES = (0xB, 0x1F)


def _fallback_cpuid(topology: Topology) -> CpuidFor:
    apic = [c.apic_id for c in topology.cpus()]

    def build(supported: list[CpuidEntry], index: int) -> list[CpuidEntry]:
        out = []
        for e in supported:
            if e.function == 1:
                # EBX[31:24] initial APIC ID, EBX[23:16] logical processor count.
                ebx = (e.ebx & 0x0000FFFF) | (apic[index] << 24) | (min(len(apic), 255) << 16)
                e = replace(e, ebx=ebx)
            elif e.function in _X2APIC_LEAVES:
                e = replace(e, edx=apic[index])
            out.append(e)
        return out

    return build


def cpuid_for_topology(topology: Topology) -> CpuidFor:
    """The CPUID table builder for ``topology``: the arch module's when present.

    Falls back to the supported table with APIC IDs patched into leaves 1, 0xB and 0x1F.
    """
    try:
        from vmm_proc.arch.x86_64.cpuid import cpuid_for_vcpu  # type: ignore[import-not-found]
    except ImportError:
        return _fallback_cpuid(topology)

    def build(supported: list[CpuidEntry], index: int) -> list[CpuidEntry]:
        return cpuid_for_vcpu(supported, topology, index)  # type: ignore[no-any-return]

    return build


def apply_entry(vcpu: VcpuFd, entry: VcpuEntry, make_runnable: bool = False) -> None:
    """Load ``entry`` into ``vcpu``; an AP given an entry is made RUNNABLE (no SIPI needed).

    :param make_runnable: set KVM_MP_STATE_RUNNABLE (APs start UNINITIALIZED with an
        in-kernel LAPIC and would otherwise ignore these registers until a SIPI).
    """
    if entry.sregs is not None:
        vcpu.set_sregs(entry.sregs(vcpu.get_sregs()))
    vcpu.set_fpu()
    if entry.msrs:
        vcpu.set_msrs(dict(entry.msrs))
    vcpu.set_regs(entry.regs)
    if make_runnable:
        vcpu.set_mp_state(MP_STATE_RUNNABLE)
