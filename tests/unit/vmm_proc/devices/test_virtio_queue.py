"""Split virtqueue device side against a well-behaved and a hostile driver."""

import time

import pytest

from tests.framework.fake_memory import FakeGuestMemory
from tests.framework.virtq_driver import MockVirtqDriver
from vmm_proc.devices.virtio.queue import (
    VIRTQ_AVAIL_F_NO_INTERRUPT,
    VIRTQ_DESC_F_INDIRECT,
    VIRTQ_DESC_F_NEXT,
    VIRTQ_DESC_F_WRITE,
    QueueError,
    QueueErrorKind,
    SplitQueue,
    iter_readable,
    write_writable,
)

K = QueueErrorKind


def make(size=16, mem_size=1 << 20, event_idx=False, indirect=True):
    mem = FakeGuestMemory(mem_size)
    drv = MockVirtqDriver(mem, 0x1000, size, event_idx=event_idx)
    q = SplitQueue(max_size=256)
    q.size = size
    q.desc_table, q.avail_ring, q.used_ring = drv.desc_table, drv.avail_ring, drv.used_ring
    q.ready = True
    q.event_idx = event_idx
    q.indirect = indirect
    q.validate(mem)
    return mem, drv, q


def raises(kind, fn, *a):
    with pytest.raises(QueueError) as ei:
        fn(*a)
    assert ei.value.kind is kind, ei.value


def test_pop_read_write_and_used():
    mem, drv, q = make()
    head = drv.add([b"hello ", b"world"], [4, 8])
    chain = q.pop(mem)
    assert chain.head == head and chain.readable_len == 11 and chain.writable_len == 12
    assert b"".join(iter_readable(mem, chain, 1 << 20)) == b"hello world"
    assert b"".join(iter_readable(mem, chain, 7)) == b"hello w"
    assert b"".join(iter_readable(mem, chain, 1 << 20, chunk=3)) == b"hello world"
    assert write_writable(mem, chain, b"0123456789ABCDEF") == 12
    q.add_used(mem, chain.head, 12)
    assert q.pop(mem) is None
    (u,) = drv.used()
    assert (u.head, u.length, u.data) == (head, 12, b"0123456789AB")


def test_indices_wrap_u16():
    mem, drv, q = make(size=4)
    q.next_avail = q.next_used = 0xFFFE
    drv.set_avail_idx(0xFFFE)
    drv.last_used = 0xFFFE
    mem.write(q.used_ring + 2, (0xFFFE).to_bytes(2, "little"))
    for i in range(6):
        head = drv.add([bytes([i])])
        c = q.pop(mem)
        assert c.head == head
        q.add_used(mem, c.head, 0)
        assert [u.head for u in drv.used()] == [head]
    assert q.next_avail == 4 and q.next_used == 4


def test_indirect_chain():
    mem, drv, q = make()
    head = drv.add_indirect([b"abc", b"de"], [5])
    c = q.pop(mem)
    assert c.head == head and b"".join(iter_readable(mem, c, 100)) == b"abcde"
    assert c.writable_len == 5


def test_looping_chain_hits_ttl():
    mem, drv, q = make()
    buf = drv.alloc(8)
    drv.write_desc(0, buf, 8, VIRTQ_DESC_F_NEXT, 1)
    drv.write_desc(1, buf, 8, VIRTQ_DESC_F_NEXT, 0)
    drv.publish(0)
    raises(K.CHAIN_TOO_LONG, q.pop, mem)


