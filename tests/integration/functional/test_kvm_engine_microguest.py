"""Tier 2: the KVM engine's run loop, device wiring and stop paths with tiny guests.

Each test builds a real ``KvmEngine`` on /dev/kvm with a ``RawBoot`` micro-guest instead of
a kernel and checks what reaches ``EngineHooks``.
"""

import os
import threading
import time
import uuid

import pytest

from schedlab_shared.topology import Topology
from tests.framework.microguest import assemble, require_kvm, require_tools
from vmm_proc.config import VmConfig
from vmm_proc.engines.base import ExitReason
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


@pytest.fixture
def engine_factory():
    require_kvm()
    require_tools()
    made = []

    def make(source, timeout_s=20.0, cpus=1, ap_start=None, mode="real"):
        run_id = f"t{uuid.uuid4().hex[:10]}"
        cfg = VmConfig(
            run_id=run_id, engine="kvm", kernel="", initrd="", cmdline="",
            topology=Topology(1, 1, cpus, 1), mem_mib=16, timeout_s=timeout_s,
        )
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
    run_id = f"t{uuid.uuid4().hex[:10]}"
    cfg = VmConfig(run_id=run_id, engine="kvm", kernel="", initrd="", cmdline="",
                   topology=Topology(1, 1, 2, 1), mem_mib=16, timeout_s=20)
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
1:  out %al, %dx                    /* 0x5a to every port: not a reset, not S5 */
    in %dx, %al
    mov $0x5a, %al
    inc %dx
    jnz 1b
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


def test_garbage_to_every_port_leaves_the_vmm_standing(engine_factory):
    eng, hooks = engine_factory(GARBAGE_PORTS, timeout_s=120)
    t0 = time.monotonic()
    eng.start()
    reason, detail = hooks.wait(130)
    assert reason is ExitReason.GUEST_EXIT, detail
    assert hooks.streams["console"].endswith(b"survived\n")
    pio = eng._devices.pio
    assert pio.unmapped.writes > 60000 and pio.unmapped.reads > 60000
    print(f"65536 port writes+reads: {time.monotonic() - t0:.1f}s")
