"""The virtio-mmio transport, version 2 (VIRTIO 1.2 §4.2.2), around one device model.

Interrupts: ``irq()`` is called every time a used-buffer or config-change bit is signalled,
not only when InterruptStatus goes from 0 to non-zero. With an irqfd (an edge per call) no
wakeup can be lost: Linux's vm_interrupt() reads and ACKs the status, then scans every
queue, and a signal raised after that read is a new edge. An extra edge is harmless.

``notify(index)`` is the QueueNotify action on its own, so an ioeventfd thread can call it.
A broken driver (bad ring, bad address) sets DEVICE_NEEDS_RESET, raises a config-change
interrupt and stops all queue processing until the driver writes 0 to Status.
"""

from __future__ import annotations

import logging
import struct
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

from vmm_proc.devices.log_budget import LogBudget
from vmm_proc.devices.virtio.device import (
    VIRTIO_F_EVENT_IDX,
    VIRTIO_F_INDIRECT_DESC,
    VIRTIO_F_VERSION_1,
    VirtioContext,
    VirtioDevice,
)
from vmm_proc.devices.virtio.queue import QueueError, QueueState, SplitQueue
from vmm_proc.mem.access import GuestMemoryAccess, GuestMemoryError

__all__ = ("MMIO_SIZE", "MmioMetrics", "MmioState", "VirtioMmio")

log = logging.getLogger(__name__)

#: Size of one device's window: registers up to 0x100, then config space.
MMIO_SIZE = 0x200

MAGIC_VALUE = 0x000
VERSION = 0x004
DEVICE_ID = 0x008
VENDOR_ID = 0x00C
DEVICE_FEATURES = 0x010
DEVICE_FEATURES_SEL = 0x014
DRIVER_FEATURES = 0x020
DRIVER_FEATURES_SEL = 0x024
QUEUE_SEL = 0x030
QUEUE_NUM_MAX = 0x034
QUEUE_NUM = 0x038
QUEUE_READY = 0x044
QUEUE_NOTIFY = 0x050
INTERRUPT_STATUS = 0x060
INTERRUPT_ACK = 0x064
STATUS = 0x070
QUEUE_DESC_LOW = 0x080
QUEUE_DESC_HIGH = 0x084
QUEUE_DRIVER_LOW = 0x090
QUEUE_DRIVER_HIGH = 0x094
QUEUE_DEVICE_LOW = 0x0A0
QUEUE_DEVICE_HIGH = 0x0A4
SHM_SEL = 0x0AC
SHM_LEN_LOW = 0x0B0
SHM_LEN_HIGH = 0x0B4
SHM_BASE_LOW = 0x0B8
SHM_BASE_HIGH = 0x0BC
CONFIG_GENERATION = 0x0FC
CONFIG = 0x100

MAGIC = 0x74726976  # "virt"
MMIO_VERSION = 2
VENDOR = 0x4C424453  # "SDBL", any value is fine; ours spells schedlab-ish

STATUS_ACKNOWLEDGE = 1
STATUS_DRIVER = 2
STATUS_DRIVER_OK = 4
STATUS_FEATURES_OK = 8
STATUS_DEVICE_NEEDS_RESET = 64
STATUS_FAILED = 128

INT_USED_RING = 1
INT_CONFIG = 2

_U32 = struct.Struct("<I")

# Queue address registers: offset -> (attribute, high half?)
_QUEUE_ADDR = {
    QUEUE_DESC_LOW: ("desc_table", False),
    QUEUE_DESC_HIGH: ("desc_table", True),
    QUEUE_DRIVER_LOW: ("avail_ring", False),
    QUEUE_DRIVER_HIGH: ("avail_ring", True),
    QUEUE_DEVICE_LOW: ("used_ring", False),
    QUEUE_DEVICE_HIGH: ("used_ring", True),
}


class MmioMetrics(Protocol):
    """Event hooks; implement only what you count."""

    def bad_access(self) -> None: ...

    def needs_reset(self, reason: str) -> None: ...

    def notify_ignored(self) -> None: ...

    def interrupt(self) -> None: ...


