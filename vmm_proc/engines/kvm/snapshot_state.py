"""What a KVM engine snapshot holds: a key, the VM's and vCPUs' KVM state, the devices."""

from __future__ import annotations

from dataclasses import dataclass, field

from vmm_proc.engines.kvm.devices_state import DevicesState
from vmm_proc.kvm.persist import VcpuSaved, VmSaved

__all__ = ("MachineSnapshot", "SnapshotMeta")


@dataclass
class SnapshotMeta:
    """Validity: ``key`` is what the caller says must match (kernel, initramfs, topology,
    memory, command line, schedlab version); the rest is checked against the new VM.

    :param apic_ids: the KVM vcpu id of each vCPU, in index order.
    :param extra: caller data restored with the snapshot (e.g. the guest's ready message).
    """

    key: dict[str, str]
    mem_bytes: int
    apic_ids: list[int]
    created_unix: float
    extra: dict[str, str] = field(default_factory=dict)


@dataclass
class MachineSnapshot:
    """One paused VM, minus its RAM (the ``memory`` file beside the state file)."""

    meta: SnapshotMeta
    vm: VmSaved
    vcpus: list[VcpuSaved]
    devices: DevicesState
