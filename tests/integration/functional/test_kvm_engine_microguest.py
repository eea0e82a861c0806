"""Tier 2: the KVM engine's run loop, device wiring and stop paths with tiny guests.

Each test builds a real ``KvmEngine`` on /dev/kvm with a ``RawBoot`` micro-guest instead of
a kernel and checks what reaches ``EngineHooks``.
"""

import os
import threading
import time
import uuid

import pytest

from schedlab_shared.bus.vmm import ExitReason
from schedlab_shared.topology import Topology
from schedlab_shared.vm_config import VmConfig
from tests.framework.microguest import assemble, require_kvm, require_tools
from vmm_proc.engines.kvm.boot_plan import RawBoot
from vmm_proc.engines.kvm.engine import KvmEngine
from vmm_proc.kvm.types import Regs

pytestmark = pytest.mark.kvm


class Hooks:
    def __init__(self):
        self.streams = {}
        self.exits = []
        self.done = threading.Event()
        self.lock = threading.Lock()

    def stream(self, name, data):
        with self.lock:
            self.streams[name] = self.streams.get(name, b"") + data

    def exited(self, reason, detail):
        self.exits.append((reason, detail))
        self.done.set()

    def wait(self, timeout=30):
        assert self.done.wait(timeout), "engine never reported exited"
        time.sleep(0.05)  # a second exited() call would land now
        assert len(self.exits) == 1, self.exits
        return self.exits[0]


def raw_config(cpus: int, timeout_s: float) -> VmConfig:
    """A VmConfig for a micro-guest: no kernel, 16 MiB, one LLC of ``cpus`` cores."""
    return VmConfig(
        run_id=f"t{uuid.uuid4().hex[:10]}",
        engine="kvm",
        kernel="",
        initrd="",
        cmdline="",
        topology=Topology(1, 1, cpus, 1),
        mem_mib=16,
        timeout_s=timeout_s,
    )


@pytest.fixture
def engine_factory():
    require_kvm()
    require_tools()
    made = []

    def make(source, timeout_s=20.0, cpus=1, ap_start=None, mode="real"):
        cfg = raw_config(cpus, timeout_s)
        code = assemble(source)
        ap_regs = None if ap_start is None else Regs(rip=0x1000 + ap_start, rsp=0x7000)
        hooks = Hooks()
        eng = KvmEngine(cfg, hooks, boot=RawBoot(code, ap_regs=ap_regs, mode=mode))
        made.append(eng)
        return eng, hooks

    yield make
    for eng in made:
        eng.close()
        assert not os.path.exists(eng.config.guest_ram_path)


PRINT_AND_RESET = """
    .code16
    .globl start
start:
    mov $0x3f8, %dx
    mov $msg, %si
    mov $(msg_end - msg), %cx
1:  lodsb
    out %al, %dx
    loop 1b
    mov $0xfe, %al
    out %al, $0x64
    hlt
msg: .ascii "hello from the kvm engine\\n"
msg_end:
"""


def test_serial_output_then_i8042_reset_is_a_guest_exit(engine_factory):
    eng, hooks = engine_factory(PRINT_AND_RESET)
    eng.start()
    reason, detail = hooks.wait()
    assert reason is ExitReason.GUEST_EXIT and "i8042" in detail
    assert hooks.streams["console"] == b"hello from the kvm engine\n"
    eng.close()
    assert not any(t.name.startswith("vcpu") and t.is_alive() for t in threading.enumerate())


SPIN = """
    .code16
    .globl start
start:
    mov $0x3f8, %dx
    mov $'S', %al
    out %al, %dx
1:  jmp 1b
"""


def test_guest_that_never_exits_times_out_with_register_diagnostic(engine_factory):
    eng, hooks = engine_factory(SPIN, timeout_s=1.0)
    t0 = time.monotonic()
    eng.start()
    reason, detail = hooks.wait(15)
    assert reason is ExitReason.TIMEOUT and "1s" in detail
    assert time.monotonic() - t0 < 10
    diag = hooks.streams["diag"].decode()
    assert "vcpu0" in diag and "RIP=0x" in diag and "CR3=" in diag
    assert "| S" in diag  # the last console line
    # the VMM process is fine: a second engine runs afterwards
    eng2, hooks2 = engine_factory(PRINT_AND_RESET)
    eng2.start()
    assert hooks2.wait()[0] is ExitReason.GUEST_EXIT


