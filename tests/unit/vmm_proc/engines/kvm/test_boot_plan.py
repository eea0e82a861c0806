"""RawBoot plans and apply_entry against fakes."""

from tests.framework.fake_memory import FakeGuestMemory
from vmm_proc.engines.kvm.boot_plan import MP_STATE_RUNNABLE, RawBoot, VcpuEntry, real_mode
from vmm_proc.engines.kvm.vcpu_setup import apply_entry
from vmm_proc.kvm.types import Regs, Sregs


def test_raw_boot_writes_code_and_gives_aps_their_index():
    mem = FakeGuestMemory(1 << 20)
    boot = RawBoot(
        b"\xf4",
        gpa=0x2000,
        regs=Regs(rip=0x2000),
        ap_regs=Regs(rip=0x3000),
        extra=((0x4000, b"data"),),
    )
    plan = boot.prepare(mem, 1 << 20, 3, [])
    assert mem.read(0x2000, 1) == b"\xf4" and mem.read(0x4000, 4) == b"data"
    assert plan.bsp.regs.rip == 0x2000
    assert [(e.regs.rip, e.regs.rbx) for e in plan.aps] == [(0x3000, 1), (0x3000, 2)]
    assert RawBoot(b"").prepare(mem, 1 << 20, 2, []).aps == [None]


def test_long_mode_raw_boot_writes_page_tables_and_gdt():
    mem = FakeGuestMemory(1 << 20)
    plan = RawBoot(b"\xf4", mode="long").prepare(mem, 1 << 20, 1, [])
    sregs = plan.bsp.sregs(Sregs(apic_base=0xFEE00900))
    assert sregs.efer & (1 << 10) and sregs.cr0 & (1 << 31) and sregs.cs.l == 1
    assert sregs.apic_base == 0xFEE00900  # kept from the vCPU
    assert int.from_bytes(mem.read(sregs.cr3, 8), "little") & 1  # PML4[0] present


class FakeVcpu:
    def __init__(self):
        self.calls = []
        self.sregs = Sregs()

    def get_sregs(self):
        return self.sregs

    def set_sregs(self, s):
        self.calls.append(("sregs", s.cs.base, s.cs.selector))

    def set_fpu(self):
        self.calls.append(("fpu",))

    def set_msrs(self, m):
        self.calls.append(("msrs", m))

    def set_regs(self, r):
        self.calls.append(("regs", r.rip))

    def set_mp_state(self, st):
        self.calls.append(("mp", st))


def test_apply_entry_order_and_runnable_aps():
    v = FakeVcpu()
    apply_entry(v, VcpuEntry(Regs(rip=5), real_mode(0x1000), msrs=((0x10, 0),)), make_runnable=True)
    assert v.calls == [
        ("sregs", 0x1000, 0x100),
        ("fpu",),
        ("msrs", {0x10: 0}),
        ("regs", 5),
        ("mp", MP_STATE_RUNNABLE),
    ]
