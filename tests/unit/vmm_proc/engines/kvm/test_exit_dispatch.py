"""ExitDispatcher and dispatch_pio against a recording fake bus."""

from schedlab_shared.bus.vmm import ExitReason
from vmm_proc.devices.bus import Bus
from vmm_proc.engines.kvm.exit_dispatch import ExitDispatcher, ShutdownLatch
from vmm_proc.kvm.exits import (
    SYSTEM_EVENT_CRASH,
    SYSTEM_EVENT_RESET,
    FailEntry,
    Hlt,
    InternalError,
    IoIn,
    IoOut,
    MmioRead,
    MmioWrite,
    Shutdown,
    SystemEvent,
    Unsupported,
)


class Rec:
    def __init__(self, answer=b"\x11\x22\x33\x44"):
        self.writes, self.reads, self.answer = [], [], answer

    def read(self, offset, size):
        self.reads.append((offset, size))
        return self.answer[:size]

    def write(self, offset, data):
        self.writes.append((offset, bytes(data)))


def make():
    pio, mmio = Bus("pio", 1 << 16), Bus("mmio")
    dev, mdev = Rec(), Rec(b"\x01")  # mdev answers short on purpose
    pio.insert(0x3F8, 8, dev)
    mmio.insert(0xD000_0000, 0x200, mdev)
    latch = ShutdownLatch()
    return ExitDispatcher(0, pio, mmio, latch), dev, mdev, latch, pio


def test_port_io_single_and_string():
    d, dev, _, _, _ = make()
    assert d(IoOut(0x3F8, 1, 3, b"abc")) is None
    assert dev.writes == [(0, b"a"), (0, b"b"), (0, b"c")]
    got = []
    assert d(IoIn(0x3F9, 2, 2, got.append)) is None
    assert got == [b"\x11\x22\x11\x22"] and dev.reads == [(1, 2), (1, 2)]


def test_port_io_count_one_and_short_answer_padded_with_ones():
    d, dev, _, _, _ = make()
    assert d(IoOut(0x3FA, 2, 1, b"xy")) is None
    assert dev.writes == [(2, b"xy")]
    dev.answer = b"\x55"  # shorter than the access
    got = []
    assert d(IoIn(0x3FB, 4, 1, got.append)) is None
    assert got == [b"\x55\xff\xff\xff"] and dev.reads == [(3, 4)]


def test_unmapped_port_reads_all_ones_and_is_counted():
    d, _, _, _, pio = make()
    got = []
    d(IoIn(0x1234, 4, 1, got.append))
    d(IoOut(0x1234, 1, 1, b"\0"))
    assert got == [b"\xff" * 4]
    assert pio.unmapped.reads == 1 and pio.unmapped.writes == 1


def test_mmio_read_short_answer_is_zero_filled_and_write_forwarded():
    d, _, mdev, _, _ = make()
    got = []
    d(MmioRead(0xD000_0070, 4, got.append))
    d(MmioWrite(0xD000_0050, b"\x02\0\0\0"))
    assert got == [b"\x01\0\0\0"] and mdev.writes == [(0x50, b"\x02\0\0\0")]


def test_guest_ending_exits():
    d, *_ = make()
    assert d(SystemEvent(SYSTEM_EVENT_RESET)).reason is ExitReason.GUEST_EXIT
    assert d(SystemEvent(SYSTEM_EVENT_CRASH)).reason is ExitReason.CRASH
    stop = d(InternalError(1, (0x10, 0x20)))
    assert stop.reason is ExitReason.CRASH and "emulation failure" in stop.detail
    assert d(FailEntry(0x80000021, 1)).reason is ExitReason.CRASH


def test_triple_fault_is_a_crash_unless_the_guest_was_shutting_down():
    d, _, _, latch, _ = make()
    assert d(Shutdown()).reason is ExitReason.CRASH
    latch.set("reboot")
    stop = d(Shutdown())
    assert stop.reason is ExitReason.GUEST_EXIT and "reboot" in stop.detail


def test_unknown_exits_end_in_error_and_are_counted():
    d, *_ = make()
    assert d(Unsupported(99)).reason is ExitReason.ERROR
    assert d(Hlt()).reason is ExitReason.ERROR
    assert d.counts["unexpected"] == 2 and d.counts["Unsupported"] == 1


def test_device_requested_exit_stops_the_accessing_vcpu():
    d, _, _, latch, pio = make()
    pio.insert(0x64, 1, Rec())
    assert d(IoOut(0x64, 1, 1, b"\xfe")) is None
    latch.request("reset (i8042)")
    stop = d(IoOut(0x64, 1, 1, b"\xfe"))
    assert stop.reason is ExitReason.GUEST_EXIT and "i8042" in stop.detail


def test_exit_detail_names_the_device_and_the_console_line():
    d, _, _, latch, pio = make()
    pio.insert(0x64, 1, Rec())
    latch.set("reboot: Restarting system")
    latch.request("reset (i8042)")
    stop = d(IoOut(0x64, 1, 1, b"\xfe"))
    assert stop.detail == "guest reset (i8042) after 'reboot: Restarting system'"
