"""Boot the real kernel with our loader, zero page, e820, GDT, page tables and ACPI tables.

QEMU TCG (``-M pc``) stands in for the CPU: its RAM is our GuestMemory file and its
"BIOS" is fixtures/reset64.S, which only switches to long mode and jumps to the entry the
loader reported. CPUID is QEMU's, not ours. The guest's /init (busybox) lists the ACPI
platform devices and powers off; the FADT sleep-control write to port 0x600 lands on
QEMU's isa-debug-exit device, so QEMU's exit status proves the S5 path: (0x34 << 1) | 1.
"""

import os
import shutil
import struct
import subprocess
import tempfile
import uuid
from pathlib import Path

import pytest

from schedlab_shared.cache import kernels_dir
from schedlab_shared.topology import Topology
from tests.framework.prereq import missing
from vmm_proc.acpi.build import build_acpi_tables
from vmm_proc.acpi.fadt import REQUIRED_KERNEL_ARGS
from vmm_proc.arch.x86_64 import gdt, layout, paging
from vmm_proc.boot.cmdline import Cmdline
from vmm_proc.boot.loader import load_initrd, load_kernel
from vmm_proc.boot.params import build_e820, write_boot_params
from vmm_proc.mem.guest_memory import GuestMemory

FIXTURES = Path(__file__).with_name("fixtures")
MEM = 512 << 20
ENTRY_SLOT = 0x6000  # where reset64.S reads the 64-bit entry point
POWEROFF_STATUS = (layout.S5_SLEEP_CONTROL_VALUE << 1) | 1
INIT = """#!/bin/busybox sh
B=/bin/busybox
$B mount -t proc proc /proc
$B mount -t sysfs sysfs /sys
echo "H3 platform: $($B ls /sys/bus/platform/devices | $B grep LNRO | $B tr '\\n' ' ')"
echo "H3 nodes: $($B ls /sys/devices/system/node | $B grep -c '^node')"
echo "H3 cpus: $($B cat /sys/devices/system/cpu/online)"
$B grep LNRO /proc/iomem
$B poweroff -f
"""


def _kernel(name):
    for d in [*sorted(kernels_dir().glob("*/"), reverse=True), Path("/root/dev-kernel")]:
        for p in [d / name, *d.glob(f"x/usr/lib/modules/*/{name}")]:
            if p.is_file():
                return p
    missing(f"no {name} in {kernels_dir()} or /root/dev-kernel")


def _cpio(entries):
    """A newc archive of (name, mode, data, rdev_major, rdev_minor)."""
    out = bytearray()
    for ino, (name, mode, data, major, minor) in enumerate(
        [*entries, ("TRAILER!!!", 0, b"", 0, 0)], 1
    ):
        fields = (ino, mode, 0, 0, 1, 0, len(data), 0, 0, major, minor, len(name) + 1, 0)
        out += b"070701" + b"".join(b"%08X" % f for f in fields) + name.encode() + b"\0"
        out += bytes(-len(out) % 4)
        out += data
        out += bytes(-len(out) % 4)
    return bytes(out)


def _initrd():
    busybox = shutil.which("busybox")
    if busybox is None:
        missing("busybox-static is not installed")
    d, f = 0o040755, 0o100755
    return _cpio(
        [
            ("bin", d, b"", 0, 0),
            ("proc", d, b"", 0, 0),
            ("sys", d, b"", 0, 0),
            ("dev", d, b"", 0, 0),
            ("dev/console", 0o020600, b"", 5, 1),
            ("bin/busybox", f, Path(busybox).read_bytes(), 0, 0),
            ("init", f, INIT.encode(), 0, 0),
        ]
    )


def _rom(tmp):
    obj, rom = Path(tmp, "reset64.o"), Path(tmp, "rom.bin")
    subprocess.run(["gcc", "-c", "-o", obj, FIXTURES / "reset64.S"], check=True, timeout=60)
    subprocess.run(["objcopy", "-O", "binary", "-j", ".text", obj, rom], check=True, timeout=60)
    assert rom.stat().st_size == 0x10000
    return rom


