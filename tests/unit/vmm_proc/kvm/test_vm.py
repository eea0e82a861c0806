import errno
import os

import pytest

from tests.framework.microguest import require_kvm
from vmm_proc.kvm import Cap, Kvm, KvmError
from vmm_proc.mem import GuestMemory

pytestmark = pytest.mark.kvm


@pytest.fixture
def vm():
    require_kvm()
    with Kvm.open() as kvm, kvm.create_vm() as v:
        yield v


@pytest.fixture
def efd():
    fd = os.eventfd(0, os.EFD_CLOEXEC)
    yield fd
    os.close(fd)


def test_memory_region_add_and_delete(vm):
    path = f"/dev/shm/schedlab-testvm-{os.getpid()}-mem"
    with GuestMemory.create(path, 1 << 20) as mem:
        r = mem.regions[0]
        vm.set_user_memory_region(0, r.gpa, r.size, r.host_addr)
        vm.set_user_memory_region(0, r.gpa, 0, r.host_addr)  # size 0 deletes


def test_bad_memory_region_is_einval(vm):
    with pytest.raises(KvmError) as info:
        vm.set_user_memory_region(0, 0x1001, 4096, 0x1000)  # unaligned gpa
    assert info.value.errno == errno.EINVAL


def test_irqchip_pit_and_lines(vm, efd):
    vm.set_tss_addr(0xFFFBD000)
    vm.set_identity_map_addr(0xFFFBC000)
    vm.create_irqchip()
    vm.create_pit2()
    vm.set_irq_line(4, 1)
    vm.set_irq_line(4, 0)
    vm.irqfd(efd, 5)
    vm.irqfd_deassign(efd, 5)


def test_ioeventfd_assign_deassign(vm, efd):
    vm.ioeventfd(efd, 0xD0000000, 4, datamatch=7)
    vm.ioeventfd(efd, 0x510, 2, pio=True)
    vm.ioeventfd_deassign(efd, 0xD0000000, 4, datamatch=7)
    vm.ioeventfd_deassign(efd, 0x510, 2, pio=True)
    with pytest.raises(KvmError) as info:
        vm.ioeventfd_deassign(efd, 0x510, 2, pio=True)  # no longer registered
    assert info.value.errno == errno.ENOENT


def test_duplicate_vcpu_id_is_eexist(vm):
    with vm.create_vcpu(0):
        with pytest.raises(KvmError) as info:
            vm.create_vcpu(0)
        assert info.value.errno == errno.EEXIST


def test_check_extension_on_vm(vm):
    assert vm.check_extension(Cap.USER_MEMORY) > 0


def test_closed_vm_raises_ebadf(vm, efd):
    vm.close()
    vm.close()
    calls = [
        lambda: vm.check_extension(Cap.IRQCHIP),
        lambda: vm.set_user_memory_region(0, 0, 4096, 0x1000),
        lambda: vm.set_tss_addr(0xFFFBD000),
        lambda: vm.set_identity_map_addr(0xFFFBC000),
        vm.create_irqchip,
        vm.create_pit2,
        lambda: vm.set_irq_line(4, 1),
        lambda: vm.irqfd(efd, 5),
        lambda: vm.irqfd_deassign(efd, 5),
        lambda: vm.ioeventfd(efd, 0x510, 2, pio=True),
        lambda: vm.ioeventfd_deassign(efd, 0x510, 2, pio=True),
        lambda: vm.create_vcpu(0),
    ]
    for call in calls:
        with pytest.raises(KvmError) as info:
            call()
        assert info.value.errno == errno.EBADF
