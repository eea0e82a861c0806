"""Per-vCPU initial state: CPUID with topology, and applying a boot plan's entry state."""

from __future__ import annotations

from collections.abc import Callable

from schedlab_shared.topology import Topology
from vmm_proc.arch.x86_64.cpuid import build_cpuid
from vmm_proc.engines.kvm.boot_plan import MP_STATE_RUNNABLE, VcpuEntry
from vmm_proc.kvm.types import CpuidEntry
from vmm_proc.kvm.vcpu import VcpuFd

__all__ = ("apply_entry", "cpuid_for_topology", "CpuidFor")

CpuidFor = Callable[[list[CpuidEntry], int], list[CpuidEntry]]


def cpuid_for_topology(topology: Topology) -> CpuidFor:
    """The CPUID table builder for ``topology`` (``arch.x86_64.cpuid.build_cpuid``)."""

    def build(supported: list[CpuidEntry], index: int) -> list[CpuidEntry]:
        return build_cpuid(supported, topology, index)

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
