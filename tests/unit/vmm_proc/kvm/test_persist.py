"""vmm_proc.kvm.persist and the state ioctls: round trips on /dev/kvm, and the restore order."""

import errno

import pytest

from tests.framework.microguest import require_kvm
from vmm_proc.kvm import Kvm, KvmError, persist
from vmm_proc.kvm.state_types import DebugRegs, Xcr

pytestmark = pytest.mark.kvm


@pytest.fixture
def kvm():
    require_kvm()
    with Kvm.open() as k:
        yield k


def _machine(kvm):
    vm = kvm.create_vm()
    vm.set_tss_addr(0xFFFBD000)
    vm.create_irqchip()
    vm.create_pit2()
    cpu = vm.create_vcpu(0)
    cpu.set_cpuid2(kvm.supported_cpuid())
    return vm, cpu


@pytest.fixture
def pair(kvm):
    made = [_machine(kvm), _machine(kvm)]
    yield made
    for vm, cpu in made:
        cpu.close()
        vm.close()


def _save(kvm, vm, cpu):
    return persist.save_vcpu(
        cpu, persist.msrs_to_save(kvm.msr_index_list()), persist.xsave_size(vm)
    )


def test_vcpu_state_survives_a_restore_into_a_fresh_vm(kvm, pair):
    (vm, cpu), (vm2, cpu2) = pair
    regs = cpu.get_regs()
    regs.rax, regs.r13, regs.rip = 0xDEADBEEF, 42, 0x1234
    cpu.set_regs(regs)
    cpu.set_debugregs(DebugRegs((1, 2, 3, 4), dr6=0xFFFF0FF0, dr7=0x400))
    cpu.set_msrs({0x174: 0x10, 0xC0000102: 0x7777000, 0x2FF: 0xC06})  # + MTRRdefType
    saved = _save(kvm, vm, cpu)
    assert persist.MSR_IA32_TSC in saved.msrs and persist.MSR_IA32_TSC_DEADLINE in saved.msrs
    assert 0x3A not in saved.msrs and 0x17B not in saved.msrs

    persist.restore_vcpu(cpu2, saved, can_scale_tsc=False)
    back = _save(kvm, vm2, cpu2)
    assert back.regs == saved.regs and back.regs.rax == 0xDEADBEEF
    assert back.sregs == saved.sregs
    assert back.debugregs.db == (1, 2, 3, 4) and back.debugregs.dr7 == 0x400
    assert back.lapic == saved.lapic and back.xsave == saved.xsave
    assert back.xcrs == saved.xcrs and back.events == saved.events
    assert back.mp_state == saved.mp_state
    assert back.msrs[0x174] == 0x10 and back.msrs[0xC0000102] == 0x7777000
    assert back.msrs[0x2FF] == 0xC06  # the MTRRs travel though KVM does not list them
    # This vCPU never armed a deadline (0): it is saved as the TSC, so a pending timer fires.
    assert saved.msrs[persist.MSR_IA32_TSC_DEADLINE] == saved.msrs[persist.MSR_IA32_TSC] > 0
    # The TSC goes on from the saved value: ahead of it, but by far less than a second.
    ahead = back.msrs[persist.MSR_IA32_TSC] - saved.msrs[persist.MSR_IA32_TSC]
    assert 0 <= ahead < saved.tsc_khz * 1000


def test_vm_state_survives_a_restore(pair):
    (vm, _), (vm2, _) = pair
    pic = vm.get_pic(0)
    pic.imr = 0xFB
    vm.set_pic(0, pic)
    ioapic = vm.get_ioapic()
    ioapic.redirtbl[4] = 0x10030  # vector 0x30, masked
    vm.set_ioapic(ioapic)
    saved = persist.save_vm(vm)
    assert saved.pic_master.imr == 0xFB and saved.ioapic.redirtbl[4] == 0x10030
    persist.restore_vm(vm2, saved)
    persist.restore_clock(vm2, saved, [])
    back = persist.save_vm(vm2)
    assert back.pic_master == saved.pic_master and back.pic_slave == saved.pic_slave
    assert back.ioapic == saved.ioapic
    assert [c.mode for c in back.pit.channels] == [c.mode for c in saved.pit.channels]
    # KVM_SET_CLOCK: the restored clock starts at the saved value, not at the host's time.
    assert 0 <= back.clock.clock - saved.clock.clock < 1_000_000_000


