"""Tier 2: KvmEngine snapshot and restore with a micro-guest that accumulates state.

The guest counts, adds the count to a word in RAM and to a register, writes it to the
UART's scratch register and prints its low byte; at the end it prints the scratch register,
the register and the RAM sum, then resets. A snapshot taken mid-run and restored into a
fresh VM must print exactly what the original printed after the snapshot point.
"""

import os
import struct
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
from vmm_proc.engines.kvm.snapshot_store import RestoreFrom, SnapshotRefused

pytestmark = pytest.mark.kvm

ROUNDS = 3000
ACC = 0x6000

COUNTER = f"""
    .code16
    .globl start
start:
    xor %ax, %ax
    mov %ax, %ds
    xor %ecx, %ecx
    xor %ebx, %ebx
    movl $0, {ACC:#x}
1:  inc %ecx
    add %ecx, %ebx
    addl %ecx, {ACC:#x}
    mov $0x3ff, %dx
    mov %cl, %al
    out %al, %dx
    mov $0x3f8, %dx
    out %al, %dx
    cmp ${ROUNDS}, %ecx
    jne 1b
    mov $0x3ff, %dx
    in %dx, %al
    mov $0x3f8, %dx
    out %al, %dx
    mov %ebx, %eax
    call put32
    mov {ACC:#x}, %eax
    call put32
    mov $0xfe, %al
    out %al, $0x64
    hlt
put32:
    mov $4, %si
2:  out %al, %dx
    shr $8, %eax
    dec %si
    jnz 2b
    ret
"""

KEY = {"kernel": "micro-guest counter", "schedlab": "test"}


class Hooks:
    def __init__(self):
        self.streams = {}
        self.exits = []
        self.done = threading.Event()
        self.lock = threading.Lock()

    def stream(self, name, data):
        with self.lock:
            self.streams[name] = self.streams.get(name, b"") + data

    def console(self):
        with self.lock:
            return self.streams.get("console", b"")

    def exited(self, reason, detail):
        self.exits.append((reason, detail))
        self.done.set()

    def wait(self, timeout=60):
        assert self.done.wait(timeout), "engine never reported exited"
        return self.exits[0]


def _config():
    return VmConfig(
        run_id=f"t{uuid.uuid4().hex[:10]}",
        engine="kvm",
        kernel="",
        initrd="",
        cmdline="",
        topology=Topology(1, 1, 1, 1),
        mem_mib=16,
        timeout_s=60,
    )


def _expected_tail():
    s = sum(range(1, ROUNDS + 1)) & 0xFFFFFFFF
    return bytes([ROUNDS & 0xFF]) + struct.pack("<I", s) * 2


@pytest.fixture
def engines():
    require_kvm()
    require_tools()
    made = []

    def make(**kw):
        hooks = Hooks()
        eng = KvmEngine(_config(), hooks, **kw)
        made.append(eng)
        return eng, hooks

    yield make
    for eng in made:
        eng.close()
        assert not os.path.exists(eng.config.guest_ram_path)


@pytest.fixture
def snapshot(engines, tmp_path):
    """Run the counter, snapshot it mid-run; yields (directory, printed before, full output)."""
    eng, hooks = engines(boot=RawBoot(assemble(COUNTER)))
    eng.start()
    deadline = time.monotonic() + 10
    while len(hooks.console()) < 50 and time.monotonic() < deadline:
        time.sleep(0.002)
    directory = str(tmp_path / "snap")
    paused_s = eng.snapshot(directory, KEY, extra={"ready": "counter"}, resume=False)
    before = hooks.console()  # the batcher was flushed while paused
    eng.resume()
    reason, detail = hooks.wait()
    assert reason is ExitReason.GUEST_EXIT, detail
    full = hooks.console()
    assert full.endswith(_expected_tail()) and len(full) == ROUNDS + 9
    assert 0 < len(before) < ROUNDS, "the snapshot was not taken mid-run"
    assert paused_s < 5
    return directory, before, full


def test_restored_guest_continues_exactly_where_the_snapshot_was_taken(engines, snapshot):
    directory, before, full = snapshot
    eng, hooks = engines(restore=RestoreFrom(directory, KEY))
    eng.start()
    reason, detail = hooks.wait()
    assert reason is ExitReason.GUEST_EXIT and "i8042" in detail
    assert eng.start_kind == "restored" and eng.restored_extra == {"ready": "counter"}
    # Registers (the ebx sum, the loop counter), RAM (the word at ACC) and the UART's scratch
    # register all came back: the rest of the output is byte for byte the original's.
    assert before + hooks.console() == full


def test_two_restores_from_one_snapshot_run_independently(engines, snapshot):
    directory, before, full = snapshot
    image = os.path.join(directory, "memory")
    with open(image, "rb") as f:
        saved_word = f.read()[ACC : ACC + 4]
    pair = [engines(restore=RestoreFrom(directory, KEY)) for _ in range(2)]
    for eng, _ in pair:
        eng.start()
    for _, hooks in pair:
        assert hooks.wait()[0] is ExitReason.GUEST_EXIT
        assert before + hooks.console() == full
    # Copy-on-write: the guests' writes never reached the image they started from.
    with open(image, "rb") as f:
        assert f.read()[ACC : ACC + 4] == saved_word
    assert struct.unpack("<I", saved_word)[0] < sum(range(1, ROUNDS + 1))


def test_shared_memory_restore_lets_other_processes_map_guest_ram(engines, snapshot):
    directory, before, full = snapshot
    eng, hooks = engines(restore=RestoreFrom(directory, KEY, private_memory=False))
    eng.start()
    layout = eng.memory_layout()
    assert layout and layout[0]["path"] == eng.config.guest_ram_path
    assert hooks.wait()[0] is ExitReason.GUEST_EXIT
    assert before + hooks.console() == full


def _corrupt_state(directory):
    path = os.path.join(directory, "state")
    blob = bytearray(open(path, "rb").read())
    blob[-3] ^= 0xFF
    open(path, "wb").write(bytes(blob))


@pytest.mark.parametrize(
    "damage, why",
    [
        (_corrupt_state, "checksum mismatch"),
        (lambda d: os.truncate(os.path.join(d, "memory"), 4096), "memory image has 4096 bytes"),
        (lambda d: os.unlink(os.path.join(d, "state")), "cannot read"),
    ],
)
def test_a_damaged_snapshot_is_refused_and_a_cold_boot_signalled(engines, snapshot, damage, why):
    directory, _, _ = snapshot
    damage(directory)
    eng, hooks = engines(restore=RestoreFrom(directory, KEY))
    with pytest.raises(SnapshotRefused) as info:
        eng.start()
    assert why in str(info.value) and "falling back to a cold boot" in str(info.value)
    assert not os.path.exists(eng.config.guest_ram_path) and not hooks.exits


def test_a_snapshot_for_another_key_is_refused(engines, snapshot):
    directory, _, _ = snapshot
    eng, _ = engines(restore=RestoreFrom(directory, {**KEY, "kernel": "another"}))
    with pytest.raises(SnapshotRefused) as info:
        eng.start()
    assert "another configuration (differs in kernel)" in str(info.value)