FLAG_WAIT_AND_RESET = """
    .code16
    .globl start
start:
    xor %ax, %ax
    mov %ax, %ds
1:  cmpb $1, 0x6000
    jne 1b
    mov $0x3f8, %dx
    mov $'B', %al
    out %al, %dx
    mov $0xfe, %al
    out %al, $0x64
    hlt
ap:
    mov $0x3f8, %dx
    mov $'A', %al
    out %al, %dx
    xor %ax, %ax
    mov %ax, %ds
    movb $1, 0x6000
2:  hlt
    jmp 2b
"""


def test_two_vcpus_run_and_the_reset_ends_both(engine_factory):
    code = assemble(FLAG_WAIT_AND_RESET)
    ap_off = code.index(bytes([0xBA, 0xF8, 0x03, 0xB0, ord("A")]))
    eng, hooks = engine_factory(FLAG_WAIT_AND_RESET, cpus=2, ap_start=ap_off)
    eng.start()
    reason, detail = hooks.wait()
    assert (reason, hooks.streams["console"]) == (ExitReason.GUEST_EXIT, b"AB"), detail
    assert "vcpu0" not in detail or "i8042" in detail


SIPI_BSP = """
    .code64
    .globl start
start:
    mov $0xfee000f0, %edi
    orl $0x100, (%rdi)             /* software-enable the local APIC */
    mov $0xfee00310, %edi
    movl $0x01000000, (%rdi)       /* destination: APIC ID 1 */
    mov $0xfee00300, %edi
    movl $0x00004500, (%rdi)       /* INIT */
    mov $0xfee00310, %edi
    movl $0x01000000, (%rdi)
    mov $0xfee00300, %edi
    movl $0x00004610, (%rdi)       /* STARTUP, vector 0x10 -> 0x10000 */
1:  cmpb $1, 0x6000
    jne 1b
    mov $0x3f8, %dx
    mov $'B', %al
    out %al, %dx
    mov $0xfe, %al
    out %al, $0x64
    hlt
"""

SIPI_AP = """
    .code16
    .globl start
start:
    mov $0x3f8, %dx
    mov $'A', %al
    out %al, %dx
    xor %ax, %ax
    mov %ax, %ds
    movb $1, 0x6000
1:  hlt
    jmp 1b
"""


def test_ap_waits_for_init_sipi_from_the_bsp(engine_factory):
    """APs sit in KVM_RUN (UNINITIALIZED) until the BSP's INIT/SIPI, as Linux boots them."""
    require_kvm()
    cfg = raw_config(2, 20)
    boot = RawBoot(assemble(SIPI_BSP), mode="long", extra=((0x10000, assemble(SIPI_AP, 0x10000)),))
    hooks = Hooks()
    eng = KvmEngine(cfg, hooks, boot=boot)
    try:
        eng.start()
        reason, detail = hooks.wait()
        assert (reason, hooks.streams.get("console")) == (ExitReason.GUEST_EXIT, b"AB"), detail
    finally:
        eng.close()


TRIPLE_FAULT = """
    .code64
    .globl start
start:
    lidt idt
    ud2                /* #UD with an empty IDT: #GP, #DF, then shutdown */
idt: .word 0
     .quad 0
"""


def test_triple_fault_without_shutdown_is_a_crash(engine_factory):
    eng, hooks = engine_factory(TRIPLE_FAULT, mode="long")
    eng.start()
    reason, detail = hooks.wait()
    assert reason is ExitReason.CRASH and "triple fault" in detail


PANIC_THEN_RESET = PRINT_AND_RESET.replace(
    "hello from the kvm engine", "Kernel panic - not syncing: Attempted to kill init!"
)


def test_reset_after_a_kernel_panic_line_is_a_crash(engine_factory):
    eng, hooks = engine_factory(PANIC_THEN_RESET)
    eng.start()
    reason, detail = hooks.wait()
    assert reason is ExitReason.CRASH and "Attempted to kill init" in detail


def test_timeout_kicks_an_ap_sleeping_in_the_kernel_and_reports_it(engine_factory):
    """vcpu1 never gets a SIPI: its KVM_RUN sleeps in the kernel until the kick."""
    eng, hooks = engine_factory(SPIN, timeout_s=1.0, cpus=2)
    eng.start()
    reason, _ = hooks.wait(20)
    diag = hooks.streams["diag"].decode()
    assert reason is ExitReason.TIMEOUT
    assert "vcpu0 [paused" in diag and "vcpu1 [paused, 0 exits] RIP=0x000000000000fff0" in diag


