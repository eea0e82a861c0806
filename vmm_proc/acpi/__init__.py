"""ACPI tables for the KVM engine's guests (hardware-reduced ACPI, x86-64).

- :func:`vmm_proc.acpi.build.build_acpi_tables` ``(topology, memory_regions,
  virtio_devices, place_at_gpa=layout.ACPI_TABLES_ADDR) -> AcpiTables``;
  ``AcpiTables.write(mem) -> rsdp_gpa`` copies them into guest memory. ``virtio_devices``
  are ``(base, size, gsi)`` triples or :class:`~vmm_proc.acpi.dsdt.VirtioMmioDevice`.
- Tables: RSDP v2 -> XSDT -> FADT (HW_REDUCED_ACPI; reset = port 0x64 <- 0xFE; sleep
  control/status = ports 0x600/0x601, poweroff writes 0x34), DSDT (``\\_SB.VRnn``
  "LNRO0005" virtio-mmio, ``\\_SB.COMn`` PNP0501, ``\\_S5``), MADT (LAPIC/x2APIC per CPU,
  IOAPIC at 0xFEC00000 GSI base 0, IRQ0 -> GSI2), and SRAT + SLIT when nodes > 1.
- :mod:`.aml`: the AML encoder; :mod:`.sdt`: header/checksum/GAS/RSDP/XSDT.

Put ``fadt.REQUIRED_KERNEL_ARGS`` (``reboot=k``) on the kernel command line: with
HW-reduced ACPI and no EFI, Linux's default reboot ends in a real-mode BIOS jump.
Pass ``AcpiTables.rsdp_gpa`` to the zero page (boot_params.acpi_rsdp_addr) and mark
``[area_gpa, area_end)`` as E820_ACPI (``build_e820(ram, acpi=(gpa, size))``).
"""
