"""x86-64 boot state: guest physical layout, GDT, identity page tables, boot registers,
CPUID and MSRs.

- :mod:`.layout`: every fixed guest address the boot code uses (zero page, cmdline, GDT,
  page tables, ACPI area, virtio-mmio window, IOAPIC, ports) and ``ram_regions(mem_size)``.
- :mod:`.gdt`: ``write_gdt(mem) -> DTable``; ``boot_segments()``.
- :mod:`.paging`: ``write_identity_page_tables(mem, gib=4) -> cr3``.
- :mod:`.regs`: ``long_mode_sregs(base, gdt, cr3) -> Sregs``; ``boot_regs(entry, zero_page) -> Regs``.
- :mod:`.cpuid`: ``build_cpuid(supported, topology, cpu_index) -> list[CpuidEntry]``.
- :mod:`.msrs`: ``boot_msrs() -> list[tuple[int, int]]``.
"""
