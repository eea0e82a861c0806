"""MiniVm: one VM with a little RAM and vCPUs, for micro-guests (probe, benchmarks, tests).

Not the boot path: it sets up flat real mode or an identity-mapped long mode directly
through KVM_SET_SREGS so hand-written code can run at a fixed address.
"""

from __future__ import annotations

import struct
import uuid

from schedlab_shared.guest_ram import ram_path
from vmm_proc.kvm.cap import Cap
from vmm_proc.kvm.system import Kvm
from vmm_proc.kvm.vcpu import VcpuFd
from vmm_proc.kvm.vm import VmFd
from vmm_proc.mem.guest_memory import GuestMemory
from vmm_proc.mem.owned import Owned

__all__ = ("MiniVm", "CODE_ADDR", "STACK_TOP")

CODE_ADDR = 0x1000  # code goes here; keep it under ~24 KiB so it stays clear of the stack
STACK_TOP = 0x8000
_GDT_ADDR = 0x500
_PML4_ADDR, _PDPT_ADDR, _PD_ADDR = 0x9000, 0xA000, 0xB000
_TSS_ADDR = 0xFFFBD000  # three pages under 4 GiB, outside RAM (Intel real mode needs it)
# Flat descriptors: null, 64-bit code (selector 0x8), data (selector 0x10).
_GDT = (0, 0x00AF9A000000FFFF, 0x00CF92000000FFFF)
_CR0_PE, _CR0_PG, _CR4_PAE = 1 << 0, 1 << 31, 1 << 5
_EFER_LME, _EFER_LMA = 1 << 8, 1 << 10
_PTE_PRESENT_RW, _PDE_2M = 0x3, 0x83


class MiniVm(Owned):
    """Memory at GPA 0 plus ``vcpus`` vCPUs, all owned and released by close().

    >>> with MiniVm(mem_size=1 << 20) as m:
    ...     m.load(CODE_ADDR, code); m.real_mode(0, CODE_ADDR); exit = m.vcpus[0].run()

    :param name: tag for the /dev/shm file (``schedlab-<name>-<random>-mem``).
    :param disable_exits: KVM_X86_DISABLE_EXITS_* mask enabled before the vCPUs exist.
    """

    def __init__(
        self, mem_size: int = 1 << 20, vcpus: int = 1, name: str = "minivm", disable_exits: int = 0
    ) -> None:
        self.kvm: Kvm | None = None
        self.vm: VmFd | None = None
        self.mem: GuestMemory | None = None
        self.vcpus: list[VcpuFd] = []
        try:
            self.kvm = Kvm.open()
            self.vm = self.kvm.create_vm()
            path = ram_path(f"{name}-{uuid.uuid4().hex[:12]}")
            self.mem = GuestMemory.create(path, mem_size)
            for slot, r in enumerate(self.mem.regions):
                self.vm.set_user_memory_region(slot, r.gpa, r.size, r.host_addr)
            self.vm.set_tss_addr(_TSS_ADDR)
            if disable_exits:
                self.vm.enable_cap(Cap.X86_DISABLE_EXITS, disable_exits)
            for i in range(vcpus):
                self.vcpus.append(self.vm.create_vcpu(i))
        except BaseException:
            self.close()
            raise

    @property
    def memory(self) -> GuestMemory:
        """The guest RAM (raises if closed)."""
        if self.mem is None:
            raise RuntimeError("MiniVm closed")
        return self.mem

    def load(self, gpa: int, code: bytes) -> None:
        """Copy ``code`` into guest RAM at ``gpa``."""
        self.memory.write(gpa, code)

    def real_mode(self, index: int, rip: int, **gprs: int) -> None:
        """Start vCPU ``index`` in real mode with CS base 0 at ``rip`` (< 64 KiB).

        :param gprs: initial general registers by name, e.g. ``rcx=1000``.
        """
        cpu = self.vcpus[index]
        sregs = cpu.get_sregs()
        sregs.cs.base, sregs.cs.selector = 0, 0
        cpu.set_sregs(sregs)
        self._set_regs(cpu, rip, STACK_TOP, gprs)

    def long_mode(self, index: int, rip: int, **gprs: int) -> None:
        """Start vCPU ``index`` in 64-bit mode, first 1 GiB identity-mapped with 2 MiB pages."""
        mem = self.memory
        mem.write(_GDT_ADDR, struct.pack("<3Q", *_GDT))
        mem.write_int(_PML4_ADDR, 8, _PDPT_ADDR | _PTE_PRESENT_RW)
        mem.write_int(_PDPT_ADDR, 8, _PD_ADDR | _PTE_PRESENT_RW)
        mem.write(_PD_ADDR, struct.pack("<512Q", *((i << 21) | _PDE_2M for i in range(512))))
        cpu = self.vcpus[index]
        sregs = cpu.get_sregs()
        sregs.gdt.base, sregs.gdt.limit = _GDT_ADDR, 8 * len(_GDT) - 1
        code = sregs.cs
        code.base, code.limit, code.selector, code.type = 0, 0xFFFFFFFF, 0x8, 0xB
        code.present, code.dpl, code.db, code.s, code.l, code.g = 1, 0, 0, 1, 1, 1
        for seg in (sregs.ds, sregs.es, sregs.fs, sregs.gs, sregs.ss):
            seg.base, seg.limit, seg.selector, seg.type = 0, 0xFFFFFFFF, 0x10, 0x3
            seg.present, seg.dpl, seg.db, seg.s, seg.l, seg.g = 1, 0, 1, 1, 0, 1
        sregs.cr3 = _PML4_ADDR
        sregs.cr4 |= _CR4_PAE
        sregs.cr0 |= _CR0_PE | _CR0_PG
        sregs.efer |= _EFER_LME | _EFER_LMA
        cpu.set_sregs(sregs)
        self._set_regs(cpu, rip, STACK_TOP, gprs)

    @staticmethod
    def _set_regs(cpu: VcpuFd, rip: int, rsp: int, gprs: dict[str, int]) -> None:
        regs = cpu.get_regs()
        regs.rip, regs.rsp, regs.rflags = rip, rsp, 0x2
        for name, value in gprs.items():
            if not hasattr(regs, name):
                raise ValueError(f"no register {name!r}")
            setattr(regs, name, value)
        cpu.set_regs(regs)

    def close(self) -> None:
        """Close vCPUs, VM, /dev/kvm and unlink the memory file; idempotent."""
        for cpu in self.vcpus:
            cpu.close()
        self.vcpus = []
        for owner in (self.vm, self.kvm, self.mem):
            if owner is not None:
                owner.close()
        self.vm = self.kvm = self.mem = None
