"""The saved state of every device model of one VM (what ``DeviceManager.state()`` returns)."""

from __future__ import annotations

from dataclasses import dataclass, field

from vmm_proc.devices.i8042 import I8042State
from vmm_proc.devices.serial import SerialState
from vmm_proc.devices.virtio.console import ConsoleState
from vmm_proc.devices.virtio.mmio import MmioState

__all__ = ("DevicesState",)


@dataclass
class DevicesState:
    """UARTs by stream name, the i8042, and the virtio console with its mmio transport.

    The ACPI sleep registers keep no state; eventfds and bus ranges are wiring, rebuilt.
    """

    uarts: dict[str, SerialState] = field(default_factory=dict)
    i8042: I8042State | None = None
    console: ConsoleState | None = None
    console_transport: MmioState | None = None
