"""The contract between a virtio transport and a virtio device model.

The transport (virtio-mmio here) owns registers, feature negotiation, queues' configuration
and interrupts; the device owns its config space and what buffers mean. Locking order:
transport lock -> device lock -> interrupt lock; a device's host-facing methods take only
its own lock and then signal through :class:`VirtioContext` (interrupt lock only).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

from vmm_proc.devices.virtio.queue import SplitQueue
from vmm_proc.mem.access import GuestMemoryAccess

__all__ = (
    "VIRTIO_F_EVENT_IDX",
    "VIRTIO_F_INDIRECT_DESC",
    "VIRTIO_F_VERSION_1",
    "VirtioContext",
    "VirtioDevice",
)

# Transport-level feature bits (VIRTIO 1.2 §6).
VIRTIO_F_INDIRECT_DESC = 1 << 28
VIRTIO_F_EVENT_IDX = 1 << 29
VIRTIO_F_VERSION_1 = 1 << 32


@dataclass(frozen=True)
class VirtioContext:
    """What an activated device may use.

    :ivar mem: guest memory.
    :ivar queues: the transport's queues, indexed as the device numbers them.
    :ivar features: the negotiated feature bits.
    :ivar signal_used: raise the used-buffer interrupt.
    :ivar signal_config: bump config generation and raise the config-change interrupt.
    :ivar fail: declare the device broken (DEVICE_NEEDS_RESET) with a reason.
    :ivar broken: whether the device is broken; host-side work must then leave queues alone.
    """

    mem: GuestMemoryAccess
    queues: Sequence[SplitQueue]
    features: int
    signal_used: Callable[[], None]
    signal_config: Callable[[], None]
    fail: Callable[[str], None]
    broken: Callable[[], bool]

    def signal_if_needed(self, index: int) -> None:
        """Signal used buffers of queue ``index`` unless the driver suppressed it."""
        if self.queues[index].needs_interrupt(self.mem):
            self.signal_used()


class VirtioDevice(Protocol):
    """A device behind a virtio transport.

    ``process_queue`` may raise ``QueueError`` or ``GuestMemoryError``; the transport
    catches both and marks the device as needing reset.
    """

    device_id: int
    num_queues: int
    queue_max_size: int

    def features(self) -> int:
        """Device-specific feature bits offered (the transport adds its own)."""
        ...

    def read_config(self, offset: int, size: int) -> bytes:
        """Read ``size`` bytes of config space (zeros outside it)."""
        ...

    def write_config(self, offset: int, data: bytes) -> None: ...

    def activate(self, ctx: VirtioContext) -> None:
        """The driver set DRIVER_OK: queues are valid from now on."""
        ...

    def process_queue(self, index: int) -> None:
        """The driver notified queue ``index``."""
        ...

    def reset(self) -> None:
        """Device reset: drop ``ctx`` and per-driver state."""
        ...
