"""Taking a paused Machine apart into a MachineSnapshot, and putting one into a fresh Machine.

Knows nothing of threads: the engine pauses every vCPU (all outside KVM_RUN, as
KVM_GET/SET_VCPU_EVENTS require) before ``capture`` and starts them after ``apply``.
"""

from __future__ import annotations

import time

from vmm_proc.engines.kvm.devices_state import DevicesState
from vmm_proc.engines.kvm.snapshot_codec import SnapshotError
from vmm_proc.engines.kvm.snapshot_state import MachineSnapshot, SnapshotMeta
from vmm_proc.engines.kvm.vm import Machine
from vmm_proc.kvm import persist
from vmm_proc.kvm.cap import Cap

__all__ = ("apply", "capture", "check_fits")


def capture(
    m: Machine,
    devices: DevicesState,
    key: dict[str, str],
    extra: dict[str, str] | None = None,
) -> MachineSnapshot:
    """Read the VM, every vCPU and the given device state into a MachineSnapshot."""
    assert m.vm is not None and m.mem is not None
    msrs = persist.msrs_to_save(m.kvm.msr_index_list())
    xsave = persist.xsave_size(m.vm)
    vm_state = persist.save_vm(m.vm)
    vcpus = [persist.save_vcpu(v, msrs, xsave) for v in m.vcpus]
    meta = SnapshotMeta(
        key=dict(key),
        mem_bytes=m.mem.size,
        apic_ids=[v.vcpu_id for v in m.vcpus],
        created_unix=time.time(),
        extra=dict(extra or {}),
    )
    return MachineSnapshot(meta, vm_state, vcpus, devices)


def check_fits(snap: MachineSnapshot, mem_bytes: int, apic_ids: list[int]) -> None:
    """Raise SnapshotError unless ``snap`` was taken of a VM shaped like this one."""
    if snap.meta.mem_bytes != mem_bytes:
        raise SnapshotError(f"taken with {snap.meta.mem_bytes} bytes of RAM, not {mem_bytes}")
    if snap.meta.apic_ids != apic_ids:
        raise SnapshotError(f"taken with vCPUs {snap.meta.apic_ids}, not {apic_ids}")


def apply(m: Machine, snap: MachineSnapshot) -> None:
    """Load KVM state into a fresh Machine built without CPUID (``cpuid_for=None``).

    Irqchip and PIT first, then each vCPU (vmm_proc.kvm.persist's order), then the clock,
    once every TSC is back. Devices are rebuilt by the DeviceManager from ``snap.devices``.
    """
    assert m.vm is not None
    persist.restore_vm(m.vm, snap.vm)
    can_scale = m.kvm.has(Cap.TSC_CONTROL)
    for vcpu, saved in zip(m.vcpus, snap.vcpus, strict=True):
        persist.restore_vcpu(vcpu, saved, can_scale)
    persist.restore_clock(m.vm, snap.vm, m.vcpus)
