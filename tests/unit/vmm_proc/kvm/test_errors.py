import errno

from vmm_proc.kvm.errors import KvmError


def test_kvm_error_carries_op_and_errno():
    e = KvmError("KVM_CREATE_VCPU", errno.EEXIST)
    assert isinstance(e, OSError)
    assert (e.op, e.errno) == ("KVM_CREATE_VCPU", errno.EEXIST)
    assert str(e) == "KVM_CREATE_VCPU: File exists (EEXIST)"


def test_kvm_error_detail_is_appended():
    e = KvmError("KVM_CHECK_EXTENSION", errno.ENOTSUP, "missing IRQCHIP, PIT2")
    assert str(e).endswith(": missing IRQCHIP, PIT2")
    assert e.errno == errno.ENOTSUP