class _Recorder:
    """A VcpuFd stand-in that records the order of the SET ioctls."""

    vcpu_id = 0

    def __init__(self):
        self.calls = []

    def get_tsc_khz(self):
        return 1_000_000

    def __getattr__(self, name):
        if not name.startswith("set_") and name != "kvmclock_ctrl":
            raise AttributeError(name)

        def record(arg=None, *rest):
            if name == "set_msrs":
                self.calls.append(("set_msrs", tuple(arg)))
            else:
                self.calls.append((name,))

        return record


def _fake_state(msrs):
    from vmm_proc.kvm.types import Regs, Sregs

    return persist.VcpuSaved(
        0, [], 0, Regs(), Sregs(), bytes(4096), [Xcr(0, 1)], DebugRegs(), bytes(1024), msrs,
        bytes(persist.VCPU_EVENTS_SIZE), 1_000_000,
    )  # fmt: skip


def test_restore_order_cpuid_first_lapic_before_msrs_tsc_before_deadline_events_last():
    rec = _Recorder()
    msrs = {persist.MSR_IA32_TSC_DEADLINE: 5, persist.MSR_IA32_TSC: 4, 0x174: 1}
    persist.restore_vcpu(rec, _fake_state(msrs), can_scale_tsc=False)
    names = [c[0] for c in rec.calls]
    assert names[0] == "set_cpuid2" and names[-1] == "set_vcpu_events"
    assert names.index("set_sregs") < names.index("set_lapic") < names.index("set_msrs")
    assert names.index("set_regs") < names.index("set_vcpu_events")
    msr_batches = [c[1] for c in rec.calls if c[0] == "set_msrs"]
    assert msr_batches == [(persist.MSR_IA32_TSC, 0x174), (persist.MSR_IA32_TSC_DEADLINE,)]


def test_tsc_rate_mismatch_is_refused_without_scaling():
    rec = _Recorder()
    state = _fake_state({})
    state.tsc_khz = 2_000_000
    with pytest.raises(KvmError) as info:
        persist.restore_vcpu(rec, state, can_scale_tsc=False)
    assert info.value.errno == errno.ENOTSUP and "2000000 kHz" in str(info.value)
    assert [c[0] for c in rec.calls] == ["set_cpuid2"]
    rec2 = _Recorder()
    persist.restore_vcpu(rec2, state, can_scale_tsc=True)
    assert ("set_tsc_khz",) in rec2.calls
    # within 250 ppm is the same clock
    assert not persist.check_tsc_khz(1_000_000, 1_000_200, can_scale=False)


def test_wrong_blob_sizes_are_refused_before_any_ioctl():
    rec = _Recorder()
    state = _fake_state({})
    state.lapic = bytes(10)
    with pytest.raises(ValueError):
        persist.restore_vcpu(rec, state, can_scale_tsc=False)
    assert rec.calls == []


def test_state_ioctls_on_a_closed_vcpu_raise_ebadf(kvm):
    vm, cpu = _machine(kvm)
    cpu.close()
    for call in (
        cpu.get_xsave,
        cpu.get_xcrs,
        cpu.get_debugregs,
        cpu.get_vcpu_events,
        cpu.get_cpuid2,
        lambda: cpu.set_xcrs([Xcr(0, 1)]),
        lambda: cpu.set_vcpu_events(bytes(persist.VCPU_EVENTS_SIZE)),
    ):
        with pytest.raises(KvmError) as info:
            call()
        assert info.value.errno == errno.EBADF
    vm.close()
    for call in (vm.get_ioapic, vm.get_pit2, vm.get_clock, lambda: vm.get_pic(0)):
        with pytest.raises(KvmError) as info:
            call()
        assert info.value.errno == errno.EBADF


def test_no_xcrs_saved_means_no_set_xcrs():
    rec = _Recorder()
    state = _fake_state({})
    state.xcrs = []
    persist.restore_vcpu(rec, state, can_scale_tsc=False)
    assert ("set_xcrs",) not in rec.calls and ("set_xsave",) in rec.calls
