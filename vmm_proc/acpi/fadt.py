"""FADT for a hardware-reduced ACPI platform (ACPI 6.5 section 5.2.9, revision 6).

With HW_REDUCED_ACPI Linux needs no PM timer, PM1 or GPE blocks and no SCI
(arch/x86/kernel/acpi/boot.c skips SCI setup; acpi_reduced_hw_init() also drops the legacy
PIC and the PIT timer init). What remains:

- reset register: I/O port 0x64, value 0xFE (layout.RESET_PORT/RESET_VALUE), the same
  write Linux's keyboard-controller fallback reboot does;
- sleep control/status registers at ports 0x600/0x601 (layout.SLEEP_*_PORT): with the
  DSDT's ``\\_S5`` package, poweroff writes ``5 << 2 | SLP_EN`` = 0x34 to 0x600. Linux
  registers ACPI poweroff on reduced hardware only if both registers are present.
- IA-PC boot flags: no VGA, no CMOS RTC, no 8042 (so Linux probes none of them).

Pass :data:`REQUIRED_KERNEL_ARGS` on the command line: on a HW-reduced, non-EFI machine
Linux defaults to an EFI reboot that falls back to a real-mode BIOS jump (reboot.c
reboot_init(), efi_reboot_required()), which hangs; ``reboot=k`` writes 0xFE to port 0x64.
"""

from __future__ import annotations

import struct

from vmm_proc.acpi.sdt import gas_io, table
from vmm_proc.arch.x86_64.layout import (
    RESET_PORT,
    RESET_VALUE,
    SLEEP_CONTROL_PORT,
    SLEEP_STATUS_PORT,
)

__all__ = ("FADT_SIZE", "REQUIRED_KERNEL_ARGS", "build_fadt")

REQUIRED_KERNEL_ARGS = ("reboot=k",)

FADT_REVISION, FADT_MINOR = 6, 3  # ACPI 6.3 layout (276 bytes)
FADT_SIZE = 276
FLAG_WBINVD = 1 << 0
FLAG_RESET_REG_SUP = 1 << 10
FLAG_HW_REDUCED_ACPI = 1 << 20
BOOT_ARCH_VGA_NOT_PRESENT = 1 << 2
BOOT_ARCH_CMOS_RTC_NOT_PRESENT = 1 << 5
DEFAULT_BOOT_ARCH = BOOT_ARCH_VGA_NOT_PRESENT | BOOT_ARCH_CMOS_RTC_NOT_PRESENT
# Body offsets (table offset - 36).
_DSDT, _BOOT_ARCH, _FLAGS, _RESET_REG, _RESET_VALUE = 4, 73, 76, 80, 92
_MINOR, _X_DSDT, _SLEEP_CONTROL, _SLEEP_STATUS, _HV_VENDOR = 95, 104, 208, 220, 232


def build_fadt(dsdt_gpa: int, boot_arch: int = DEFAULT_BOOT_ARCH) -> bytes:
    """The FADT pointing at the DSDT at ``dsdt_gpa``.

    :param boot_arch: IAPC_BOOT_ARCH flags; the default says no VGA, no CMOS RTC, no 8042.
    """
    body = bytearray(FADT_SIZE - 36)
    struct.pack_into("<I", body, _DSDT, dsdt_gpa if dsdt_gpa < 1 << 32 else 0)
    struct.pack_into("<H", body, _BOOT_ARCH, boot_arch)
    struct.pack_into("<I", body, _FLAGS, FLAG_WBINVD | FLAG_RESET_REG_SUP | FLAG_HW_REDUCED_ACPI)
    body[_RESET_REG : _RESET_REG + 12] = gas_io(RESET_PORT)
    body[_RESET_VALUE] = RESET_VALUE
    body[_MINOR] = FADT_MINOR
    struct.pack_into("<Q", body, _X_DSDT, dsdt_gpa)
    body[_SLEEP_CONTROL : _SLEEP_CONTROL + 12] = gas_io(SLEEP_CONTROL_PORT)
    body[_SLEEP_STATUS : _SLEEP_STATUS + 12] = gas_io(SLEEP_STATUS_PORT)
    body[_HV_VENDOR : _HV_VENDOR + 8] = b"SCHEDLAB"
    return table(b"FACP", FADT_REVISION, bytes(body))
