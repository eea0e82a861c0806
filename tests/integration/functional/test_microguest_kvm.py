"""Tier 2: tiny hand-written guests on /dev/kvm through the typed KVM layer."""

import subprocess
import sys
import threading
import time

import pytest

from tests.framework.microguest import MicroVm, guest, require_kvm, require_tools, serial_bytes
from vmm_proc.kvm.exits import Hlt, Interrupted, IoIn, IoOut, MmioRead, MmioWrite
from vmm_proc.kvm.kick import kick
from vmm_proc.kvm.minivm import CODE_ADDR

pytestmark = pytest.mark.kvm


@pytest.fixture
def microvm():
    require_kvm()
    require_tools()
    with MicroVm() as vm:
        yield vm


def boot_real(vm, name, index=0):
    vm.load(CODE_ADDR, guest(name))
    vm.real_mode(index, CODE_ADDR)


def test_serial_output_bytes(microvm):
    boot_real(microvm, "serial")
    exits = microvm.run()
    assert serial_bytes(exits) == b"hello from a micro-guest\n"
    assert all(e.size == 1 and e.count == 1 for e in exits if isinstance(e, IoOut))
    assert exits[-1] == Hlt()


def test_i8042_reset_is_seen(microvm):
    boot_real(microvm, "i8042_reset")
    exits = microvm.run()
    assert IoOut(port=0x64, size=1, count=1, data=b"\xfe") in exits


def test_unknown_port_and_mmio_exits_carry_data(microvm):
    boot_real(microvm, "ports_mmio")
    exits = microvm.run(
        io_in=lambda e: b"\x42",
        mmio_read=lambda e: (0xA1B2C3D4).to_bytes(e.length, "little"),
    )
    ins = [e for e in exits if isinstance(e, IoIn)]
    assert [(e.port, e.size, e.count) for e in ins] == [(0x99, 1, 1)]
    outs = [(e.port, e.data) for e in exits if isinstance(e, IoOut)]
    assert outs == [
        (0x10, b"\x42"),  # the IoIn reply reached the guest's AL
        (0x99, b"\x34\x12"),
        (0x10, (0xA1B2C3D4).to_bytes(4, "little")),  # the MMIO reply reached EAX
    ]
    reads = [e for e in exits if isinstance(e, MmioRead)]
    assert [(e.addr, e.length) for e in reads] == [(0x100008, 4)]
    writes = [e for e in exits if isinstance(e, MmioWrite)]
    assert writes == [MmioWrite(0x100004, (0xCAFEF00D).to_bytes(4, "little"))]
    assert exits[-1] == Hlt()


def test_hlt_exit_and_rip_after_it(microvm):
    boot_real(microvm, "hlt")
    assert microvm.run() == [Hlt()]
    assert microvm.vcpus[0].get_regs().rip == CODE_ADDR + 1


def test_several_vcpus_each_print_their_id():
    require_kvm()
    require_tools()
    with MicroVm(vcpus=3) as vm:
        vm.load(CODE_ADDR, guest("whoami"))
        cpuid = vm.kvm.supported_cpuid()
        results = {}

        def runner(i):
            results[i] = vm.run(i)

        for i, cpu in enumerate(vm.vcpus):
            leaf1 = [e for e in cpuid if e.function == 1][0]
            leaf1.ebx = (leaf1.ebx & 0x00FFFFFF) | (i << 24)
            cpu.set_cpuid2(cpuid)
            vm.real_mode(i, CODE_ADDR)
        threads = [threading.Thread(target=runner, args=(i,), name=f"vcpu{i}") for i in range(3)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=30)
            assert not t.is_alive()
        assert {i: serial_bytes(ex) for i, ex in results.items()} == {0: b"0", 1: b"1", 2: b"2"}


def test_kick_ends_a_spinning_guest(microvm):
    boot_real(microvm, "spin")
    cpu = microvm.vcpus[0]
    assert cpu.run() == IoOut(0x10, 1, 1, b"\0")  # the guest is about to spin
    outcome = {}

    def spin():
        t0 = time.monotonic()
        outcome["exit"] = cpu.run()
        outcome["seconds"] = time.monotonic() - t0

    thread = threading.Thread(target=spin, name="vcpu0")
    thread.start()
    time.sleep(0.2)
    assert thread.is_alive(), "guest stopped spinning on its own"
    kicked_at = time.monotonic()
    kick(cpu, thread.ident)
    thread.join(timeout=5)
    assert not thread.is_alive(), "kick did not end KVM_RUN"
    assert outcome["exit"] == Interrupted()
    assert time.monotonic() - kicked_at < 1.0
    assert cpu.immediate_exit is False  # run() cleared it for the next round


def test_long_mode_entry(microvm):
    microvm.load(CODE_ADDR, guest("longmode"))
    microvm.long_mode(0, CODE_ADDR)
    exits = microvm.run()
    outs = [int.from_bytes(e.data, "little") for e in exits if isinstance(e, IoOut)]
    assert outs == [0x11223344, 0xABCD0123]
    sregs = microvm.vcpus[0].get_sregs()
    assert sregs.efer & (1 << 10)  # LMA: the CPU really is in long mode
    assert sregs.cs.l == 1


def test_guest_writes_seen_by_second_process(microvm):
    boot_real(microvm, "pattern")
    assert microvm.run()[-1] == Hlt()
    (region,) = microvm.memory.layout()
    code = (
        "import mmap,sys\n"
        "f=open(sys.argv[1],'rb'); m=mmap.mmap(f.fileno(),0,prot=mmap.PROT_READ)\n"
        "o=int(sys.argv[2]); sys.stdout.write(m[o:o+64].hex())\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, region["path"], str(region["offset"] + 0x5000)],
        capture_output=True,
        text=True,
        check=True,
        timeout=30,
    ).stdout
    assert bytes.fromhex(out) == bytes((0x5A + i) & 0xFF for i in range(64))