class NoMmioMetrics:
    """The no-op default."""

    def bad_access(self) -> None:
        pass

    def needs_reset(self, reason: str) -> None:
        pass

    def notify_ignored(self) -> None:
        pass

    def interrupt(self) -> None:
        pass


@dataclass
class MmioState:
    """Transport registers and queue configuration (the device keeps its own state)."""

    status: int = 0
    device_features_sel: int = 0
    driver_features_sel: int = 0
    driver_features: int = 0
    queue_sel: int = 0
    isr: int = 0
    config_generation: int = 0
    broken: bool = False
    queues: list[QueueState] = field(default_factory=list)


class VirtioMmio:
    """A virtio-mmio v2 register window for ``device``.

    :param device: the device model.
    :param mem: guest memory, handed to the device at activation.
    :param irq: called once per signalled interrupt (wire to an irqfd); it may run with the
        transport's locks held, so it must not call back into the transport.
    :param indirect_desc: offer VIRTIO_F_INDIRECT_DESC.
    :param event_idx: offer VIRTIO_F_EVENT_IDX.
    """

    def __init__(
        self,
        device: VirtioDevice,
        mem: GuestMemoryAccess,
        irq: Callable[[], None],
        *,
        indirect_desc: bool = True,
        event_idx: bool = False,
        metrics: MmioMetrics | None = None,
    ) -> None:
        self.device = device
        self.mem = mem
        self._irq = irq
        self.metrics: MmioMetrics = metrics or NoMmioMetrics()
        self.offered = device.features() | VIRTIO_F_VERSION_1
        if indirect_desc:
            self.offered |= VIRTIO_F_INDIRECT_DESC
        if event_idx:
            self.offered |= VIRTIO_F_EVENT_IDX
        self.queues = [SplitQueue(device.queue_max_size) for _ in range(device.num_queues)]
        self._lock = threading.Lock()
        self._isr_lock = threading.Lock()
        self._log_budget = LogBudget()
        self._load(MmioState())

    def _load(self, s: MmioState) -> None:
        self._status = s.status & ~STATUS_DEVICE_NEEDS_RESET & 0xFF
        self._dev_sel = s.device_features_sel
        self._drv_sel = s.driver_features_sel
        self._driver_features = s.driver_features & self.offered
        self._queue_sel = s.queue_sel
        self._isr = s.isr & (INT_USED_RING | INT_CONFIG)
        self._generation = s.config_generation & 0xFFFFFFFF
        self._broken = s.broken

    # -- snapshots ---------------------------------------------------------------------------

    def state(self) -> MmioState:
        """Snapshot the transport (take the device's own state separately)."""
        with self._lock, self._isr_lock:
            return MmioState(
                self._status, self._dev_sel, self._drv_sel, self._driver_features,
                self._queue_sel, self._isr, self._generation, self._broken,
                [q.state() for q in self.queues],
            )  # fmt: skip

    @classmethod
    def from_state(
        cls,
        state: MmioState,
        device: VirtioDevice,
        mem: GuestMemoryAccess,
        irq: Callable[[], None],
        **kwargs: object,
    ) -> VirtioMmio:
        """Rebuild the transport; re-activates ``device`` (already restored) if DRIVER_OK."""
        t = cls(device, mem, irq, **kwargs)  # type: ignore[arg-type]
        t._load(state)
        for q, qs in zip(t.queues, state.queues, strict=False):
            q.restore(qs)
        if t._status & STATUS_DRIVER_OK and not t._broken:
            t._configure_queues()
            device.activate(t._context())
        return t

    # -- guest accesses ------------------------------------------------------------------------

    def read(self, offset: int, size: int) -> bytes:
        """Guest read. Registers are 32-bit aligned words; config space takes 1/2/4/8."""
        if offset >= CONFIG:
            if size not in (1, 2, 4, 8):
                self.metrics.bad_access()
                return bytes(max(0, min(size, 8)))
            return self.device.read_config(offset - CONFIG, size)
        if size != 4 or offset % 4 or offset < 0:
            self.metrics.bad_access()
            return bytes(max(0, min(size, 8)))
        with self._lock:
            return _U32.pack(self._read_reg(offset) & 0xFFFFFFFF)

    def write(self, offset: int, data: bytes) -> None:
        """Guest write; malformed accesses are counted and ignored."""
        if offset >= CONFIG:
            if len(data) not in (1, 2, 4, 8):
                self.metrics.bad_access()
                return
            self.device.write_config(offset - CONFIG, data)
            return
        if len(data) != 4 or offset % 4 or offset < 0:
            self.metrics.bad_access()
            return
        value = _U32.unpack(data)[0]
        if offset == QUEUE_NOTIFY:
            self.notify(value & 0xFFFF)
            return
        with self._lock:
            self._write_reg(offset, value)

    def notify(self, index: int) -> None:
        """Process queue ``index`` (QueueNotify, or an ioeventfd firing)."""
        with self._lock:
            if (
                self._broken
                or not self._status & STATUS_DRIVER_OK
                or not 0 <= index < len(self.queues)
                or not self.queues[index].ready
            ):
                self.metrics.notify_ignored()
                return
            self._process(index)

    def _process(self, index: int) -> None:
        try:
            self.device.process_queue(index)
        except (QueueError, GuestMemoryError) as e:
            self._fail(f"queue {index}: {e}")

    # -- registers -------------------------------------------------------------------------------

    def _read_reg(self, off: int) -> int:
        q = self._selected()
        if off == MAGIC_VALUE:
            return MAGIC
        if off == VERSION:
            return MMIO_VERSION
        if off == DEVICE_ID:
            return self.device.device_id
        if off == VENDOR_ID:
            return VENDOR
        if off == DEVICE_FEATURES:
            return self.offered >> (32 * self._dev_sel) if self._dev_sel < 2 else 0
        if off == QUEUE_NUM_MAX:
            return q.max_size if q is not None else 0  # 0 tells Linux the queue doesn't exist
        if off == QUEUE_NUM:
            return q.size if q is not None else 0
        if off == QUEUE_READY:
            return int(q.ready) if q is not None else 0
        if off == INTERRUPT_STATUS:
            with self._isr_lock:
                return self._isr
        if off == STATUS:
            return self._status | (STATUS_DEVICE_NEEDS_RESET if self._broken else 0)
        if off in _QUEUE_ADDR and q is not None:
            attr, high = _QUEUE_ADDR[off]
            value: int = getattr(q, attr)
            return value >> 32 if high else value
        if off in (SHM_LEN_LOW, SHM_LEN_HIGH, SHM_BASE_LOW, SHM_BASE_HIGH):
            return 0xFFFFFFFF  # §4.2.2: no shared memory region has length -1
        if off == CONFIG_GENERATION:
            return self._generation
        return 0

    def _write_reg(self, off: int, value: int) -> None:
        if off == DEVICE_FEATURES_SEL:
            self._dev_sel = value
        elif off == DRIVER_FEATURES_SEL:
            self._drv_sel = value
        elif off == DRIVER_FEATURES:
            self._write_driver_features(value)
        elif off == QUEUE_SEL:
            self._queue_sel = value
        elif off == INTERRUPT_ACK:
            with self._isr_lock:
                self._isr &= ~value
        elif off == STATUS:
            self._write_status(value)
        elif off in (QUEUE_NUM, QUEUE_READY) or off in _QUEUE_ADDR:
            self._write_queue(off, value)
        elif off != SHM_SEL:
            self.metrics.bad_access()  # read-only or reserved register

    def _write_driver_features(self, value: int) -> None:
        if self._status & STATUS_FEATURES_OK or self._drv_sel > 1:
            self.metrics.bad_access()
            return
        shift = 32 * self._drv_sel
        feats = self._driver_features & ~(0xFFFFFFFF << shift)
        self._driver_features = feats | (value << shift)

    def _selected(self) -> SplitQueue | None:
        return self.queues[self._queue_sel] if self._queue_sel < len(self.queues) else None

    def _write_queue(self, off: int, value: int) -> None:
        q = self._selected()
        if q is None or (q.ready and off != QUEUE_READY):
            self.metrics.bad_access()  # §4.2.2.2: no queue changes while it is ready
            return
        if off == QUEUE_NUM:
            q.size = value
        elif off == QUEUE_READY:
            self._write_queue_ready(q, value)
        else:
            attr, high = _QUEUE_ADDR[off]
            cur: int = getattr(q, attr)
            if high:
                setattr(q, attr, (cur & 0xFFFFFFFF) | (value << 32))
            else:
                setattr(q, attr, (cur & ~0xFFFFFFFF) | value)

    def _write_queue_ready(self, q: SplitQueue, value: int) -> None:
        if not value & 1:
            q.ready = False
            return
        try:
            q.validate(self.mem)
        except QueueError as e:
            self._fail(f"queue {self._queue_sel}: {e}")
            return
        q.ready = True

    def _write_status(self, value: int) -> None:
        if value == 0:
            self._reset()
            return
        value = (value | self._status) & 0xFF & ~STATUS_DEVICE_NEEDS_RESET
        if value & STATUS_FEATURES_OK and not self._status & STATUS_FEATURES_OK:
            feats = self._driver_features
            if feats & ~self.offered or not feats & VIRTIO_F_VERSION_1:
                value &= ~STATUS_FEATURES_OK  # the driver reads it back and gives up
        if value & STATUS_DRIVER_OK and not self._status & STATUS_DRIVER_OK:
            if not value & STATUS_FEATURES_OK:
                self.metrics.bad_access()
                value &= ~STATUS_DRIVER_OK
            else:
                self._status = value
                self._activate()
                return
        self._status = value

    def _reset(self) -> None:
        self.device.reset()
        for q in self.queues:
            q.reset()
        with self._isr_lock:
            self._isr = 0
            self._broken = False
        self._status = 0
        self._dev_sel = self._drv_sel = self._queue_sel = 0
        self._driver_features = 0

    def _configure_queues(self) -> None:
        for q in self.queues:
            q.event_idx = bool(self._driver_features & VIRTIO_F_EVENT_IDX)
            q.indirect = bool(self._driver_features & VIRTIO_F_INDIRECT_DESC)

    def _activate(self) -> None:
        self._configure_queues()
        self.device.activate(self._context())
        for i, q in enumerate(self.queues):
            if q.ready and not self._broken:
                self._process(i)  # buffers made available before DRIVER_OK

    def _context(self) -> VirtioContext:
        return VirtioContext(
            mem=self.mem,
            queues=self.queues,
            features=self._driver_features,
            signal_used=lambda: self._signal(INT_USED_RING),
            signal_config=self._signal_config,
            fail=self._fail,
            broken=lambda: self._broken,
        )

    # -- interrupts and failure -----------------------------------------------------------------

    def _signal(self, bit: int) -> None:
        with self._isr_lock:
            self._isr |= bit
        self.metrics.interrupt()
        self._irq()

    def _signal_config(self) -> None:
        with self._isr_lock:
            self._generation = (self._generation + 1) & 0xFFFFFFFF
        self._signal(INT_CONFIG)

    def _fail(self, reason: str) -> None:
        """Set DEVICE_NEEDS_RESET (§2.1.2) and stop processing; tell the driver if it is live."""
        with self._isr_lock:
            if self._broken:
                return
            self._broken = True
        if self._log_budget.allow():
            quiet = " (further ones not logged)" if self._log_budget.exhausted_now else ""
            log.warning("virtio device %d needs reset: %s%s", self.device.device_id, reason, quiet)
        self.metrics.needs_reset(reason)
        if self._status & STATUS_DRIVER_OK:
            self._signal(INT_CONFIG)
