"""The device side of a split virtqueue (VIRTIO 1.2 §2.7), written for a hostile driver.

Every guest-provided index, length and address is checked before use: chain walks are
bounded by a TTL of the queue (or indirect table) size, chain lengths by 2^32, avail index
jumps by the queue size, and every buffer is probed through GuestMemoryAccess. Violations
raise :class:`QueueError`; the transport turns that into DEVICE_NEEDS_RESET and stops
processing, so nothing escapes into the run loop.
"""

from __future__ import annotations

import enum
import struct
from collections.abc import Iterator
from dataclasses import dataclass

from vmm_proc.mem.access import GuestMemoryAccess, GuestMemoryError

__all__ = (
    "DescriptorChain",
    "MAX_QUEUE_SIZE",
    "QueueError",
    "QueueErrorKind",
    "QueueState",
    "Segment",
    "SplitQueue",
    "VIRTQ_AVAIL_F_NO_INTERRUPT",
    "VIRTQ_DESC_F_INDIRECT",
    "VIRTQ_DESC_F_NEXT",
    "VIRTQ_DESC_F_WRITE",
    "iter_readable",
    "write_writable",
)

VIRTQ_DESC_F_NEXT = 1
VIRTQ_DESC_F_WRITE = 2
VIRTQ_DESC_F_INDIRECT = 4
VIRTQ_AVAIL_F_NO_INTERRUPT = 1
VIRTQ_USED_F_NO_NOTIFY = 1

DESC_SIZE = 16
USED_ELEM_SIZE = 8
RING_HEADER = 4  # flags u16 + idx u16
MAX_QUEUE_SIZE = 32768  # §2.7: split queues are at most 32768 entries, a power of 2
MAX_CHAIN_LEN = 1 << 32  # §2.7.5: a chain's total length must not exceed 2^32

_DESC = struct.Struct("<QIHH")
_U16 = struct.Struct("<H")
_USED_ELEM = struct.Struct("<II")


class QueueErrorKind(enum.Enum):
    """Why a queue was declared broken."""

    BAD_CONFIG = "queue size, alignment or ring placement invalid"
    AVAIL_JUMP = "avail index moved by more than the queue size"
    BAD_HEAD = "avail ring names a descriptor beyond the queue"
    BAD_NEXT = "descriptor next index beyond its table"
    CHAIN_TOO_LONG = "descriptor chain longer than its table (loop?)"
    CHAIN_TOO_BIG = "descriptor chain total length exceeds 2^32"
    BAD_ADDRESS = "buffer outside guest memory"
    INDIRECT_NOT_NEGOTIATED = "indirect descriptor without VIRTIO_F_INDIRECT_DESC"
    NESTED_INDIRECT = "indirect descriptor inside an indirect table"
    INDIRECT_WITH_NEXT = "indirect descriptor with NEXT set"
    BAD_INDIRECT_LEN = "indirect table length not a non-zero multiple of 16 within size"
    WRITE_BEFORE_READ = "device-readable descriptor after a device-writable one"
    BAD_USED = "used element for a head beyond the queue"


class QueueError(Exception):
    """The driver broke the ring protocol; the device must stop using this queue."""

    def __init__(self, kind: QueueErrorKind, detail: str = "") -> None:
        super().__init__(f"{kind.value}{': ' + detail if detail else ''}")
        self.kind = kind
        self.detail = detail


@dataclass(frozen=True)
class Segment:
    """One guest buffer of a chain."""

    addr: int
    length: int


@dataclass(frozen=True)
class DescriptorChain:
    """A validated chain: readable segments first, then writable ones."""

    head: int
    readable: tuple[Segment, ...]
    writable: tuple[Segment, ...]

    @property
    def readable_len(self) -> int:
        return sum(s.length for s in self.readable)

    @property
    def writable_len(self) -> int:
        return sum(s.length for s in self.writable)


@dataclass
class QueueState:
    """Driver-programmed configuration plus the device's ring positions."""

    max_size: int
    size: int = 0
    ready: bool = False
    desc_table: int = 0
    avail_ring: int = 0
    used_ring: int = 0
    next_avail: int = 0
    next_used: int = 0
    signalled_used: int | None = None


def _probe(mem: GuestMemoryAccess, addr: int, length: int) -> None:
    """Check that ``[addr, addr + length)`` starts and ends inside guest memory."""
    if length == 0:
        return
    if addr < 0 or addr + length > 1 << 64:
        raise QueueError(QueueErrorKind.BAD_ADDRESS, f"{addr:#x}+{length:#x}")
    try:
        mem.read(addr, 1)
        mem.read(addr + length - 1, 1)
    except GuestMemoryError as e:
        raise QueueError(QueueErrorKind.BAD_ADDRESS, f"{addr:#x}+{length:#x}") from e


