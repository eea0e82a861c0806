"""i8042: reboot=k reset path, Linux probe answers, keyboard ACKs, hostile input."""

import itertools

import pytest

from vmm_proc.devices import i8042 as k
from vmm_proc.devices.i8042 import I8042, OUT_QUEUE_SIZE


@pytest.fixture
def kbc():
    resets, irqs = [], []
    dev = I8042(reset=lambda: resets.append(1), irq=lambda: irqs.append(1))
    dev.resets, dev.irqs = resets, irqs
    return dev


def status(dev):
    return dev.read(k.STATUS, 1)[0]


def command(dev, cmd, *params):
    """What Linux's __i8042_command does: wait IBF clear, write, read answers while OBF."""
    assert not status(dev) & k.STR_IBF
    dev.write(k.STATUS, bytes((cmd,)))
    for p in params:
        assert not status(dev) & k.STR_IBF
        dev.write(k.DATA, bytes((p,)))
    out = []
    while status(dev) & k.STR_OBF:
        out.append(dev.read(k.DATA, 1)[0])
    return out


def test_reboot_k_pulses_reset(kbc):
    # arch/x86/kernel/reboot.c: kb_wait() then outb(0xfe, 0x64)
    assert status(kbc) & k.STR_IBF == 0
    kbc.write(k.STATUS, b"\xfe")
    assert kbc.resets == [1]


def test_output_port_reset_bit(kbc):
    assert command(kbc, k.CMD_READ_OUTP) == [k.OUTP_DEFAULT]
    command(kbc, k.CMD_WRITE_OUTP, 0x03)
    assert kbc.resets == []
    command(kbc, k.CMD_WRITE_OUTP, 0x02)
    assert kbc.resets == [1]


def test_linux_controller_probe(kbc):
    assert command(kbc, k.CMD_SELF_TEST) == [k.SELF_TEST_OK]
    ctr = command(kbc, k.CMD_READ_CTR)[0]
    assert ctr == k.CTR_DEFAULT
    command(kbc, k.CMD_WRITE_CTR, ctr & ~(k.CTR_KBDINT | k.CTR_AUXINT))
    assert command(kbc, k.CMD_READ_CTR) == [ctr & ~k.CTR_KBDINT]
    assert command(kbc, k.CMD_KBD_TEST) == [k.PORT_TEST_OK]
    command(kbc, k.CMD_AUX_ENABLE)
    assert not command(kbc, k.CMD_READ_CTR)[0] & k.CTR_AUXDIS
    command(kbc, k.CMD_AUX_DISABLE)
    assert command(kbc, k.CMD_READ_CTR)[0] & k.CTR_AUXDIS


def test_no_mouse_fails_fast(kbc):
    kbc.write(k.STATUS, bytes((k.CMD_AUX_LOOP,)))
    kbc.write(k.DATA, b"\x5a")
    st = status(kbc)
    assert st & k.STR_OBF and not st & k.STR_AUXDATA  # Linux: "auxerr", no timeout
    kbc.read(k.DATA, 1)
    assert command(kbc, k.CMD_AUX_TEST) == [k.AUX_TEST_CLOCK_STUCK]


def test_keyboard_answers_with_irq_per_byte(kbc):
    kbc.write(k.DATA, bytes((k.KBD_CMD_GETID,)))
    assert len(kbc.irqs) == 1
    got = [kbc.read(k.DATA, 1)[0] for _ in range(3)]
    assert got == [k.KBD_ACK, *k.KBD_ID]
    assert len(kbc.irqs) == 3  # each queued byte is a new edge
    assert not status(kbc) & k.STR_OBF
    kbc.write(k.DATA, b"\xed")
    kbc.write(k.DATA, b"\x00")
    assert [kbc.read(k.DATA, 1)[0] for _ in range(2)] == [k.KBD_ACK, k.KBD_ACK]
    kbc.write(k.DATA, bytes((k.KBD_CMD_RESET,)))
    assert [kbc.read(k.DATA, 1)[0] for _ in range(2)] == [k.KBD_ACK, k.KBD_BAT_OK]


def test_no_irq_when_kbdint_off(kbc):
    command(kbc, k.CMD_WRITE_CTR, 0)
    kbc.irqs.clear()
    kbc.write(k.DATA, b"\xf4")
    assert kbc.irqs == [] and status(kbc) & k.STR_OBF


def test_output_queue_bounded(kbc):
    for _ in range(1000):
        kbc.write(k.DATA, bytes((k.KBD_CMD_GETID,)))
    assert len(kbc.state().out) == OUT_QUEUE_SIZE


def test_state_roundtrip(kbc):
    kbc.write(k.STATUS, bytes((k.CMD_WRITE_CTR,)))
    st = kbc.state()
    dev2 = I8042.from_state(st, reset=lambda: None, irq=lambda: None)
    dev2.write(k.DATA, b"\x00")
    assert command(dev2, k.CMD_READ_CTR) == [0]


def test_garbage_everywhere_stays_defined(kbc):
    for off, v in itertools.product(range(-1, 8), range(256)):
        if off == k.STATUS and v & 0xF0 == 0xF0:
            continue  # reset requests are covered above
        kbc.write(off, bytes((v,)))
        kbc.read(off, 1)
    assert kbc.read(2, 1) == b"\xff"
    assert kbc.read(0, 4) == b"\xff" * 4
    kbc.write(0, b"\x00\x00")
    assert len(kbc.state().out) <= OUT_QUEUE_SIZE
    assert kbc.resets in ([], [1])  # only via output-port writes with bit 0 clear
