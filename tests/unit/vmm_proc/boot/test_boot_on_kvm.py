"""The real bzImage's decompressor, entered on /dev/kvm with our registers, reads our zero page.

Its early serial code parses the command line through boot_params.hdr.cmd_line_ptr and
prints the nokaslr notice: proof that entry state, page tables, GDT, CPUID, MSRs and zero
page work under KVM. (On this project's nested software KVM the decompressor later stops
at a VEX instruction it cannot emulate, so the test stops at that line.)
"""

import time
from pathlib import Path

import pytest

from schedlab_shared.cache import kernels_dir
from schedlab_shared.topology import Topology
from tests.framework.microguest import require_kvm
from tests.framework.prereq import missing
from vmm_proc.acpi.build import build_acpi_tables
from vmm_proc.arch.x86_64 import gdt, layout, paging, regs
from vmm_proc.arch.x86_64.cpuid import build_cpuid
from vmm_proc.arch.x86_64.msrs import boot_msrs
from vmm_proc.boot.cmdline import Cmdline
from vmm_proc.boot.loader import load_bzimage
from vmm_proc.boot.params import build_e820, write_boot_params
from vmm_proc.kvm.exits import IoIn, IoOut
from vmm_proc.kvm.minivm import MiniVm

MEM = 256 << 20
UART_DATA, UART_LSR = 0x3F8, 0x3FD
LSR_IDLE = 0x60  # transmitter empty: the decompressor's putchar never waits
MARKER = b"KASLR disabled: 'nokaslr' on cmdline."


def _vmlinuz():
    for d in [*sorted(kernels_dir().glob("*/"), reverse=True), Path("/root/dev-kernel")]:
        for p in [d / "vmlinuz", *d.glob("x/usr/lib/modules/*/vmlinuz")]:
            if p.is_file():
                return p
    reason = f"no vmlinuz in {kernels_dir()} or /root/dev-kernel"
    missing(reason)


def _serial_until(cpu, marker, deadline):
    out, exit_ = bytearray(), None
    while time.monotonic() < deadline and marker not in out:
        exit_ = cpu.run()
        if isinstance(exit_, IoOut):
            if exit_.port == UART_DATA:
                out += exit_.data
        elif isinstance(exit_, IoIn):
            fill = LSR_IDLE if exit_.port == UART_LSR else 0xFF
            exit_.reply(bytes([fill]) * (exit_.size * exit_.count))
        else:
            break
    return bytes(out), exit_


@pytest.mark.kvm
@pytest.mark.slow
def test_bzimage_decompressor_reads_our_zero_page_on_kvm():
    require_kvm()
    image = _vmlinuz().read_bytes()
    topo = Topology(1, 1, 1, 1)
    with MiniVm(mem_size=MEM, name="h3-kvmboot") as m:
        mem = m.memory
        res = load_bzimage(mem, image, MEM)
        acpi = build_acpi_tables(topo, layout.ram_regions(MEM), [])
        cl = Cmdline()
        cl.insert_str("console=ttyS0 earlyprintk=serial,ttyS0,115200 nokaslr")
        e820 = build_e820(layout.ram_regions(MEM), (acpi.area_gpa, acpi.area_end - acpi.area_gpa))
        zp = write_boot_params(mem, res, cl, e820, rsdp_gpa=acpi.write(mem))
        cpu = m.vcpus[0]
        cpu.set_cpuid2(build_cpuid(m.kvm.supported_cpuid(), topo, 0))
        cr3 = paging.write_identity_page_tables(mem)
        cpu.set_sregs(regs.long_mode_sregs(cpu.get_sregs(), gdt.write_gdt(mem), cr3))
        cpu.set_msrs(dict(boot_msrs()))
        cpu.set_regs(regs.boot_regs(res.entry_64, zp))
        out, last = _serial_until(cpu, MARKER, time.monotonic() + 120)
    assert MARKER in out, f"serial {out[-500:]!r}, last exit {last}"
