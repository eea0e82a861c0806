"""Bus: range ownership, dispatch by offset, and bounded accounting of unmapped accesses."""

import pytest

from vmm_proc.devices.bus import MAX_TRACKED_UNMAPPED, Bus, BusConflictError


class Recorder:
    def __init__(self):
        self.reads = []
        self.writes = []

    def read(self, offset, size):
        self.reads.append((offset, size))
        return bytes(range(size))

    def write(self, offset, data):
        self.writes.append((offset, bytes(data)))


def test_dispatch_passes_offset_not_address():
    bus = Bus("pio", limit=1 << 16)
    dev = Recorder()
    bus.insert(0x3F8, 8, dev, name="ttyS0")
    assert bus.read(0x3FD, 1) == b"\x00"
    bus.write(0x3F8, b"A")
    assert dev.reads == [(5, 1)]
    assert dev.writes == [(0, b"A")]
    assert bus.find(0x3FF) == (0x3F8, dev)
    assert bus.find(0x400) is None


@pytest.mark.parametrize(
    "base,length",
    [(0x3F0, 0x9), (0x3FF, 1), (0x3F0, 0x100), (0x3FC, 2)],
)
def test_overlaps_rejected(base, length):
    bus = Bus("pio", limit=1 << 16)
    bus.insert(0x3F8, 8, Recorder())
    with pytest.raises(BusConflictError):
        bus.insert(base, length, Recorder())


def test_adjacent_ranges_allowed_and_bad_ranges_rejected():
    bus = Bus("pio", limit=1 << 16)
    a, b, c = Recorder(), Recorder(), Recorder()
    bus.insert(0x3F8, 8, a)
    bus.insert(0x3F0, 8, b)
    bus.insert(0x400, 8, c)
    bus.read(0x3F7, 1)
    bus.read(0x400, 1)
    assert b.reads == [(7, 1)] and c.reads == [(0, 1)] and a.reads == []
    for base, length in [(0, 0), (-1, 2), (0xFFFF, 2)]:
        with pytest.raises(BusConflictError):
            bus.insert(base, length, Recorder())


def test_unmapped_read_is_all_ones_and_counted():
    bus = Bus("mmio")
    assert bus.read(0xD000_0000, 4) == b"\xff" * 4
    assert bus.read(0xD000_0000, 2) == b"\xff" * 2
    bus.write(0xD000_0000, b"\x01\x02")
    assert bus.unmapped.reads == 2 and bus.unmapped.writes == 1
    assert bus.unmapped_count(0xD000_0000) == 3


def test_straddling_access_is_unmapped():
    bus = Bus("mmio")
    dev = Recorder()
    bus.insert(0x1000, 0x200, dev)
    assert bus.read(0x11FE, 4) == b"\xff" * 4
    bus.write(0x11FF, b"\x00\x00")
    assert dev.reads == [] and dev.writes == []
    assert bus.unmapped.reads == 1 and bus.unmapped.writes == 1


def test_absurd_sizes_are_harmless():
    bus = Bus("mmio")
    dev = Recorder()
    bus.insert(0, 0x1000, dev)
    assert bus.read(0, 0) == b""
    assert bus.read(0, 1 << 30) == b"\xff" * 8
    bus.write(0, b"\x00" * 100)
    assert dev.reads == [] and dev.writes == []


def test_hostile_scan_stays_bounded(caplog):
    bus = Bus("pio", limit=1 << 16)
    with caplog.at_level("INFO", logger="vmm_proc.devices.bus"):
        for port in range(1 << 16):
            bus.read(port, 1)
            bus.write(port, b"\x00")
    assert bus.unmapped.reads == 1 << 16 and bus.unmapped.writes == 1 << 16
    assert len(bus._per_addr) == MAX_TRACKED_UNMAPPED
    assert bus.unmapped.other == 2 * ((1 << 16) - MAX_TRACKED_UNMAPPED)
    assert len(caplog.records) <= 16


def test_log_budget():
    from vmm_proc.devices.log_budget import LogBudget

    b = LogBudget(limit=2)
    assert b.allow() and not b.exhausted_now
    assert b.allow() and b.exhausted_now
    assert not b.allow() and not b.exhausted_now
