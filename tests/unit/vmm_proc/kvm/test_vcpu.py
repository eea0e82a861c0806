import errno

import pytest

from tests.framework.microguest import require_kvm
from tests.framework.prereq import missing
from vmm_proc.kvm import Cap, Kvm, KvmError
from vmm_proc.kvm.types import CpuidEntry, Regs, Sregs
from vmm_proc.kvm.vcpu import LAPIC_LVT_LINT0, LAPIC_LVT_LINT1

pytestmark = pytest.mark.kvm

MSR_IA32_SYSENTER_CS = 0x174


@pytest.fixture
def kvm():
    require_kvm()
    with Kvm.open() as k:
        yield k


@pytest.fixture
def vm(kvm):
    with kvm.create_vm() as v:
        yield v


@pytest.fixture
def cpu(vm):
    with vm.create_vcpu(0) as c:
        yield c


def test_regs_roundtrip(cpu):
    regs = cpu.get_regs()
    regs.rax, regs.r15, regs.rip, regs.rflags = 0x1122334455667788, 7, 0x1000, 0x202
    cpu.set_regs(regs)
    assert cpu.get_regs() == regs


def test_sregs_roundtrip(cpu):
    sregs = cpu.get_sregs()
    assert sregs.cs.selector == 0xF000  # reset state
    sregs.cs.base, sregs.cs.selector = 0, 0
    sregs.gdt.base, sregs.gdt.limit = 0x500, 23
    cpu.set_sregs(sregs)
    back = cpu.get_sregs()
    assert (back.cs.base, back.cs.selector) == (0, 0)
    assert (back.gdt.base, back.gdt.limit) == (0x500, 23)


def test_set_cpuid2_accepts_supported_table(kvm, cpu):
    cpu.set_cpuid2(kvm.supported_cpuid())


def test_set_cpuid2_rejects_absurd_table(cpu):
    with pytest.raises(KvmError):
        cpu.set_cpuid2([CpuidEntry(0)] * 100000)  # more than KVM_MAX_CPUID_ENTRIES


def test_msrs_roundtrip(cpu):
    cpu.set_msrs({MSR_IA32_SYSENTER_CS: 0x10})
    assert cpu.get_msrs([MSR_IA32_SYSENTER_CS]) == {MSR_IA32_SYSENTER_CS: 0x10}


def test_unknown_msr_is_named(cpu):
    with pytest.raises(KvmError) as info:
        cpu.get_msrs([MSR_IA32_SYSENTER_CS, 0xDEAD0000])
    assert "0xdead0000" in str(info.value)


def test_fpu_and_mp_state(cpu):
    cpu.set_fpu()
    assert cpu.get_mp_state() == 0  # KVM_MP_STATE_RUNNABLE without an irqchip


def test_tsc_khz(kvm, cpu):
    if not kvm.has(Cap.GET_TSC_KHZ):
        missing("KVM_CAP_GET_TSC_KHZ absent")
    khz = cpu.get_tsc_khz()
    assert khz > 100_000  # any real TSC runs above 100 MHz
    if kvm.has(Cap.TSC_CONTROL):
        cpu.set_tsc_khz(khz)
        assert cpu.get_tsc_khz() == khz


def test_lapic_lints_for_bsp(vm):
    vm.create_irqchip()
    with vm.create_vcpu(0) as cpu:
        assert len(cpu.get_lapic()) == 1024
        cpu.configure_lints()
        regs = cpu.get_lapic()
        lint0 = int.from_bytes(regs[LAPIC_LVT_LINT0 : LAPIC_LVT_LINT0 + 4], "little")
        lint1 = int.from_bytes(regs[LAPIC_LVT_LINT1 : LAPIC_LVT_LINT1 + 4], "little")
        assert (lint0 >> 8) & 7 == 7  # ExtINT
        assert (lint1 >> 8) & 7 == 4  # NMI
        with pytest.raises(ValueError):
            cpu.set_lapic(b"short")


def test_immediate_exit_makes_run_interrupted(cpu):
    cpu.immediate_exit = True
    assert cpu.immediate_exit is True
    assert type(cpu.run()).__name__ == "Interrupted"
    assert cpu.immediate_exit is False


def test_closed_vcpu_raises_ebadf(cpu):
    cpu.close()
    cpu.close()
    calls = [
        cpu.run,
        cpu.get_regs,
        lambda: cpu.set_regs(Regs()),
        lambda: cpu.set_sregs(Sregs()),
        cpu.get_sregs,
        lambda: cpu.set_cpuid2([]),
        lambda: cpu.get_msrs([MSR_IA32_SYSENTER_CS]),
        lambda: cpu.set_msrs({MSR_IA32_SYSENTER_CS: 0}),
        cpu.set_fpu,
        cpu.get_mp_state,
        cpu.get_tsc_khz,
        lambda: cpu.set_tsc_khz(1_000_000),
        lambda: cpu.set_mp_state(0),
        cpu.get_lapic,
        lambda: cpu.set_lapic(bytes(1024)),
        cpu.configure_lints,
        lambda: cpu.immediate_exit,
        lambda: setattr(cpu, "immediate_exit", True),
    ]
    for call in calls:
        with pytest.raises(KvmError) as info:
            call()
        assert info.value.errno == errno.EBADF


def test_reply_after_close_is_ebadf():
    require_kvm()
    from vmm_proc.kvm.exits import IoIn
    from vmm_proc.kvm.minivm import CODE_ADDR, MiniVm

    with MiniVm() as m:
        m.load(CODE_ADDR, bytes.fromhex("e499f4"))  # in al, 0x99; hlt
        m.real_mode(0, CODE_ADDR)
        exit_ = m.vcpus[0].run()
        assert isinstance(exit_, IoIn) and exit_.port == 0x99
        m.vcpus[0].close()
        with pytest.raises(KvmError) as info:
            exit_.reply(b"\1")  # must not touch the unmapped kvm_run page
        assert info.value.errno == errno.EBADF
