"""DSDT: virtio-mmio transports, legacy UARTs and the S5 sleep package, in AML.

virtio-mmio devices use the _HID Linux's virtio_mmio driver matches ("LNRO0005",
drivers/virtio/virtio_mmio.c) with a Memory32Fixed window and an edge, active-high
Interrupt (the KVM engine signals them through irqfd, which is edge-like).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from vmm_proc.acpi import aml
from vmm_proc.acpi.sdt import table
from vmm_proc.arch.x86_64.layout import IOAPIC_PINS, S5_SLEEP_TYPE

__all__ = ("VirtioMmioDevice", "build_dsdt")

DSDT_REVISION = 2  # 64-bit AML integers
VIRTIO_MMIO_HID = "LNRO0005"
UART_HID = "PNP0501"
UART_PORTS = 8


@dataclass(frozen=True)
class VirtioMmioDevice:
    """One virtio-mmio transport: register window ``[base, base + size)`` and its GSI."""

    base: int
    size: int
    gsi: int

    def __post_init__(self) -> None:
        if self.base < 0 or self.size <= 0 or self.base + self.size > 1 << 32:
            raise ValueError(
                f"virtio-mmio window {self.base:#x}+{self.size:#x} must lie below 4 GiB"
            )
        if not 0 <= self.gsi < IOAPIC_PINS:
            raise ValueError(f"virtio-mmio GSI {self.gsi} not an IOAPIC pin (0..{IOAPIC_PINS - 1})")


def _virtio(index: int, dev: VirtioMmioDevice) -> bytes:
    crs = aml.resource_template(aml.memory32_fixed(dev.base, dev.size), aml.interrupt(dev.gsi))
    return aml.device(
        f"VR{index:02X}",
        aml.name("_HID", aml.string(VIRTIO_MMIO_HID)),
        aml.name("_UID", aml.integer(index)),
        aml.name("_CRS", crs),
    )


def _uart(index: int, port: int, irq: int) -> bytes:
    crs = aml.resource_template(aml.io_port(port, UART_PORTS), aml.irq_no_flags(irq))
    return aml.device(
        f"COM{index + 1}",
        aml.name("_HID", aml.eisa_id(UART_HID)),
        aml.name("_UID", aml.integer(index + 1)),
        aml.name("_CRS", crs),
    )


def build_dsdt(
    virtio_devices: Sequence[VirtioMmioDevice], serial_ports: Sequence[tuple[int, int]] = ()
) -> bytes:
    """The DSDT.

    :param virtio_devices: at most 256, named ``\\_SB.VR00``.. with _UID = their index.
    :param serial_ports: ``(port, isa_irq)`` of 16550 UARTs, named COM1..COM9.
    """
    if len(virtio_devices) > 256 or len(serial_ports) > 9:
        raise ValueError("DSDT: at most 256 virtio-mmio devices and 9 UARTs")
    windows = sorted((d.base, d.base + d.size) for d in virtio_devices)
    for (_, end), (start, _) in zip(windows, windows[1:], strict=False):
        if start < end:
            raise ValueError(f"DSDT: virtio-mmio windows overlap at {start:#x}")
    sb = [_uart(i, port, irq) for i, (port, irq) in enumerate(serial_ports)]
    sb += [_virtio(i, d) for i, d in enumerate(virtio_devices)]
    s5 = aml.name("_S5", aml.package(*(aml.integer(v) for v in (S5_SLEEP_TYPE, 0, 0, 0))))
    return table(b"DSDT", DSDT_REVISION, aml.scope("\\_SB", *sb) + s5)
