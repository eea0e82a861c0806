"""LinuxBoot: a Linux kernel, initrd, zero page, ACPI tables and the 64-bit entry state.

Direct 64-bit boot (Documentation/arch/x86/boot.rst, "64-bit BOOT PROTOCOL"): the BSP
starts in long mode at the kernel's 64-bit entry with rsi = zero page, [0, 4 GiB)
identity-mapped; APs are left to the kernel's INIT/SIPI through the in-kernel LAPIC.
"""

from __future__ import annotations

import os
import struct
from dataclasses import dataclass

from schedlab_shared.vm_config import VmConfig
from vmm_proc.acpi.build import build_acpi_tables
from vmm_proc.arch.x86_64.gdt import write_gdt
from vmm_proc.arch.x86_64.layout import (
    ACPI_TABLES_ADDR,
    ACPI_TABLES_SIZE,
    CMDLINE_ADDR,
    CMDLINE_MAX_SIZE,
    COM1,
    COM2,
    MMIO32_START,
    ram_regions,
)
from vmm_proc.arch.x86_64.msrs import boot_msrs
from vmm_proc.arch.x86_64.paging import write_identity_page_tables
from vmm_proc.arch.x86_64.regs import boot_regs, long_mode_sregs
from vmm_proc.boot.bootparam import HDR_SETUP_DATA
from vmm_proc.boot.cmdline import Cmdline
from vmm_proc.boot.loader import LoaderError, load_initrd, load_kernel
from vmm_proc.boot.params import build_e820, write_boot_params
from vmm_proc.engines.base import EngineError
from vmm_proc.engines.kvm.boot_plan import BootPlan, MmioDevice, VcpuEntry
from vmm_proc.mem.access import GuestMemoryAccess

__all__ = ("LinuxBoot", "ENGINE_CMDLINE", "add_rng_seed")

# What this machine needs on top of the orchestrator's line: no PCI bus exists (probing
# 0xcf8 only reads all-ones), and reboot pulses the i8042 reset line (port 0x64).
ENGINE_CMDLINE = ("pci=off", "reboot=k")
_IDENTITY_GIB = 4
# setup_data type SETUP_RNG_SEED (arch/x86/include/uapi/asm/bootparam.h), boot protocol
# 2.09+: without RDRAND a guest's CRNG is not ready when /init starts, and Python aborts
# in _Py_HashRandomization_Init before /dev is mounted. QEMU passes a seed the same way.
SETUP_RNG_SEED = 9
RNG_SEED_GPA = CMDLINE_ADDR + CMDLINE_MAX_SIZE  # the free page after the command line
_SETUP_DATA_PROTOCOL = 0x0209
_SETUP_HEADER = struct.Struct("<QII")  # struct setup_data: next, type, len


def _read(path: str, what: str) -> bytes:
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError as exc:
        raise EngineError(f"cannot read the {what} {path}: {exc.strerror}") from exc


def add_rng_seed(mem: GuestMemoryAccess, zero_page: int, size: int = 32) -> None:
    """Chain a SETUP_RNG_SEED node of ``size`` host-random bytes into the zero page."""
    (old,) = struct.unpack("<Q", mem.read(zero_page + HDR_SETUP_DATA, 8))
    seed = os.urandom(size)
    mem.write(RNG_SEED_GPA, _SETUP_HEADER.pack(old, SETUP_RNG_SEED, len(seed)) + seed)
    mem.write(zero_page + HDR_SETUP_DATA, struct.pack("<Q", RNG_SEED_GPA))


@dataclass(frozen=True)
class LinuxBoot:
    """Boot ``config.vmlinux`` (an ELF, preferred) or ``config.kernel`` (a bzImage)."""

    config: VmConfig

    def kernel_path(self) -> str:
        cfg = self.config
        return cfg.vmlinux if cfg.vmlinux and os.path.exists(cfg.vmlinux) else cfg.kernel

    def cmdline(self) -> Cmdline:
        line = Cmdline()
        if self.config.cmdline:
            line.insert_str(self.config.cmdline)
        present = set(self.config.cmdline.split())
        for piece in ENGINE_CMDLINE:
            key = piece.split("=", 1)[0]
            if not any(p == key or p.startswith(key + "=") for p in present):
                line.insert_str(piece)
        return line

    def prepare(
        self, mem: GuestMemoryAccess, mem_bytes: int, nr_vcpus: int, devices: list[MmioDevice]
    ) -> BootPlan:
        """Write kernel, initrd, ACPI, command line, zero page, GDT and page tables.

        :raises EngineError: a missing or unloadable image (the loader's step is named).
        """
        low_ram_end = min(mem_bytes, MMIO32_START)
        image = _read(self.kernel_path(), "kernel")
        try:
            kernel = load_kernel(mem, image, low_ram_end)
            initrd = None
            if self.config.initrd:
                data = _read(self.config.initrd, "initrd")
                initrd = load_initrd(mem, kernel, data, low_ram_end)
            tables = build_acpi_tables(
                self.config.topology,
                ram_regions(mem_bytes),
                [(d.base, d.size, d.gsi) for d in devices],
                serial_ports=(COM1, COM2),
            )
            rsdp = tables.write(mem)
            line = self.cmdline()
            e820 = build_e820(ram_regions(mem_bytes), acpi=(ACPI_TABLES_ADDR, ACPI_TABLES_SIZE))
            zero_page = write_boot_params(mem, kernel, line, e820, initrd=initrd, rsdp_gpa=rsdp)
            if kernel.protocol >= _SETUP_DATA_PROTOCOL:
                add_rng_seed(mem, zero_page)
        except LoaderError as exc:
            raise EngineError(f"kernel {self.kernel_path()}: {exc}") from exc
        gdt = write_gdt(mem)
        cr3 = write_identity_page_tables(mem, _IDENTITY_GIB)
        bsp = VcpuEntry(
            boot_regs(kernel.entry_64, zero_page),
            sregs=lambda s: long_mode_sregs(s, gdt, cr3),
            msrs=tuple(boot_msrs()),
        )
        return BootPlan(bsp, [None] * (nr_vcpus - 1), cmdline=str(line))
