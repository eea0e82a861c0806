"""The hardware-reduced ACPI sleep control/status registers: how the guest powers off.

Linux's acpi_power_off() on a hardware-reduced FADT writes ``SLP_TYP << 2 | SLP_EN`` to the
sleep control register (ACPI 6.5 section 4.8.3.7); S5 there means power off.
"""

from __future__ import annotations

from collections.abc import Callable

__all__ = ("SleepControl", "SLP_EN", "PORT_LENGTH")

PORT_LENGTH = 2  # offset 0: control, offset 1: status
SLP_EN = 0x20
_SLP_TYP_SHIFT, _SLP_TYP_MASK = 2, 0x7
_S5 = 5


class SleepControl:
    """Calls ``power_off()`` when the guest enters S5; every other access is inert.

    :param power_off: called from the vCPU thread that wrote the register.
    """

    def __init__(self, power_off: Callable[[], None]) -> None:
        self._power_off = power_off

    def read(self, offset: int, size: int) -> bytes:
        return bytes(max(0, min(size, 8)))  # status: no wake event pending

    def write(self, offset: int, data: bytes) -> None:
        if offset != 0 or len(data) != 1:
            return
        value = data[0]
        if value & SLP_EN and (value >> _SLP_TYP_SHIFT) & _SLP_TYP_MASK == _S5:
            self._power_off()
