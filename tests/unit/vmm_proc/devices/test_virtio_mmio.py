"""virtio-mmio v2 transport: registers, negotiation, reset, interrupts, needs-reset, garbage."""

import itertools
import struct

import pytest

from tests.framework.fake_memory import FakeGuestMemory
from tests.framework.virtq_driver import MmioDriver, MockVirtqDriver
from vmm_proc.devices.virtio import mmio as m
from vmm_proc.devices.virtio.device import VIRTIO_F_VERSION_1
from vmm_proc.devices.virtio.mmio import VirtioMmio
from vmm_proc.devices.virtio.queue import iter_readable


class EchoDevice:
    """Queue 0: guest->host records; queue 1: unused. Config: 8 bytes 0..7."""

    device_id = 42
    num_queues = 2
    queue_max_size = 64

    def __init__(self):
        self.ctx = None
        self.got = []
        self.resets = 0
        self.config_writes = []

    def features(self):
        return 1 << 5

    def read_config(self, offset, size):
        return bytes(range(8))[offset : offset + size].ljust(size, b"\0")

    def write_config(self, offset, data):
        self.config_writes.append((offset, data))

    def activate(self, ctx):
        self.ctx = ctx

    def process_queue(self, index):
        q = self.ctx.queues[index]
        while (c := q.pop(self.ctx.mem)) is not None:
            self.got.append(b"".join(iter_readable(self.ctx.mem, c, 1 << 16)))
            q.add_used(self.ctx.mem, c.head, 0)
        self.ctx.signal_if_needed(index)

    def reset(self):
        self.resets += 1
        self.ctx = None


class Counts:
    def __init__(self):
        self.bad = 0
        self.reasons = []
        self.ignored = 0

    def bad_access(self):
        self.bad += 1

    def needs_reset(self, reason):
        self.reasons.append(reason)

    def notify_ignored(self):
        self.ignored += 1

    def interrupt(self):
        pass


@pytest.fixture
def env():
    mem = FakeGuestMemory(1 << 20)
    dev = EchoDevice()
    irqs = []
    t = VirtioMmio(dev, mem, irq=lambda: irqs.append(1), metrics=Counts())
    drv = MmioDriver(t)
    q = MockVirtqDriver(mem, 0x10000, 16)
    return mem, dev, t, drv, q, irqs


def bring_up(drv, q):
    assert drv.init() & m.STATUS_FEATURES_OK
    drv.setup_queue(0, q)
    drv.driver_ok()


def test_identity_registers(env):
    _, _, t, drv, *_ = env
    assert drv.r32(m.MAGIC_VALUE) == 0x74726976
    assert drv.r32(m.VERSION) == 2
    assert drv.r32(m.DEVICE_ID) == 42
    feats = drv.device_features()
    assert feats & VIRTIO_F_VERSION_1 and feats & (1 << 5)
    drv.w32(m.DEVICE_FEATURES_SEL, 7)
    assert drv.r32(m.DEVICE_FEATURES) == 0
    drv.w32(m.QUEUE_SEL, 2)
    assert drv.r32(m.QUEUE_NUM_MAX) == 0  # Linux: queue does not exist
    drv.w32(m.QUEUE_SEL, 1)
    assert drv.r32(m.QUEUE_NUM_MAX) == 64
    assert drv.r32(m.SHM_LEN_LOW) == drv.r32(m.SHM_LEN_HIGH) == 0xFFFFFFFF


def test_version_1_is_required(env):
    _, _, t, drv, *_ = env
    assert not drv.init(accept=1 << 5) & m.STATUS_FEATURES_OK
    assert not drv.init(accept=VIRTIO_F_VERSION_1 | 1 << 6) & m.STATUS_FEATURES_OK
    assert drv.init(accept=VIRTIO_F_VERSION_1) & m.STATUS_FEATURES_OK


def test_driver_ok_without_features_ok_refused(env):
    _, dev, t, drv, *_ = env
    drv.w32(m.STATUS, 1 | 2)
    drv.w32(m.STATUS, 1 | 2 | 4)
    assert not drv.r32(m.STATUS) & m.STATUS_DRIVER_OK and dev.ctx is None


def test_end_to_end_notify_and_interrupt(env):
    _, dev, t, drv, q, irqs = env
    q.add([b"early"])
    bring_up(drv, q)
    assert dev.got == [b"early"]  # buffers posted before DRIVER_OK are processed then
    q.add([b"one"])
    drv.notify(0)
    assert dev.got[-1] == b"one"
    assert irqs and drv.r32(m.INTERRUPT_STATUS) == m.INT_USED_RING
    assert drv.ack_interrupts() == m.INT_USED_RING
    assert drv.r32(m.INTERRUPT_STATUS) == 0
    assert [u.head for u in q.used()] == [0, 1]


def test_notify_is_callable_directly(env):
    _, dev, t, drv, q, _ = env
    bring_up(drv, q)
    q.add([b"via ioeventfd"])
    t.notify(0)
    assert dev.got == [b"via ioeventfd"]


