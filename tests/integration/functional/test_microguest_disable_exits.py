"""Tier 2: with KVM_CAP_X86_DISABLE_EXITS(HLT) a guest's HLT stays in the guest (no exit).

This project's dev machines' /dev/kvm offers the capability (mask 0xe) and accepts it, yet
HLT still exits there: it emulates kernel-mode guest code, HLT included. So the HLT check
runs where /dev/kvm has hardware semantics (``in_testbed``; there the emulated SVM does not
halt on a guest HLT either, it runs on); the host checks the API.
"""

import pytest

from tests.framework.microguest import MicroVm, assemble, require_kvm, require_tools
from tests.framework.prereq import missing
from vmm_proc.kvm import Cap, Kvm, KvmError
from vmm_proc.kvm.exits import Hlt, Interrupted, IoOut
from vmm_proc.kvm.minivm import CODE_ADDR
from vmm_proc.kvm.vm import DISABLE_EXITS_HLT, DISABLE_EXITS_PAUSE

pytestmark = pytest.mark.kvm

OUT_HLT_OUT = """
    .code16
    .globl start
start:
    mov $0x3f8, %dx
    mov $'a', %al
    out %al, %dx
    hlt
    mov $'b', %al
    out %al, %dx
1:  jmp 1b
"""


def _run(mask):
    with MicroVm(disable_exits=mask) as m:
        m.load(CODE_ADDR, assemble(OUT_HLT_OUT))
        m.real_mode(0, CODE_ADDR)
        return m.run(timeout=0.5)


def _offered():
    with Kvm.open() as kvm:
        return kvm.check_extension(Cap.X86_DISABLE_EXITS)


def test_disable_exits_is_accepted_before_vcpus():
    require_kvm()
    offered = _offered()
    if not offered:
        missing("/dev/kvm does not offer KVM_CAP_X86_DISABLE_EXITS")
    with MicroVm(disable_exits=offered & (DISABLE_EXITS_HLT | DISABLE_EXITS_PAUSE)) as m:
        assert m.vcpus  # KVM took the mask before any vCPU existed
        with pytest.raises(KvmError) as info:
            m.vm.enable_cap(Cap.X86_DISABLE_EXITS, 1 << 30)  # no such exit
        assert "KVM_ENABLE_CAP(X86_DISABLE_EXITS)" in str(info.value)


@pytest.mark.in_testbed
def test_hlt_exits_without_the_cap_and_stays_in_the_guest_with_it():
    require_kvm()
    require_tools()
    offered = _offered()
    if not offered & DISABLE_EXITS_HLT:
        missing(f"/dev/kvm does not offer KVM_CAP_X86_DISABLE_EXITS HLT (mask {offered:#x})")
    plain = _run(0)
    assert [type(e) for e in plain] == [IoOut, Hlt]
    quiet = _run(DISABLE_EXITS_HLT | (offered & DISABLE_EXITS_PAUSE))
    # The HLT stays in the guest: no Hlt exit, the vCPU halts (hardware) or runs on to the
    # spin loop (the testbed's emulated SVM) until the watchdog's kick.
    kinds = [type(e) for e in quiet]
    assert Hlt not in kinds and kinds[0] is IoOut and kinds[-1] is Interrupted, kinds
    assert quiet[0].data == b"a"
