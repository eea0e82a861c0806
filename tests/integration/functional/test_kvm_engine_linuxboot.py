"""Tier 2: LinuxBoot through the engine, with a stand-in "kernel" ELF that checks its boot
parameters (zero page in rsi, command line, e820, RSDP, initrd) and prints what it found.
"""

import struct
import threading
import uuid

import pytest

from schedlab_shared.bus.vmm import ExitReason
from schedlab_shared.topology import Topology
from schedlab_shared.vm_config import VmConfig
from tests.framework.microguest import assemble, require_kvm, require_tools
from vmm_proc.engines.base import EngineError
from vmm_proc.engines.kvm.engine import KvmEngine
from vmm_proc.engines.kvm.linux_boot import LinuxBoot

pytestmark = pytest.mark.kvm

KERNEL_PADDR = 0x100_0000

# 64-bit entry: rsi = zero page. Prints the command line, then one letter per check passed:
# E (e820 entries), R ("RSD PTR " at acpi_rsdp_addr), I (ramdisk_size), S (an RNG seed in
# setup_data), then resets.
FAKE_KERNEL = """
    .code64
    .globl start
    .macro putc c
    mov $0x3f8, %dx
    mov $\\c, %al
    out %al, %dx
    .endm
start:
    cmpl $0x53726448, 0x202(%rsi)     /* setup_header.header == "HdrS" */
    jne out
    mov 0x228(%rsi), %ebx             /* cmd_line_ptr */
1:  movb (%rbx), %al
    test %al, %al
    jz 2f
    mov $0x3f8, %dx
    out %al, %dx
    inc %rbx
    jmp 1b
2:  putc '|'
    cmpb $0, 0x1e8(%rsi)              /* e820_entries */
    je 3f
    putc 'E'
3:  mov 0x70(%rsi), %rbx              /* acpi_rsdp_addr */
    movabs $0x2052545020445352, %rax  /* "RSD PTR " */
    cmp (%rbx), %rax
    jne 4f
    putc 'R'
4:  cmpl $INITRD_SIZE, 0x21c(%rsi)    /* ramdisk_size */
    jne out
    putc 'I'
    mov 0x250(%rsi), %rbx             /* hdr.setup_data: the RNG seed node */
    test %rbx, %rbx
    jz out
    cmpl $9, 8(%rbx)                  /* SETUP_RNG_SEED */
    jne out
    cmpl $32, 12(%rbx)
    jne out
    putc 'S'
out:
    mov $0xfe, %al
    out %al, $0x64
    hlt
"""


def elf64(code: bytes, paddr: int) -> bytes:
    """A minimal ELF64 executable: one PT_LOAD of ``code`` at ``paddr``, entry at its start."""
    ehdr = struct.pack(
        "<4sBBBB8sHHIQQQIHHHHHH", b"\x7fELF", 2, 1, 1, 0, bytes(8),
        2, 0x3E, 1, paddr, 64, 0, 0, 64, 56, 1, 64, 0, 0,
    )  # fmt: skip
    phdr = struct.pack("<IIQQQQQQ", 1, 5, 0x1000, paddr, paddr, len(code), len(code), 0x1000)
    return (ehdr + phdr).ljust(0x1000, b"\0") + code


class Hooks:
    def __init__(self):
        self.streams, self.exits, self.done = {}, [], threading.Event()

    def stream(self, name, data):
        self.streams[name] = self.streams.get(name, b"") + data

    def exited(self, reason, detail):
        self.exits.append((reason, detail))
        self.done.set()


@pytest.fixture
def fake_kernel(tmp_path):
    require_kvm()
    require_tools()
    initrd = b"initrd!" * 100
    src = FAKE_KERNEL.replace("INITRD_SIZE", str(len(initrd)))
    vmlinux = tmp_path / "vmlinux"
    vmlinux.write_bytes(elf64(assemble(src, KERNEL_PADDR), KERNEL_PADDR))
    (tmp_path / "initrd").write_bytes(initrd)
    return tmp_path


def config(tmp, cmdline="console=ttyS0 quiet", **kw):
    return VmConfig(
        run_id=f"t{uuid.uuid4().hex[:10]}",
        engine="kvm",
        kernel=str(tmp / "missing-bzImage"),
        initrd=str(tmp / "initrd"),
        cmdline=cmdline,
        vmlinux=str(tmp / "vmlinux"),
        topology=Topology(1, 1, 2, 1),
        mem_mib=64,
        timeout_s=30,
        **kw,
    )


def test_elf_kernel_gets_zero_page_cmdline_e820_rsdp_initrd(fake_kernel):
    hooks = Hooks()
    eng = KvmEngine(config(fake_kernel), hooks)
    try:
        eng.start()
        assert hooks.done.wait(30)
        assert hooks.exits[0][0] is ExitReason.GUEST_EXIT, hooks.exits
        assert hooks.streams["console"] == b"console=ttyS0 quiet pci=off reboot=k|ERIS"
        assert eng.plan.aps == [None]  # the AP waits for the kernel's INIT/SIPI
    finally:
        eng.close()


def test_engine_cmdline_pieces_do_not_override_the_orchestrator(fake_kernel):
    line = LinuxBoot(config(fake_kernel, cmdline="reboot=t pci=nommconf")).cmdline()
    assert str(line) == "reboot=t pci=nommconf"


def test_missing_kernel_is_an_engine_error_and_leaves_nothing(fake_kernel):
    (fake_kernel / "vmlinux").unlink()
    cfg = config(fake_kernel)
    eng = KvmEngine(cfg, Hooks())
    with pytest.raises(EngineError, match="missing-bzImage"):
        eng.start()
    import os

    assert not os.path.exists(cfg.guest_ram_path)
    eng.close()