def _prepare(mem, image, topo):
    res = load_kernel(mem, image, MEM)
    rd = load_initrd(mem, res, _initrd(), MEM)
    acpi = build_acpi_tables(
        topo, layout.ram_regions(MEM), [layout.virtio_mmio_slot(i) for i in range(2)]
    )
    rsdp = acpi.write(mem)
    cl = Cmdline()
    # TCG has no kvmclock: give the TSC rate instead of calibrating against absent timers.
    cl.insert_str(
        f"console=ttyS0 nokaslr panic=-1 tsc_early_khz=2000000 {' '.join(REQUIRED_KERNEL_ARGS)}"
    )
    e820 = build_e820(layout.ram_regions(MEM), (acpi.area_gpa, acpi.area_end - acpi.area_gpa))
    zp = write_boot_params(mem, res, cl, e820, initrd=rd, rsdp_gpa=rsdp)
    assert zp == layout.ZERO_PAGE_ADDR
    gdt.write_gdt(mem)
    paging.write_identity_page_tables(mem)
    mem.write(ENTRY_SLOT, struct.pack("<Q", res.entry_64))


def _run_qemu(path, rom, topo, serial):
    argv = [
        "qemu-system-x86_64",
        "-accel",
        "tcg,thread=single",  # MTTCG can crash a booting guest (int3 patching)
        "-cpu",
        "max",
        "-M",
        "pc,memory-backend=mem",
        "-m",
        f"{MEM >> 20}M",
        "-smp",
        str(topo.nr_cpus),
        "-object",
        f"memory-backend-file,id=mem,size={MEM >> 20}M,mem-path={path},share=on",
        "-bios",
        str(rom),
        "-nographic",
        "-vga",
        "none",
        "-nodefaults",
        "-no-reboot",
        "-serial",
        f"file:{serial}",
        "-monitor",
        "none",
        "-device",
        f"isa-debug-exit,iobase={layout.SLEEP_CONTROL_PORT:#x},iosize=1",
    ]
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        _, err = proc.communicate(timeout=240)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    return proc.returncode, err.decode(errors="replace")


@pytest.mark.slow
@pytest.mark.parametrize("image", ["vmlinuz", "vmlinux"])
def test_kernel_boots_with_our_tables_and_powers_off(image):
    if shutil.which("qemu-system-x86_64") is None or shutil.which("gcc") is None:
        missing("qemu-system-x86 and gcc are needed")
    kernel = _kernel(image).read_bytes()
    topo = Topology(2, 1, 1, 1)  # two NUMA nodes: SRAT and SLIT are exercised too
    path = f"/dev/shm/schedlab-h3-boot-{uuid.uuid4().hex[:12]}-mem"
    with (
        tempfile.TemporaryDirectory(prefix="schedlab-h3-boot-") as tmp,
        GuestMemory.create(path, MEM) as mem,
    ):
        _prepare(mem, kernel, topo)
        serial = Path(tmp, "serial.log")
        rc, err = _run_qemu(path, _rom(tmp), topo, serial)
        log = serial.read_text(errors="replace")
    assert not os.path.exists(path)
    tail = log[-3000:] + err
    assert "BIOS-e820: [mem 0x00000000000e0000-0x00000000000fffff] ACPI data" in log.replace(
        "  ", " "
    ), tail
    assert "ACPI: RSDP 0x00000000000E0000" in log, tail
    assert "ACPI: SRAT: Node 1 PXM 1" in log and "ACPI: PM: (supports S0 S5)" in log, tail
    assert "H3 platform: LNRO0005:00 LNRO0005:01 " in log, tail
    assert "00:00: ttyS0 at I/O 0x3f8" in log, tail  # COM1 bound through the DSDT's PNP0501
    assert "H3 nodes: 2" in log and "H3 cpus: 0-1" in log, tail
    assert "d0001000-d0001fff : LNRO0005:01" in log, tail
    assert rc == POWEROFF_STATUS, f"QEMU exit {rc}: {tail}"
