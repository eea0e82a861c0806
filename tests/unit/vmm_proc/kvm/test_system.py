import errno

import pytest

from tests.framework.microguest import require_kvm
from vmm_proc.kvm import Cap, Kvm, KvmError

pytestmark = pytest.mark.kvm


@pytest.fixture
def kvm():
    require_kvm()
    with Kvm.open() as k:
        yield k


def test_open_missing_device_raises_kvm_error(tmp_path):
    with pytest.raises(KvmError) as info:
        Kvm.open(str(tmp_path / "nokvm"))
    assert info.value.errno == errno.ENOENT


def test_basic_queries(kvm):
    assert kvm.api_version() == 12
    assert kvm.has(Cap.USER_MEMORY)
    assert kvm.check_extension(Cap.NR_VCPUS) >= 1
    assert kvm.vcpu_mmap_size() >= 4096


def test_supported_cpuid_has_basic_leaves(kvm):
    leaves = {e.function for e in kvm.supported_cpuid()}
    assert {0, 1} <= leaves
    assert 0x80000000 in leaves


def test_msr_index_list_holds_tsc(kvm):
    assert 0x10 in kvm.msr_index_list()  # IA32_TIME_STAMP_COUNTER


def test_require_names_every_missing_cap(kvm, monkeypatch):
    monkeypatch.setattr(kvm, "has", lambda cap: cap not in (Cap.PIT2, Cap.IRQFD))
    with pytest.raises(KvmError) as info:
        kvm.require(Cap.USER_MEMORY, Cap.PIT2, Cap.IRQFD)
    assert info.value.errno == errno.ENOTSUP
    assert "PIT2" in str(info.value) and "IRQFD" in str(info.value)
    assert "USER_MEMORY" not in str(info.value)


def test_require_passes_when_present(kvm):
    kvm.require(Cap.USER_MEMORY, Cap.IRQCHIP)


def test_closed_kvm_raises_ebadf(kvm):
    kvm.close()
    kvm.close()  # idempotent
    assert kvm.fd == -1
    calls = [
        kvm.api_version,
        lambda: kvm.check_extension(Cap.IRQCHIP),
        kvm.vcpu_mmap_size,
        kvm.supported_cpuid,
        kvm.msr_index_list,
        kvm.create_vm,
    ]
    for call in calls:
        with pytest.raises(KvmError) as info:
            call()
        assert info.value.errno == errno.EBADF
