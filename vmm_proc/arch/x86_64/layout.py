"""The guest physical memory map the x86-64 boot code writes into, as named constants.

Everything the boot code places lives below 1 MiB (the kernel reserves that range for
itself) except the kernel at 1 MiB/16 MiB and the initrd at the top of low RAM. The
MMIO hole [MMIO32_START, 4 GiB) holds the virtio-mmio window, the IOAPIC and the LAPIC;
RAM that does not fit below it continues at 4 GiB (see :func:`ram_regions`).

::

    0x000500  GDT (BOOT_GDT_ADDR, 64 bytes)          0x000580  TSS (104 bytes)
    0x007000  zero page (struct boot_params)        0x008ff0  initial stack top
    0x009000  PML4   0x00a000 PDPT   0x00b000..0x01b000 page directories (2 MiB pages)
    0x020000  kernel command line (4 KiB)
    0x09fc00  EBDA (reserved in e820)               0x0e0000  ACPI tables (128 KiB)
    0x100000  bzImage protected-mode code (an ELF vmlinux loads at its p_paddr)
    0xd0000000 virtio-mmio window, one 4 KiB slot per device
    0xfec00000 IOAPIC                               0xfee00000 local APIC
"""

from __future__ import annotations

__all__ = (
    "ACPI_TABLES_ADDR",
    "ACPI_TABLES_SIZE",
    "BOOT_GDT_ADDR",
    "BOOT_STACK_TOP",
    "BOOT_TSS_ADDR",
    "CMDLINE_ADDR",
    "CMDLINE_MAX_SIZE",
    "COM1",
    "COM2",
    "EBDA_START",
    "HIGH_MEMORY_START",
    "IOAPIC_ADDR",
    "IOAPIC_PINS",
    "LAPIC_ADDR",
    "MMIO32_START",
    "PD_ADDR",
    "PDPT_ADDR",
    "PML4_ADDR",
    "MAX_IDENTITY_GIB",
    "RESET_PORT",
    "RESET_VALUE",
    "SLEEP_CONTROL_PORT",
    "SLEEP_STATUS_PORT",
    "S5_SLEEP_CONTROL_VALUE",
    "VIRTIO_GSIS",
    "VIRTIO_MMIO_BASE",
    "VIRTIO_MMIO_SLOT_SIZE",
    "ZERO_PAGE_ADDR",
    "FOUR_GIB",
    "ram_regions",
    "virtio_mmio_slot",
)

GIB = 1 << 30
FOUR_GIB = 4 * GIB

# --- low memory (below 1 MiB) ---
BOOT_GDT_ADDR = 0x500
BOOT_GDT_MAX_SIZE = 0x40
BOOT_TSS_ADDR = 0x580
ZERO_PAGE_ADDR = 0x7000
BOOT_STACK_TOP = 0x8FF0  # 16-byte aligned, inside the free page 0x8000
PML4_ADDR = 0x9000
PDPT_ADDR = 0xA000
PD_ADDR = 0xB000  # one page directory per identity-mapped GiB
MAX_IDENTITY_GIB = 16  # PDs end at 0x1b000, below the command line
CMDLINE_ADDR = 0x20000
CMDLINE_MAX_SIZE = 0x1000
EBDA_START = 0x9FC00
LOW_RAM_HOLE_END = 0x100000  # VGA + BIOS area [EBDA_START, 1 MiB) is not RAM in e820
ACPI_TABLES_ADDR = 0xE0000  # inside the range Linux scans for "RSD PTR " as a fallback
ACPI_TABLES_SIZE = 0x20000
HIGH_MEMORY_START = 0x100000  # bzImage protected-mode kernel (boot.rst "code32_start")

# --- the 32-bit MMIO hole ---
MMIO32_START = 0xC000_0000
VIRTIO_MMIO_BASE = 0xD000_0000
VIRTIO_MMIO_SLOT_SIZE = 0x1000
IOAPIC_ADDR = 0xFEC0_0000
IOAPIC_PINS = 24  # KVM's in-kernel IOAPIC
LAPIC_ADDR = 0xFEE0_0000

# GSIs for virtio-mmio devices: IOAPIC pins above the ISA lines the boot code uses
# (0/2 timer, 3/4 COM2/COM1) and without 8 (RTC) and 9 (conventional SCI).
VIRTIO_GSIS: tuple[int, ...] = (5, 6, 7, *range(10, IOAPIC_PINS))

# --- I/O ports the ACPI tables point the guest at ---
COM1 = (0x3F8, 4)  # (port base, ISA IRQ)
COM2 = (0x2F8, 3)
# FADT reset register: the i8042 "pulse reset line" command, so the ACPI reboot path and
# Linux's keyboard-controller fallback (reboot=k) reach the same port write.
RESET_PORT = 0x64
RESET_VALUE = 0xFE
# Hardware-reduced ACPI sleep registers (ACPI 6.5 section 4.8.3.7). Poweroff writes
# SLP_TYPx(5) << 2 | SLP_EN (1 << 5) to the control port.
SLEEP_CONTROL_PORT = 0x600
SLEEP_STATUS_PORT = 0x601
S5_SLEEP_TYPE = 5
S5_SLEEP_CONTROL_VALUE = (S5_SLEEP_TYPE << 2) | 0x20


def ram_regions(mem_size: int) -> list[tuple[int, int]]:
    """Split ``mem_size`` bytes of RAM around the MMIO hole.

    >>> ram_regions(512 << 20)
    [(0, 536870912)]

    :param mem_size: guest RAM in bytes (> 0).
    :return: ``[(gpa, size), ...]`` from RAM at 0, continuing at 4 GiB past MMIO32_START.
    """
    if mem_size <= 0:
        raise ValueError(f"guest memory size must be positive, got {mem_size}")
    low = min(mem_size, MMIO32_START)
    regions = [(0, low)]
    if mem_size > low:
        regions.append((FOUR_GIB, mem_size - low))
    return regions


def virtio_mmio_slot(index: int) -> tuple[int, int, int]:
    """The window and GSI of the ``index``-th virtio-mmio device.

    :return: ``(base gpa, size, gsi)``.
    """
    if not 0 <= index < len(VIRTIO_GSIS):
        raise ValueError(f"virtio-mmio slot {index} out of range 0..{len(VIRTIO_GSIS) - 1}")
    return (
        VIRTIO_MMIO_BASE + index * VIRTIO_MMIO_SLOT_SIZE,
        VIRTIO_MMIO_SLOT_SIZE,
        VIRTIO_GSIS[index],
    )