def test_notify_ignored_when_not_live(env):
    _, dev, t, drv, q, _ = env
    q.add([b"x"])
    t.notify(0)
    t.notify(1)
    t.notify(99)
    assert dev.got == [] and t.metrics.ignored == 3


def test_queue_registers_locked_while_ready(env):
    _, _, t, drv, q, _ = env
    bring_up(drv, q)
    drv.w32(m.QUEUE_SEL, 0)
    drv.w32(m.QUEUE_NUM, 2)
    drv.w32(m.QUEUE_DESC_LOW, 0x5000)
    assert drv.r32(m.QUEUE_NUM) == 16 and drv.r32(m.QUEUE_DESC_LOW) == q.desc_table
    assert drv.r32(m.QUEUE_READY) == 1


def test_reset_clears_everything(env):
    _, dev, t, drv, q, _ = env
    bring_up(drv, q)
    q.add([b"x"])
    drv.notify(0)
    before = dev.resets
    drv.w32(m.STATUS, 0)
    st = t.state()
    assert st.status == 0 and st.isr == 0 and st.driver_features == 0
    assert all(not qs.ready and qs.size == 0 for qs in st.queues)
    assert dev.resets == before + 1 and dev.ctx is None


def test_bad_queue_config_needs_reset(env):
    _, dev, t, drv, q, irqs = env
    drv.init()
    drv.w32(m.QUEUE_SEL, 0)
    drv.w32(m.QUEUE_NUM, 16)
    drv.w32(m.QUEUE_DESC_LOW, 0xFFF0_0000)
    drv.w32(m.QUEUE_READY, 1)
    assert drv.r32(m.QUEUE_READY) == 0
    assert drv.r32(m.STATUS) & m.STATUS_DEVICE_NEEDS_RESET
    drv.w32(m.STATUS, 0)
    assert not drv.r32(m.STATUS) & m.STATUS_DEVICE_NEEDS_RESET


def test_hostile_ring_needs_reset_and_stops(env):
    _, dev, t, drv, q, irqs = env
    bring_up(drv, q)
    q.write_desc(0, 0xFFFF_0000, 16)
    q.publish(0)
    drv.notify(0)
    assert drv.r32(m.STATUS) & m.STATUS_DEVICE_NEEDS_RESET
    assert drv.r32(m.INTERRUPT_STATUS) & m.INT_CONFIG
    assert t.metrics.reasons and "outside guest memory" in t.metrics.reasons[0]
    drv.notify(0)
    assert t.metrics.ignored == 1
    # the driver can recover by resetting
    q2 = MockVirtqDriver(env[0], 0x40000, 16)
    bring_up(drv, q2)
    q2.add([b"again"])
    drv.notify(0)
    assert dev.got == [b"again"]


def test_avail_jump_needs_reset(env):
    _, dev, t, drv, q, _ = env
    bring_up(drv, q)
    q.set_avail_idx(0x8000)
    drv.notify(0)
    assert drv.r32(m.STATUS) & m.STATUS_DEVICE_NEEDS_RESET


def test_config_space_forwarded(env):
    _, dev, t, drv, *_ = env
    assert t.read(m.CONFIG + 2, 2) == b"\x02\x03"
    assert t.read(m.CONFIG + 6, 4) == b"\x06\x07\x00\x00"
    t.write(m.CONFIG + 1, b"\x09")
    assert dev.config_writes == [(1, b"\x09")]
    assert t.read(m.CONFIG, 3) == b"\0\0\0" and t.metrics.bad == 1


def test_state_roundtrip_reactivates(env):
    mem, dev, t, drv, q, _ = env
    bring_up(drv, q)
    q.add([b"a"])
    drv.notify(0)
    dev2 = EchoDevice()
    t2 = VirtioMmio.from_state(t.state(), dev2, mem, irq=lambda: None)
    assert t2.state() == t.state() and dev2.ctx is not None
    q.add([b"b"])
    t2.notify(0)
    assert dev2.got == [b"b"]


def test_garbage_to_every_register(env):
    mem, dev, t, drv, q, irqs = env
    values = [0, 1, 0xFFFFFFFF, 0x80000000, 0x12345678, 4, 0x10000]
    for off, v in itertools.product(range(0, m.CONFIG + 16), values):
        for size in (1, 2, 4, 8):
            t.write(off, struct.pack("<Q", v)[:size])
            assert len(t.read(off, size)) == size
    t.write(m.STATUS, b"\0\0\0\0")
    t.write(0x3, b"")
    assert t.read(-4, 4) == b"\0" * 4
    # still usable afterwards
    q2 = MockVirtqDriver(mem, 0x40000, 16)
    drv.w32(m.STATUS, 0)
    bring_up(drv, q2)
    q2.add([b"ok"])
    drv.notify(0)
    assert dev.got[-1] == b"ok"
