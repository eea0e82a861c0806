"""DeviceManager wiring against a recording fake VM (no /dev/kvm needed)."""

import os

from tests.framework.fake_memory import FakeGuestMemory
from vmm_proc.engines.kvm.boot_plan import MmioDevice
from vmm_proc.engines.kvm.device_manager import DeviceManager
from vmm_proc.engines.kvm.exit_dispatch import ShutdownLatch


class FakeVm:
    def __init__(self):
        self.irqfds, self.ioeventfds = [], []

    def irqfd(self, eventfd, gsi, resamplefd=None):
        self.irqfds.append((eventfd, gsi))

    def ioeventfd(self, eventfd, addr, length, datamatch=None, pio=False):
        self.ioeventfds.append((eventfd, addr, length, datamatch, pio))


def make():
    out, errors = [], []
    vm, latch = FakeVm(), ShutdownLatch()
    dm = DeviceManager(vm, lambda n, d: out.append((n, d)), latch, errors.append)
    return dm, vm, latch, out, errors


def test_legacy_devices_route_output_and_interrupts():
    dm, vm, latch, out, _ = make()
    dm.add_legacy()
    dm.pio.write(0x3F8, b"a")
    dm.pio.write(0x2F8, b"b")
    assert out == [("console", b"a"), ("diag", b"b")]
    assert sorted(gsi for _, gsi in vm.irqfds) == [1, 3, 4]
    # an enabled THRE interrupt fires the COM1 irqfd: its eventfd counter moves
    com1_fd = next(fd for fd, gsi in vm.irqfds if gsi == 4)
    dm.pio.write(0x3F9, b"\x02")
    assert os.eventfd_read(com1_fd) >= 1
    dm.close()


def test_i8042_reset_and_acpi_s5_request_a_guest_exit():
    dm, _, latch, _, _ = make()
    dm.add_legacy()
    dm.pio.write(0x600, b"\x14")  # SLP_TYP 5 without SLP_EN: nothing
    assert not latch.requested
    dm.pio.write(0x64, b"\xfe")
    assert latch.requested and "i8042" in latch.how
    dm2, _, latch2, _, _ = make()
    dm2.add_legacy()
    dm2.pio.write(0x600, b"\x34")
    assert latch2.requested and "S5" in latch2.how
    dm.close()
    dm2.close()


def test_virtio_console_gets_an_ioeventfd_per_queue_and_an_irqfd():
    dm, vm, _, _, _ = make()
    devices = dm.add_virtio_console(FakeGuestMemory(1 << 20))
    assert devices == [MmioDevice(0xD000_0000, 0x1000, 5)]
    assert [(a, n, m) for _, a, n, m, _ in vm.ioeventfds] == [
        (0xD000_0050, 4, q) for q in range(8)
    ]  # 3 ports: hvc0, bulk, shell
    assert [gsi for _, gsi in vm.irqfds] == [5]
    assert dm.mmio.read(0xD000_0000, 4) == b"virt"
    assert dm.send_console(b"x") == 1  # held until the guest opens port 0
    from guest.wire import SHELL_PORT_NAME

    assert dm.console.config.port_names[2] == SHELL_PORT_NAME  # schedlab shell's port
    dm.close()


def test_close_is_idempotent_and_closes_eventfds():
    dm, vm, _, _, _ = make()
    dm.add_legacy()
    dm.add_virtio_console(FakeGuestMemory(1 << 20))
    evts = list(dm._eventfds)
    assert len(evts) == 3 + 1 + 8  # 2 UARTs + sleep, the irq, 8 queues (3 ports)
    dm.start()
    dm.close()
    dm.close()
    assert all(e.fd == -1 for e in evts)
    assert not dm.io_thread._thread.is_alive()


def test_send_bulk_is_bounded_and_waits_for_room():
    import time

    dm, _, _, _, _ = make()
    dm.add_virtio_console(FakeGuestMemory(1 << 20))
    limit = dm.console.config.rx_limit
    t0 = time.monotonic()
    assert dm.send_bulk(b"z" * (limit + 5000), 0.1) == limit  # no driver reads: the bound
    assert time.monotonic() - t0 >= 0.1 and dm.bulk_pending() == limit
    assert dm.send_bulk(b"more", 0.0) == 0
    dm.close()
