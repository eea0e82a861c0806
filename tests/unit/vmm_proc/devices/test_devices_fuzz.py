"""Property tests: random hostile access sequences never raise out of a device and stay bounded."""

import struct
import time

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.framework.fake_memory import FakeGuestMemory
from tests.framework.virtq_driver import MmioDriver, MockVirtqDriver
from vmm_proc.devices.i8042 import I8042, OUT_QUEUE_SIZE
from vmm_proc.devices.serial import FIFO_SIZE, Serial
from vmm_proc.devices.virtio import console as c
from vmm_proc.devices.virtio import mmio as m
from vmm_proc.devices.virtio.console import ConsoleConfig, VirtioConsole
from vmm_proc.devices.virtio.mmio import VirtioMmio

FUZZ = settings(
    max_examples=150, deadline=None, derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)  # fmt: skip

MEM = 1 << 20
byte_ops = st.lists(
    st.tuples(st.integers(-1, 9), st.sampled_from([0, 1, 2, 4]), st.integers(0, 255)),
    max_size=200,
)


@FUZZ
@given(byte_ops, st.lists(st.binary(max_size=100), max_size=5))
def test_serial_random_accesses(ops, inputs):
    u = Serial(irq=lambda: None, out=lambda b: None)
    for (off, size, val), data in zip(ops, inputs * 40 or [b""] * len(ops), strict=False):
        u.write(off, bytes([val]) * size)
        assert len(u.read(off, size)) == size
        u.enqueue(data)
    assert len(u.state().rx_fifo) <= FIFO_SIZE


@FUZZ
@given(byte_ops)
def test_i8042_random_accesses(ops):
    kbc = I8042(reset=lambda: None, irq=lambda: None)
    for off, size, val in ops:
        kbc.write(off, bytes([val]) * size)
        assert len(kbc.read(off, size)) == size
    assert len(kbc.state().out) <= OUT_QUEUE_SIZE


def live_console():
    mem = FakeGuestMemory(MEM)
    dev = VirtioConsole([lambda b: None] * 2, ConsoleConfig(queue_size=16, rx_limit=4096))
    t = VirtioMmio(dev, mem, irq=lambda: None, event_idx=True)
    drv = MmioDriver(t)
    drv.init()
    qs = []
    for i in range(dev.num_queues):
        q = MockVirtqDriver(mem, 0x1000 + i * 0x1000, 16)
        drv.setup_queue(i, q)
        qs.append(q)
    drv.driver_ok()
    return mem, dev, t, qs


desc = st.tuples(
    st.one_of(st.integers(0, MEM), st.integers(0, (1 << 64) - 1)),  # addr
    st.one_of(st.integers(0, 64), st.integers(0, (1 << 32) - 1)),  # len
    st.integers(0, 7),  # flags: NEXT, WRITE, INDIRECT in any combination
    st.integers(0, 20),  # next
)
virtq_op = st.one_of(
    st.tuples(st.just("chain"), st.integers(0, 5), st.lists(desc, min_size=1, max_size=4)),
    st.tuples(st.just("desc"), st.integers(0, 5), st.integers(0, 15), desc),
    st.tuples(st.just("avail"), st.integers(0, 5), st.integers(0, 0xFFFF), st.integers(0, 20)),
    st.tuples(st.just("notify"), st.integers(0, 9)),
    st.tuples(st.just("send"), st.integers(0, 1), st.binary(max_size=64)),
    st.tuples(st.just("reg"), st.integers(0, 0x10F), st.integers(0, 0xFFFFFFFF)),
    st.tuples(st.just("raw"), st.integers(0x1000, 0x9000), st.binary(min_size=1, max_size=32)),
)


@FUZZ
@given(st.lists(virtq_op, max_size=60))
def test_console_hostile_driver(ops):
    mem, dev, t, qs = live_console()
    for op in ops:
        t0 = time.monotonic()
        kind = op[0]
        if kind == "chain":  # a hostile chain at descriptors 0.., published and kicked
            _, qi, descs = op
            for i, (addr, length, flags, nxt) in enumerate(descs):
                qs[qi].write_desc(i, addr % MEM if flags & 4 else addr, length, flags, nxt)
            qs[qi].publish(0)
            t.notify(qi)
        elif kind == "desc":
            _, qi, i, (addr, length, flags, nxt) = op
            qs[qi].write_desc(i, addr, length, flags, nxt)
        elif kind == "avail":
            _, qi, idx, head = op
            qs[qi].set_avail(qs[qi].avail_idx, head)
            qs[qi].set_avail_idx(idx if idx % 3 == 0 else qs[qi].avail_idx + 1)
        elif kind == "notify":
            t.notify(op[1])
        elif kind == "send":
            assert dev.send(op[1], op[2]) <= len(op[2])
        elif kind == "reg":
            t.write(op[1] & ~3, struct.pack("<I", op[2]))
            t.read(op[1] & ~3, 4)
        else:
            mem.write(op[1], op[2])
        assert time.monotonic() - t0 < 2.0
    st_ = dev.state()
    assert all(len(b) <= 4096 for b in st_.rx_pending)
    assert len(st_.pending_control) <= ConsoleConfig().max_pending_control
    status = struct.unpack("<I", t.read(m.STATUS, 4))[0]
    assert status == 0 or status & m.STATUS_ACKNOWLEDGE or status & m.STATUS_DEVICE_NEEDS_RESET
    # a reset always brings the transport back to a clean state
    t.write(m.STATUS, b"\0\0\0\0")
    assert t.read(m.STATUS, 4) == b"\0\0\0\0" and t.state().isr == 0
    assert c.CONTROL_RX_QUEUE == 2