def test_stop_from_the_service_is_bounded_and_close_is_idempotent(engine_factory):
    eng, hooks = engine_factory(SPIN, timeout_s=60)
    eng.start()
    layout = eng.memory_layout()
    assert layout == [{"gpa": 0, "size": 16 << 20, "path": eng.config.guest_ram_path, "offset": 0}]
    time.sleep(0.2)
    t0 = time.monotonic()
    eng.stop(ExitReason.STOPPED)
    assert hooks.wait(5) == (ExitReason.STOPPED, "stop requested (stopped)")
    assert time.monotonic() - t0 < 5
    eng.stop(ExitReason.STOPPED)
    eng.close()
    eng.close()
    assert not os.path.exists(eng.config.guest_ram_path)
    assert eng.memory_layout() == []


GARBAGE_PORTS = """
    .code16
    .globl start
start:
    xor %dx, %dx
    mov $0x5a, %al
1:  out %al, %dx                    /* 0x5a to every port below 0x1000: not a reset, not S5 */
    in %dx, %al
    mov $0x5a, %al
    inc %dx
    cmp $0x1000, %dx
    jb 1b
3:  out %al, %dx                    /* then every 0x11th port up to 0xffff */
    in %dx, %al
    mov $0x5a, %al
    add $0x11, %dx
    jnc 3b
    mov $0x3fc, %dx                 /* COM1 MCR: leave the loopback the garbage set */
    xor %al, %al
    out %al, %dx
    mov $0x3f8, %dx
    mov $msg, %si
    mov $(msg_end - msg), %cx
2:  lodsb
    out %al, %dx
    loop 2b
    mov $0xfe, %al
    out %al, $0x64
    hlt
msg: .ascii "survived\\n"
msg_end:
"""


def test_garbage_to_device_ports_leaves_the_vmm_standing(engine_factory):
    eng, hooks = engine_factory(GARBAGE_PORTS, timeout_s=120)
    eng.start()
    reason, detail = hooks.wait(130)
    assert reason is ExitReason.GUEST_EXIT, (detail, hooks.streams.get("diag"))
    assert hooks.streams["console"].endswith(b"survived\n")
    stats = eng.stats()
    ports = 0x1000 + (0x10000 - 0x1000) // 0x11
    assert stats["pio_unmapped"]["writes"] > ports - 100
    assert stats["pio_unmapped"]["reads"] > ports - 100
    assert stats["vcpus"][0]["IoOut"] > ports - 100  # the in-kernel PIC/PIT/ELCR ports never exit


# A driver written by hand: set up virtio-console queue 1 (port 0 transmit) at 0x20000,
# publish the descriptor the host test wrote, notify through the ioeventfd, wait (bounded)
# for the used ring, report "ok"/"to" and "NR" (DEVICE_NEEDS_RESET) on COM1, then reset.
VIRTIO_DRIVER = """
    .code64
    .globl start
    .macro putc c
    mov $0x3f8, %dx
    mov $\\c, %al
    out %al, %dx
    .endm
start:
    mov $0xd0000000, %ebx
    cmpl $0x74726976, 0x0(%rbx)
    jne bad
    movl $0, 0x70(%rbx)
    movl $3, 0x70(%rbx)             /* ACKNOWLEDGE | DRIVER */
    movl $1, 0x24(%rbx)
    movl $1, 0x20(%rbx)             /* VIRTIO_F_VERSION_1 (bit 32) */
    movl $11, 0x70(%rbx)            /* | FEATURES_OK */
    movl $1, 0x30(%rbx)             /* QueueSel = 1 */
    movl $4, 0x38(%rbx)             /* QueueNum */
    movl $0x20000, 0x80(%rbx)
    movl $0x20100, 0x90(%rbx)
    movl $0x20200, 0xa0(%rbx)
    movl $1, 0x44(%rbx)             /* QueueReady */
    movl $15, 0x70(%rbx)            /* | DRIVER_OK */
    movw $1, 0x20102                /* avail.idx = 1 (ring[0] = descriptor 0) */
    movl $1, 0x50(%rbx)             /* QueueNotify 1 */
    mov $20000, %ecx                /* bounded in exits, so in VMM time, not guest speed */
1:  cmpw $1, 0x20202                /* used.idx */
    je done
    testl $64, 0x70(%rbx)           /* Status (an exit to the VMM): DEVICE_NEEDS_RESET? */
    jnz 2f
    loop 1b
2:  putc 't'
    putc 'o'
    jmp status
done:
    putc 'o'
    putc 'k'
status:
    testl $64, 0x70(%rbx)
    jz out
    putc 'N'
    putc 'R'
out:
    mov $0xfe, %al
    out %al, $0x64
    hlt
bad:
    putc '?'
    jmp out
"""