class SplitQueue:
    """One split virtqueue as the device sees it.

    The transport writes :attr:`size`, :attr:`desc_table`, :attr:`avail_ring`,
    :attr:`used_ring` and :attr:`ready`; the device calls :meth:`pop`, :meth:`add_used` and
    :meth:`needs_interrupt`. Ring indices are free-running u16s.

    :param max_size: the QueueNumMax this queue offers (a power of 2, <= 32768).
    """

    def __init__(self, max_size: int) -> None:
        if not 0 < max_size <= MAX_QUEUE_SIZE or max_size & (max_size - 1):
            raise ValueError(f"queue max size {max_size} is not a power of 2 <= 32768")
        self.max_size = max_size
        #: Negotiated VIRTIO_F_EVENT_IDX / VIRTIO_F_INDIRECT_DESC (set at activation).
        self.event_idx = False
        self.indirect = False
        self.reset()

    def reset(self) -> None:
        """Forget the driver's configuration (device reset)."""
        self.size = 0
        self.ready = False
        self.desc_table = 0
        self.avail_ring = 0
        self.used_ring = 0
        self.next_avail = 0
        self.next_used = 0
        self._signalled_used: int | None = None

    def state(self) -> QueueState:
        """Snapshot configuration and ring positions."""
        return QueueState(
            self.max_size, self.size, self.ready, self.desc_table, self.avail_ring,
            self.used_ring, self.next_avail, self.next_used, self._signalled_used,
        )  # fmt: skip

    def restore(self, s: QueueState) -> None:
        """Load a :meth:`state` snapshot (max_size must match)."""
        if s.max_size != self.max_size:
            raise ValueError(f"queue max size {s.max_size} != {self.max_size}")
        self.size, self.ready = s.size, s.ready
        self.desc_table, self.avail_ring, self.used_ring = s.desc_table, s.avail_ring, s.used_ring
        self.next_avail, self.next_used = s.next_avail & 0xFFFF, s.next_used & 0xFFFF
        self._signalled_used = s.signalled_used

    # -- validation ------------------------------------------------------------------------

    def validate(self, mem: GuestMemoryAccess) -> None:
        """Check size, alignment (§2.7: 16/2/4) and that each ring lies in guest memory."""
        n = self.size
        if not 0 < n <= self.max_size or n & (n - 1):
            raise QueueError(QueueErrorKind.BAD_CONFIG, f"size {n} (max {self.max_size})")
        if self.desc_table % 16 or self.avail_ring % 2 or self.used_ring % 4:
            raise QueueError(QueueErrorKind.BAD_CONFIG, "misaligned ring")
        try:
            _probe(mem, self.desc_table, DESC_SIZE * n)
            _probe(mem, self.avail_ring, RING_HEADER + 2 * n + 2)
            _probe(mem, self.used_ring, RING_HEADER + USED_ELEM_SIZE * n + 2)
        except QueueError as e:
            raise QueueError(QueueErrorKind.BAD_CONFIG, f"ring outside memory: {e}") from e

    # -- available ring --------------------------------------------------------------------

    def _avail_idx(self, mem: GuestMemoryAccess) -> int:
        idx: int = _U16.unpack(mem.read(self.avail_ring + 2, 2))[0]
        return idx

    def pending(self, mem: GuestMemoryAccess) -> int:
        """Chains the driver has made available and the device has not popped."""
        n = (self._avail_idx(mem) - self.next_avail) & 0xFFFF
        if n > self.size:
            # A hostile driver could otherwise make us walk 65535 stale entries (vm-virtio).
            raise QueueError(QueueErrorKind.AVAIL_JUMP, f"{n} pending with size {self.size}")
        return n

    def pop(self, mem: GuestMemoryAccess) -> DescriptorChain | None:
        """Take the next available chain, validated, or None if there is none."""
        if not self.pending(mem):
            return None
        slot = self.next_avail % self.size
        head = _U16.unpack(mem.read(self.avail_ring + RING_HEADER + 2 * slot, 2))[0]
        chain = self._walk(mem, head)
        self.next_avail = (self.next_avail + 1) & 0xFFFF
        if self.event_idx:
            # avail_event (§2.7.10): ask for a kick as soon as anything new arrives.
            avail_event = self.used_ring + RING_HEADER + USED_ELEM_SIZE * self.size
            mem.write(avail_event, _U16.pack(self.next_avail))
        return chain

    def _read_desc(self, mem: GuestMemoryAccess, table: int, i: int) -> tuple[int, int, int, int]:
        addr, length, flags, nxt = _DESC.unpack(mem.read(table + DESC_SIZE * i, DESC_SIZE))
        return addr, length, flags, nxt

    def _walk(self, mem: GuestMemoryAccess, head: int) -> DescriptorChain:
        if head >= self.size:
            raise QueueError(QueueErrorKind.BAD_HEAD, f"head {head} size {self.size}")
        readable: list[Segment] = []
        writable: list[Segment] = []
        table, count, idx = self.desc_table, self.size, head
        in_indirect = False
        total = 0
        ttl = count
        # Bounded: at most size direct steps plus at most size indirect ones.
        for _ in range(2 * self.size + 1):
            if ttl == 0:
                raise QueueError(QueueErrorKind.CHAIN_TOO_LONG, f"head {head}")
            ttl -= 1
            addr, length, flags, nxt = self._read_desc(mem, table, idx)
            if flags & VIRTQ_DESC_F_INDIRECT:
                table, count = self._enter_indirect(mem, addr, length, flags, in_indirect)
                idx, ttl, in_indirect = 0, count, True
                continue
            total += length
            if total > MAX_CHAIN_LEN:
                raise QueueError(QueueErrorKind.CHAIN_TOO_BIG, f"head {head}")
            _probe(mem, addr, length)
            if flags & VIRTQ_DESC_F_WRITE:
                writable.append(Segment(addr, length))
            elif writable:
                raise QueueError(QueueErrorKind.WRITE_BEFORE_READ, f"head {head}")
            else:
                readable.append(Segment(addr, length))
            if not flags & VIRTQ_DESC_F_NEXT:
                return DescriptorChain(head, tuple(readable), tuple(writable))
            if nxt >= count:
                raise QueueError(QueueErrorKind.BAD_NEXT, f"next {nxt} of {count}")
            idx = nxt
        raise QueueError(QueueErrorKind.CHAIN_TOO_LONG, f"head {head}")

    def _enter_indirect(
        self, mem: GuestMemoryAccess, addr: int, length: int, flags: int, nested: bool
    ) -> tuple[int, int]:
        """Validate an indirect descriptor (§2.7.5.3.1); return (table, entries)."""
        if not self.indirect:
            raise QueueError(QueueErrorKind.INDIRECT_NOT_NEGOTIATED)
        if nested:
            raise QueueError(QueueErrorKind.NESTED_INDIRECT)
        if flags & VIRTQ_DESC_F_NEXT:
            raise QueueError(QueueErrorKind.INDIRECT_WITH_NEXT)
        if length == 0 or length % DESC_SIZE or length // DESC_SIZE > self.size:
            raise QueueError(QueueErrorKind.BAD_INDIRECT_LEN, f"len {length}")
        _probe(mem, addr, length)
        return addr, length // DESC_SIZE

    # -- used ring ---------------------------------------------------------------------------

    def add_used(self, mem: GuestMemoryAccess, head: int, length: int) -> None:
        """Return chain ``head`` to the driver with ``length`` bytes written into it."""
        if head >= self.size:
            raise QueueError(QueueErrorKind.BAD_USED, f"head {head}")
        slot = self.next_used % self.size
        elem = self.used_ring + RING_HEADER + USED_ELEM_SIZE * slot
        mem.write(elem, _USED_ELEM.pack(head, length & 0xFFFFFFFF))
        self.next_used = (self.next_used + 1) & 0xFFFF
        # The element is written before the index that publishes it (x86 stores are ordered).
        mem.write(self.used_ring + 2, _U16.pack(self.next_used))

    def needs_interrupt(self, mem: GuestMemoryAccess) -> bool:
        """Whether used buffers added since the last call should be signalled (§2.7.7, §2.7.10)."""
        if not self.event_idx:
            flags = _U16.unpack(mem.read(self.avail_ring, 2))[0]
            return not flags & VIRTQ_AVAIL_F_NO_INTERRUPT
        new, old = self.next_used, self._signalled_used
        self._signalled_used = new
        if old is None:
            return True
        used_event_addr = self.avail_ring + RING_HEADER + 2 * self.size
        used_event = _U16.unpack(mem.read(used_event_addr, 2))[0]
        # vring_need_event(): signal if used_event lies in (old, new].
        return (new - used_event - 1) & 0xFFFF < (new - old) & 0xFFFF


def iter_readable(
    mem: GuestMemoryAccess, chain: DescriptorChain, limit: int, chunk: int = 1 << 16
) -> Iterator[bytes]:
    """Yield the chain's device-readable bytes in chunks, stopping after ``limit`` bytes."""
    left = limit
    for seg in chain.readable:
        off = 0
        while off < seg.length and left > 0:
            n = min(chunk, seg.length - off, left)
            try:
                yield mem.read(seg.addr + off, n)
            except GuestMemoryError as e:
                raise QueueError(QueueErrorKind.BAD_ADDRESS, f"{seg.addr + off:#x}") from e
            off += n
            left -= n


def write_writable(mem: GuestMemoryAccess, chain: DescriptorChain, data: bytes) -> int:
    """Scatter ``data`` into the chain's device-writable buffers; return the bytes written."""
    done = 0
    view = memoryview(data)
    for seg in chain.writable:
        if done >= len(data):
            break
        n = min(seg.length, len(data) - done)
        try:
            mem.write(seg.addr, bytes(view[done : done + n]))
        except GuestMemoryError as e:
            raise QueueError(QueueErrorKind.BAD_ADDRESS, f"{seg.addr:#x}") from e
        done += n
    return done
