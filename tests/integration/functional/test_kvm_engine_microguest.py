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

    def make(source, timeout_s=20.0, cpus=1, ap_start=None):
        run_id = f"t{uuid.uuid4().hex[:10]}"
        cfg = VmConfig(
            run_id=run_id, engine="kvm", kernel="", initrd="", cmdline="",
            topology=Topology(1, 1, cpus, 1), mem_mib=16, timeout_s=timeout_s,
        )
        code = assemble(source)
        ap_regs = None if ap_start is None else Regs(rip=0x1000 + ap_start, rsp=0x7000)
        hooks = Hooks()
        eng = KvmEngine(cfg, hooks, boot=RawBoot(code, ap_regs=ap_regs))
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