def _virtio_engine(engine_factory_mem, desc, driver=None):
    """RawBoot with the driver and a queue whose descriptor 0 is ``desc``."""
    import struct

    require_kvm()
    require_tools()
    cfg = raw_config(1, 30)
    addr, length, flags, nxt = desc
    extra = (
        (0x20000, struct.pack("<QIHH", addr, length, flags, nxt)),
        (0x20100, struct.pack("<HHH", 0, 0, 0)),  # avail: flags, idx 0, ring[0] = 0
        (0x21000, b"hi from virtio\n"),
    )
    hooks = Hooks()
    code = assemble(driver or VIRTIO_DRIVER)
    eng = KvmEngine(cfg, hooks, boot=RawBoot(code, mode="long", extra=extra))
    engine_factory_mem.append(eng)
    return eng, hooks


@pytest.fixture
def engines():
    made = []
    yield made
    for eng in made:
        eng.close()
        assert not os.path.exists(eng.config.guest_ram_path)


def test_virtio_console_tx_through_ioeventfd_reaches_hvc0(engines):
    eng, hooks = _virtio_engine(engines, (0x21000, 15, 0, 0))
    eng.start()
    reason, detail = hooks.wait()
    assert reason is ExitReason.GUEST_EXIT, detail
    assert hooks.streams.get("console") == b"ok"
    assert hooks.streams.get("hvc0") == b"hi from virtio\n"
    assert eng.stats()["queue_notifies"] >= 1  # the notify came through the ioeventfd


def test_buffers_queued_without_a_notify_are_flushed_at_teardown(engines):
    silent = VIRTIO_DRIVER.replace("movl $1, 0x50(%rbx)", "nop")
    assert silent != VIRTIO_DRIVER
    eng, hooks = _virtio_engine(engines, (0x21000, 15, 0, 0), driver=silent)
    eng.start()
    reason, detail = hooks.wait()
    assert (reason, hooks.streams.get("console")) == (ExitReason.GUEST_EXIT, b"to"), detail
    assert hooks.streams.get("hvc0") == b"hi from virtio\n"


def test_a_kick_before_the_drivers_reset_is_served_first(engines):
    """Linux's device_shutdown() resets the device right after the last bulk write."""
    resetting = VIRTIO_DRIVER.replace("movl $1, 0x50(%rbx)", "movl $0, 0x70(%rbx)")
    assert resetting != VIRTIO_DRIVER
    eng, hooks = _virtio_engine(engines, (0x21000, 15, 0, 0), driver=resetting)
    eng.start()
    reason, detail = hooks.wait()
    assert (reason, hooks.streams.get("console")) == (ExitReason.GUEST_EXIT, b"ok"), detail
    assert hooks.streams.get("hvc0") == b"hi from virtio\n"


@pytest.mark.parametrize(
    "desc",
    [
        (0x21000, 15, 1, 0),  # VIRTQ_DESC_F_NEXT pointing at itself: a loop
        (0xFFFF_0000_0000, 16, 0, 0),  # buffer outside guest RAM
        (0x21000, 15, 1, 9),  # next index beyond the queue size
    ],
    ids=["loop", "out-of-range-buffer", "bad-next"],
)
def test_hostile_descriptor_marks_device_needs_reset_and_vmm_stands(engines, desc):
    eng, hooks = _virtio_engine(engines, desc)
    eng.start()
    reason, detail = hooks.wait()
    assert reason is ExitReason.GUEST_EXIT, detail
    assert hooks.streams.get("console") == b"toNR"
    assert "hvc0" not in hooks.streams


GARBAGE_MMIO = """
    .code64
    .globl start
start:
    mov $0xd0000000, %rbx           /* the virtio-mmio window, every dword */
    mov $0x400, %ecx
1:  movl $0xffffffff, (%rbx)
    movl (%rbx), %eax
    movb $0xa5, 1(%rbx)             /* and a misaligned byte write */
    add $4, %rbx
    loop 1b
    mov $0xc0000000, %rbx           /* unmapped MMIO */
    mov $0x100, %ecx
2:  movq $-1, (%rbx)
    movq (%rbx), %rax
    add $8, %rbx
    loop 2b
    mov $0x3f8, %dx
    mov $'Y', %al
    out %al, %dx
    mov $0xfe, %al
    out %al, $0x64
    hlt
"""


def test_garbage_to_mmio_leaves_the_vmm_standing(engine_factory):
    eng, hooks = engine_factory(GARBAGE_MMIO, mode="long", timeout_s=60)
    eng.start()
    reason, detail = hooks.wait(70)
    assert (reason, hooks.streams.get("console")) == (ExitReason.GUEST_EXIT, b"Y"), detail
    mmio = eng.stats()["mmio_unmapped"]
    assert mmio["writes"] >= 0x100 and mmio["reads"] >= 0x100
