"""Our GDT, page tables, sregs, regs, MSRs and CPUID as real KVM accepts and runs them."""

import pytest

from schedlab_shared.topology import Topology
from tests.framework.microguest import require_kvm
from vmm_proc.arch.x86_64 import gdt, paging, regs
from vmm_proc.arch.x86_64.cpuid import build_cpuid
from vmm_proc.arch.x86_64.layout import ZERO_PAGE_ADDR
from vmm_proc.arch.x86_64.msrs import boot_msrs
from vmm_proc.kvm.exits import Hlt, IoOut
from vmm_proc.kvm.minivm import MiniVm

ENTRY = 0x1000
# mov rax, 0x1122334455667788; mov dx, 0x3f8; out dx, al; shr rax, 56; out dx, al;
# mov al, [rsi]; out dx, al; hlt  -- the imm64 and the shift only work in 64-bit mode.
CODE = bytes.fromhex("48b8887766554433221166baf803ee48c1e838ee8a06eef4")


@pytest.mark.kvm
def test_long_mode_entry_runs_on_kvm():
    require_kvm()
    with MiniVm(mem_size=2 << 20, name="h3-boot") as m:
        mem = m.memory
        m.load(ENTRY, CODE)
        mem.write(ZERO_PAGE_ADDR, b"\x5a")
        cpu = m.vcpus[0]
        cpu.set_cpuid2(build_cpuid(m.kvm.supported_cpuid(), Topology(1, 1, 2, 1), 0))
        cpu.set_sregs(
            regs.long_mode_sregs(
                cpu.get_sregs(), gdt.write_gdt(mem), paging.write_identity_page_tables(mem, 1)
            )
        )
        cpu.set_regs(regs.boot_regs(ENTRY, ZERO_PAGE_ADDR))
        cpu.set_msrs(dict(boot_msrs()))
        out = []
        for _ in range(10):
            exit_ = cpu.run()
            if isinstance(exit_, IoOut):
                out.append(exit_.data)
                continue
            break
        assert out == [b"\x88", b"\x11", b"\x5a"]
        assert isinstance(exit_, Hlt)
        s = cpu.get_sregs()
        assert s.efer & regs.EFER_LMA and s.cs.l == 1 and s.apic_base & 0xFFFFF000 == 0xFEE00000
