"""The driver side of split virtqueues and of virtio-mmio, played against FakeGuestMemory.

``MockVirtqDriver`` lays out one split ring in guest memory and adds chains the way Linux's
virtio_ring.c does; its raw methods let hostile tests write any descriptor or index they
like. ``MmioDriver`` performs the virtio-mmio v2 initialisation sequence through a
transport's ``read``/``write`` (or a bus), as drivers/virtio/virtio_mmio.c does.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from dataclasses import dataclass, field

from vmm_proc.devices.virtio.queue import (
    VIRTQ_DESC_F_INDIRECT,
    VIRTQ_DESC_F_NEXT,
    VIRTQ_DESC_F_WRITE,
)

__all__ = ("MmioDriver", "MockVirtqDriver", "UsedElem")

_DESC = struct.Struct("<QIHH")


def _align(x: int, a: int) -> int:
    return (x + a - 1) & ~(a - 1)


@dataclass(frozen=True)
class UsedElem:
    """A used-ring entry, with the data the device wrote (for writable chains)."""

    head: int
    length: int
    data: bytes = b""


@dataclass
class _Chain:
    descs: list[int]
    writable: list[tuple[int, int]] = field(default_factory=list)


class MockVirtqDriver:
    """A split virtqueue driver over ``mem`` with its rings and buffers at ``base``.

    :param mem: a FakeGuestMemory (anything with read/write).
    :param base: where the rings start; buffers are bump-allocated after them.
    :param size: queue size (power of 2).
    :param event_idx: maintain used_event like a driver that negotiated EVENT_IDX.
    """

    def __init__(self, mem, base: int, size: int, event_idx: bool = False) -> None:
        self.mem = mem
        self.size = size
        self.event_idx = event_idx
        self.desc_table = base
        self.avail_ring = base + 16 * size
        self.used_ring = _align(self.avail_ring + 6 + 2 * size, 4)
        self._heap = _align(self.used_ring + 6 + 8 * size, 16)
        self._free = list(range(size))
        self._chains: dict[int, _Chain] = {}
        self.avail_idx = 0
        self.last_used = 0

    # -- memory --------------------------------------------------------------------------

    def alloc(self, n: int, align: int = 16) -> int:
        """Reserve ``n`` bytes of guest memory after the rings."""
        addr = _align(self._heap, align)
        self._heap = addr + max(n, 1)
        if self._heap > len(self.mem.buf):
            raise MemoryError("MockVirtqDriver heap exhausted")
        return addr

    def put(self, data: bytes) -> int:
        """Copy ``data`` into fresh guest memory; return its address."""
        addr = self.alloc(len(data))
        self.mem.write(addr, data)
        return addr

    # -- raw access for hostile tests -----------------------------------------------------

    def write_desc(self, i: int, addr: int, length: int, flags: int = 0, nxt: int = 0) -> None:
        self.mem.write(self.desc_table + 16 * i, _DESC.pack(addr, length, flags, nxt))

    def set_avail(self, slot: int, head: int) -> None:
        self.mem.write(self.avail_ring + 4 + 2 * (slot % self.size), struct.pack("<H", head))

    def set_avail_idx(self, idx: int) -> None:
        self.avail_idx = idx & 0xFFFF
        self.mem.write(self.avail_ring + 2, struct.pack("<H", self.avail_idx))

    def set_avail_flags(self, flags: int) -> None:
        self.mem.write(self.avail_ring, struct.pack("<H", flags))

    def set_used_event(self, idx: int) -> None:
        self.mem.write(self.avail_ring + 4 + 2 * self.size, struct.pack("<H", idx & 0xFFFF))

    def avail_event(self) -> int:
        return struct.unpack("<H", self.mem.read(self.used_ring + 4 + 8 * self.size, 2))[0]

    def used_idx(self) -> int:
        return struct.unpack("<H", self.mem.read(self.used_ring + 2, 2))[0]

    def publish(self, head: int) -> None:
        """Put ``head`` in the next avail slot and bump avail idx (what virtqueue_kick follows)."""
        self.set_avail(self.avail_idx, head)
        self.set_avail_idx(self.avail_idx + 1)

    # -- chains like Linux builds them ----------------------------------------------------

    def add(self, readable: Sequence[bytes] = (), writable: Sequence[int] = ()) -> int:
        """Add and publish a chain of readable buffers then writable ones of given sizes."""
        segs = [(self.put(b), len(b), 0) for b in readable]
        wr = [(self.alloc(n), n) for n in writable]
        segs += [(a, n, VIRTQ_DESC_F_WRITE) for a, n in wr]
        if not segs or len(segs) > len(self._free):
            raise ValueError("empty chain or ring full")
        descs = [self._free.pop(0) for _ in segs]
        for k, (addr, n, flags) in enumerate(segs):
            last = k == len(segs) - 1
            nxt = 0 if last else descs[k + 1]
            self.write_desc(descs[k], addr, n, flags | (0 if last else VIRTQ_DESC_F_NEXT), nxt)
        self._chains[descs[0]] = _Chain(descs, wr)
        self.publish(descs[0])
        return descs[0]

    def add_indirect(self, readable: Sequence[bytes] = (), writable: Sequence[int] = ()) -> int:
        """Add and publish one descriptor pointing at an indirect table holding the chain."""
        segs = [(self.put(b), len(b), 0) for b in readable]
        wr = [(self.alloc(n), n) for n in writable]
        segs += [(a, n, VIRTQ_DESC_F_WRITE) for a, n in wr]
        table = self.alloc(16 * len(segs))
        for k, (addr, n, flags) in enumerate(segs):
            last = k == len(segs) - 1
            entry = _DESC.pack(addr, n, flags | (0 if last else VIRTQ_DESC_F_NEXT), k + 1)
            self.mem.write(table + 16 * k, entry)
        head = self._free.pop(0)
        self.write_desc(head, table, 16 * len(segs), VIRTQ_DESC_F_INDIRECT)
        self._chains[head] = _Chain([head], wr)
        self.publish(head)
        return head

    def used(self) -> list[UsedElem]:
        """Collect used elements since the last call, freeing their descriptors."""
        out = []
        end = self.used_idx()
        while self.last_used != end:
            slot = self.last_used % self.size
            head, length = struct.unpack("<II", self.mem.read(self.used_ring + 4 + 8 * slot, 8))
            self.last_used = (self.last_used + 1) & 0xFFFF
            chain = self._chains.pop(head, None)
            data = b""
            if chain is not None:
                self._free.extend(chain.descs)
                left = length
                for addr, n in chain.writable:
                    take = min(n, left)
                    data += self.mem.read(addr, take)
                    left -= take
            out.append(UsedElem(head, length, data))
            if self.event_idx:
                self.set_used_event(self.last_used)
        return out


class MmioDriver:
    """virtio-mmio v2 register-level driver (drivers/virtio/virtio_mmio.c order).

    :param dev: anything with ``read(offset, size)`` and ``write(offset, data)``.
    """

    def __init__(self, dev) -> None:
        self.dev = dev

    def r32(self, off: int) -> int:
        return struct.unpack("<I", self.dev.read(off, 4))[0]

    def w32(self, off: int, v: int) -> None:
        self.dev.write(off, struct.pack("<I", v & 0xFFFFFFFF))

    def device_features(self) -> int:
        self.w32(0x014, 0)
        lo = self.r32(0x010)
        self.w32(0x014, 1)
        return lo | self.r32(0x010) << 32

    def init(self, accept: int | None = None) -> int:
        """Reset, ACK, DRIVER, negotiate (all offered bits unless ``accept``), FEATURES_OK.

        :return: the status read back after FEATURES_OK.
        """
        self.w32(0x070, 0)
        self.w32(0x070, 1)
        self.w32(0x070, 1 | 2)
        feats = self.device_features() if accept is None else accept
        self.w32(0x024, 0)
        self.w32(0x020, feats)
        self.w32(0x024, 1)
        self.w32(0x020, feats >> 32)
        self.w32(0x070, 1 | 2 | 8)
        return self.r32(0x070)

    def setup_queue(self, index: int, q: MockVirtqDriver) -> None:
        """Program queue ``index`` with ``q``'s rings and set it ready."""
        self.w32(0x030, index)
        assert self.r32(0x044) == 0 and self.r32(0x034) >= q.size
        self.w32(0x038, q.size)
        for off, addr in ((0x080, q.desc_table), (0x090, q.avail_ring), (0x0A0, q.used_ring)):
            self.w32(off, addr)
            self.w32(off + 4, addr >> 32)
        self.w32(0x044, 1)

    def driver_ok(self) -> None:
        self.w32(0x070, self.r32(0x070) | 4)

    def notify(self, index: int) -> None:
        self.w32(0x050, index)

    def ack_interrupts(self) -> int:
        isr = self.r32(0x060)
        self.w32(0x064, isr)
        return isr
