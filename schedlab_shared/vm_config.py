"""What the orchestrator hands vmm_proc: the VmConfig (a msgpack file) and its environment."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from schedlab_shared.guest_ram import ram_path
from schedlab_shared.topology import Topology

__all__ = ("VmConfig", "RUNTIME_DIR_ENV")

# The run's private runtime directory: vmm_proc puts its sockets there, and the
# orchestrator removes it even when vmm_proc was SIGKILLed before its own cleanup.
RUNTIME_DIR_ENV = "SCHEDLAB_RUNTIME_DIR"


@dataclass(frozen=True)
class VmConfig:
    """Everything one VM needs; runtime state lives in the engine, never here."""

    run_id: str
    engine: str  # "qemu" | "kvm"
    kernel: str  # vmlinuz / bzImage path (the KVM engine may prefer ``vmlinux``)
    initrd: str
    cmdline: str
    topology: Topology = field(default_factory=Topology)
    mem_mib: int = 512
    timeout_s: float = 120.0
    shm_path: str = ""  # guest RAM file under /dev/shm; "" -> derived from run_id
    vmlinux: str = ""  # decompressed ELF, when the engine can load it directly
    qemu_accel: str = "tcg"  # "tcg" | "kvm" (QEMU engine only)
    # QEMU engine under TCG. Multi-threaded TCG crashed a booting guest ("Oops: int3" while
    # the kernel live-patched a static key) about once in 40 runs; single-threaded booted as
    # fast here (5-6.5 s to SYS_RDY either way) and has not crashed.
    tcg_threads: str = "single"
    # Test hook (QEMU engine): name the bulk port otherwise, so the guest cannot find it.
    bulk_port_name: str = ""  # "" -> the contract's name
    # KVM engine: pinning by host LLC, huge pages, SCHED_FIFO, no HLT/PAUSE exits.
    performance: bool = False
    # KVM engine: start from this snapshot directory (valid for ``snapshot_key``); any
    # failure falls back to a cold boot. "" boots.
    restore_dir: str = ""
    snapshot_key: dict[str, str] = field(default_factory=dict)

    @property
    def guest_ram_path(self) -> str:
        return self.shm_path or ram_path(self.run_id)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["topology"] = self.topology.to_dict()
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> VmConfig:
        d = dict(d)
        d["topology"] = Topology.from_dict(d["topology"])
        return cls(**d)
