"""Linux boot for the KVM engine: load the kernel, build the command line and the zero page.

Pure code over :class:`vmm_proc.mem.access.GuestMemoryAccess`; nothing here touches a vCPU.

- :mod:`.loader`: ``load_kernel(mem, image, low_ram_end) -> LoadResult`` (ELF vmlinux or
  bzImage; also ``load_elf``/``load_bzimage``), ``load_initrd(mem, result, data,
  low_ram_end) -> InitrdPlacement``, ``place_initrd(size, result, low_ram_end)``;
  every failure is a ``LoaderError`` whose ``step`` names the check.
- :mod:`.cmdline`: ``Cmdline(capacity=2048)`` with ``insert(key, value)``/``insert_str(raw)``;
  ``CmdlineError.kind`` says why a piece was refused.
- :mod:`.params`: ``build_e820(ram_regions, acpi=(gpa, size))`` and
  ``write_boot_params(mem, result, cmdline, e820, initrd=..., rsdp_gpa=...) -> zero page gpa``.
- :mod:`.bootparam`: offsets and flags of struct boot_params / setup_header.

The command line must carry ``vmm_proc.acpi.fadt.REQUIRED_KERNEL_ARGS`` (``reboot=k``).

Typical use (addresses from :mod:`vmm_proc.arch.x86_64.layout`)::

    res = load_kernel(mem, image, low_ram_end)
    rd = load_initrd(mem, res, initrd, low_ram_end)
    zp = write_boot_params(mem, res, cmdline, build_e820(ram, acpi_area), initrd=rd, rsdp_gpa=rsdp)
    regs = boot_regs(res.entry_64, zp)
"""