def test_self_loop_at_max_size_is_fast():
    mem = FakeGuestMemory(1 << 20)
    drv = MockVirtqDriver(mem, 0x1000, 32768 // 4)
    q = SplitQueue(32768)
    q.size = drv.size
    q.desc_table, q.avail_ring, q.used_ring = drv.desc_table, drv.avail_ring, drv.used_ring
    buf = drv.alloc(8)
    drv.write_desc(0, buf, 8, VIRTQ_DESC_F_NEXT, 0)
    drv.publish(0)
    t = time.monotonic()
    raises(K.CHAIN_TOO_LONG, q.pop, mem)
    assert time.monotonic() - t < 5


def test_bad_head_and_next():
    mem, drv, q = make()
    drv.publish(16)
    raises(K.BAD_HEAD, q.pop, mem)
    mem, drv, q = make()
    drv.write_desc(0, drv.alloc(4), 4, VIRTQ_DESC_F_NEXT, 99)
    drv.publish(0)
    raises(K.BAD_NEXT, q.pop, mem)


@pytest.mark.parametrize(
    "addr,length", [(1 << 20, 1), ((1 << 20) - 1, 2), (1 << 63, 16), ((1 << 64) - 1, 2)]
)
def test_out_of_range_buffer(addr, length):
    mem, drv, q = make()
    drv.write_desc(0, addr, length)
    drv.publish(0)
    raises(K.BAD_ADDRESS, q.pop, mem)


class AllMemory:
    """Every address reads as zero: lets a test claim a 4 GiB chain cheaply."""

    def read(self, gpa, size):
        return bytes(size)

    def write(self, gpa, data):
        pass


def test_absurd_total_length():
    mem, drv, q = make()
    drv.write_desc(0, 0x10000, 0xFFFFFFFF, VIRTQ_DESC_F_NEXT, 1)
    drv.write_desc(1, 0x10000, 2)
    drv.publish(0)

    class Overlay(AllMemory):
        def read(self, gpa, size):
            return mem.read(gpa, size) if gpa + size <= len(mem.buf) else bytes(size)

    raises(K.CHAIN_TOO_BIG, q.pop, Overlay())


def test_zero_length_descriptors_allowed():
    mem, drv, q = make()
    drv.write_desc(0, 0xFFFF_FFFF_0000, 0, VIRTQ_DESC_F_NEXT, 1)
    drv.write_desc(1, drv.put(b"x"), 1)
    drv.publish(0)
    assert b"".join(iter_readable(mem, q.pop(mem), 10)) == b"x"


def test_write_before_read_rejected():
    mem, drv, q = make()
    drv.write_desc(0, drv.alloc(4), 4, VIRTQ_DESC_F_WRITE | VIRTQ_DESC_F_NEXT, 1)
    drv.write_desc(1, drv.alloc(4), 4)
    drv.publish(0)
    raises(K.WRITE_BEFORE_READ, q.pop, mem)


def _indirect(drv, table_len, entries=(), flags=VIRTQ_DESC_F_INDIRECT):
    table = drv.alloc(max(table_len, 16 * len(entries), 16))
    for k, e in enumerate(entries):
        drv.mem.write(table + 16 * k, __import__("struct").pack("<QIHH", *e))
    drv.write_desc(0, table, table_len, flags)
    drv.publish(0)
    return table


@pytest.mark.parametrize(
    "table_len,entries,flags,kind",
    [
        (0, (), VIRTQ_DESC_F_INDIRECT, K.BAD_INDIRECT_LEN),
        (24, (), VIRTQ_DESC_F_INDIRECT, K.BAD_INDIRECT_LEN),
        (16 * 17, (), VIRTQ_DESC_F_INDIRECT, K.BAD_INDIRECT_LEN),
        (16, (), VIRTQ_DESC_F_INDIRECT | VIRTQ_DESC_F_NEXT, K.INDIRECT_WITH_NEXT),
        (16, ((0x3000, 16, VIRTQ_DESC_F_INDIRECT, 0),), VIRTQ_DESC_F_INDIRECT, K.NESTED_INDIRECT),
        (
            32,
            ((0x3000, 4, VIRTQ_DESC_F_NEXT, 1), (0x3000, 4, VIRTQ_DESC_F_NEXT, 0)),
            VIRTQ_DESC_F_INDIRECT,
            K.CHAIN_TOO_LONG,
        ),
        (16, ((0x3000, 4, VIRTQ_DESC_F_NEXT, 5),), VIRTQ_DESC_F_INDIRECT, K.BAD_NEXT),
    ],
)
def test_hostile_indirect(table_len, entries, flags, kind):
    mem, drv, q = make()
    _indirect(drv, table_len, entries, flags)
    raises(kind, q.pop, mem)


def test_indirect_table_outside_memory():
    mem, drv, q = make()
    drv.write_desc(0, (1 << 20) - 16, 32, VIRTQ_DESC_F_INDIRECT)
    drv.publish(0)
    raises(K.BAD_ADDRESS, q.pop, mem)


def test_indirect_needs_negotiation():
    mem, drv, q = make(indirect=False)
    drv.add_indirect([b"x"])
    raises(K.INDIRECT_NOT_NEGOTIATED, q.pop, mem)


def test_avail_index_jump_rejected():
    mem, drv, q = make()
    drv.set_avail_idx(17)
    raises(K.AVAIL_JUMP, q.pop, mem)
    drv.set_avail_idx(0xFFFF)  # "behind" the device is also a jump of 65535
    raises(K.AVAIL_JUMP, q.pop, mem)


@pytest.mark.parametrize(
    "size,desc,avail,used",
    [
        (0, 0x1000, 0x2000, 0x3000),
        (3, 0x1000, 0x2000, 0x3000),
        (512, 0x1000, 0x3000, 0x5000),
        (16, 0x1008, 0x2000, 0x3000),
        (16, 0x1000, 0x2001, 0x3000),
        (16, 0x1000, 0x2000, 0x3002),
        (16, (1 << 20) - 16, 0x2000, 0x3000),
        (16, 0x1000, 0x2000, (1 << 20) - 8),
    ],
)
def test_validate_rejects_bad_config(size, desc, avail, used):
    mem = FakeGuestMemory(1 << 20)
    q = SplitQueue(256)
    q.size, q.desc_table, q.avail_ring, q.used_ring = size, desc, avail, used
    raises(K.BAD_CONFIG, q.validate, mem)


def test_add_used_bad_head():
    mem, drv, q = make()
    raises(K.BAD_USED, q.add_used, mem, 16, 0)


def test_no_interrupt_flag():
    mem, drv, q = make()
    q.add_used(mem, 0, 0)
    assert q.needs_interrupt(mem)
    drv.set_avail_flags(VIRTQ_AVAIL_F_NO_INTERRUPT)
    assert not q.needs_interrupt(mem)


def test_event_idx_suppression_and_avail_event():
    mem, drv, q = make(event_idx=True)
    for _ in range(3):
        drv.add([b"x"])
    for _ in range(3):
        q.add_used(mem, q.pop(mem).head, 0)
    assert drv.avail_event() == 3
    assert q.needs_interrupt(mem)  # first time always
    drv.set_used_event(5)  # "wake me when used idx passes 5"
    q.add_used(mem, 0, 0)  # used idx 4
    assert not q.needs_interrupt(mem)
    q.add_used(mem, 0, 0)
    q.add_used(mem, 0, 0)  # used idx 6 crosses 5
    assert q.needs_interrupt(mem)
    assert not q.needs_interrupt(mem)  # nothing new


def test_state_restore_roundtrip():
    mem, drv, q = make()
    drv.add([b"a"])
    q.add_used(mem, q.pop(mem).head, 0)
    q2 = SplitQueue(256)
    q2.restore(q.state())
    assert q2.state() == q.state()
    with pytest.raises(ValueError):
        SplitQueue(128).restore(q.state())
    with pytest.raises(ValueError):
        SplitQueue(100)
