"""16550A UART: Linux 8250 probing sequences, interrupts, FIFO bounds and hostile input."""

import itertools

import pytest

from vmm_proc.devices import serial as s
from vmm_proc.devices.serial import FIFO_SIZE, Serial


class Counts:
    def __init__(self):
        self.lost = 0
        self.overruns = 0
        self.bad = 0

    def tx(self, n):
        pass

    def tx_lost(self, n):
        self.lost += n

    def rx(self, n):
        pass

    def overrun(self):
        self.overruns += 1

    def bad_access(self):
        self.bad += 1


@pytest.fixture
def uart():
    out = bytearray()
    irqs = []
    u = Serial(irq=lambda: irqs.append(1), out=out.extend, metrics=Counts())
    u.out, u.irqs = out, irqs
    return u


def rd(u, off):
    return u.read(off, 1)[0]


def wr(u, off, v):
    u.write(off, bytes((v,)))


def test_tx_goes_to_sink_and_lsr_always_empty(uart):
    for ch in b"hello":
        wr(uart, s.DATA, ch)
    assert bytes(uart.out) == b"hello"
    assert rd(uart, s.LSR) & (s.LSR_THRE | s.LSR_TEMT) == s.LSR_THRE | s.LSR_TEMT


def test_8250_existence_test_ier_low_nibble(uart):
    wr(uart, s.IER, 0)
    assert rd(uart, s.IER) & 0x0F == 0
    wr(uart, s.IER, 0xFF)
    assert rd(uart, s.IER) == 0x0F  # upper bits (UUE etc.) read 0: not an XScale


def test_8250_autoconfig_identifies_16550a(uart):
    # LCR=0xBF then FCR=0 (EFR probe writes land in FCR on a 16550A)
    wr(uart, s.LCR, 0xBF)
    wr(uart, s.IIR, 0)
    wr(uart, s.LCR, 0)
    wr(uart, s.IIR, s.FCR_ENABLE_FIFO)
    assert rd(uart, s.IIR) >> 6 == 3
    # EFR reads (offset 2 with LCR=0xBF / 0x80) must be non-zero on a 16550A
    wr(uart, s.LCR, 0xBF)
    assert rd(uart, s.IIR) != 0
    wr(uart, s.LCR, 0x80)
    assert rd(uart, s.IIR) != 0
    # 16750 check: IIR bit 5 stays clear whatever FCR bit 5 says
    wr(uart, s.IIR, s.FCR_ENABLE_FIFO | 0x20)
    assert rd(uart, s.IIR) >> 5 == 6
    wr(uart, s.LCR, 0)


def test_loopback_msr_and_data(uart):
    wr(uart, s.MCR, s.MCR_LOOP | s.MCR_RTS | s.MCR_OUT2)
    assert rd(uart, s.MSR) & 0xF0 == 0x90  # the 8250 loopback check
    wr(uart, s.MCR, s.MCR_LOOP | 0x0F)
    assert rd(uart, s.MSR) & 0xF0 == 0xF0
    wr(uart, s.DATA, 0x5A)
    assert bytes(uart.out) == b""
    assert rd(uart, s.LSR) & s.LSR_DR
    assert rd(uart, s.DATA) == 0x5A
    wr(uart, s.MCR, s.MCR_OUT2)
    assert rd(uart, s.MSR) == s.MSR_DEFAULT | s.MSR_TERI  # RI fell; CTS, DSR, DCD stayed up


def test_dlab_divisor_latch(uart):
    wr(uart, s.LCR, s.LCR_DLAB | 0x03)
    wr(uart, s.DATA, 0x01)
    wr(uart, s.IER, 0x02)
    assert (rd(uart, s.DATA), rd(uart, s.IER)) == (1, 2)
    wr(uart, s.LCR, 0x03)
    assert rd(uart, s.IER) == 0
    assert bytes(uart.out) == b""


def test_thre_retrigger_test_passes(uart):
    # serial8250_do_startup's UART_BUG_THRE probe
    wr(uart, s.IER, s.IER_THRI)
    iir1 = rd(uart, s.IIR)
    wr(uart, s.IER, 0)
    wr(uart, s.IER, s.IER_THRI)
    iir = rd(uart, s.IIR)
    wr(uart, s.IER, 0)
    assert not iir1 & s.IIR_NO_INT and not iir & s.IIR_NO_INT
    # and the UART_BUG_TXEN probe
    wr(uart, s.IER, s.IER_THRI)
    lsr, iir = rd(uart, s.LSR), rd(uart, s.IIR)
    wr(uart, s.IER, 0)
    assert lsr & s.LSR_TEMT and not iir & s.IIR_NO_INT


def test_thri_edge_per_write_and_cleared_by_iir_read(uart):
    wr(uart, s.IER, s.IER_THRI)
    assert len(uart.irqs) == 1
    assert rd(uart, s.IIR) & 0x0F == s.IIR_THRI
    assert rd(uart, s.IIR) & 0x0F == s.IIR_NO_INT
    for ch in b"abc":
        wr(uart, s.DATA, ch)
    assert len(uart.irqs) == 4


def test_rx_interrupt_priority_over_thre(uart):
    wr(uart, s.IIR, s.FCR_ENABLE_FIFO)
    wr(uart, s.IER, s.IER_THRI | s.IER_RDI)
    assert uart.enqueue(b"xy") == 2
    assert rd(uart, s.IIR) == s.IIR_FIFO_ENABLED | s.IIR_RDI
    assert rd(uart, s.DATA) == ord("x")
    assert rd(uart, s.DATA) == ord("y")
    assert rd(uart, s.IIR) == s.IIR_FIFO_ENABLED | s.IIR_THRI
    assert rd(uart, s.IIR) == s.IIR_FIFO_ENABLED | s.IIR_NO_INT


def test_rx_irq_on_rising_edge_only(uart):
    wr(uart, s.IER, s.IER_RDI)
    uart.enqueue(b"a")
    uart.enqueue(b"b")
    assert len(uart.irqs) == 1
    rd(uart, s.DATA), rd(uart, s.DATA)
    uart.enqueue(b"c")
    assert len(uart.irqs) == 2


def test_rx_fifo_bounded(uart):
    assert uart.enqueue(b"x" * 1000) == FIFO_SIZE
    assert uart.enqueue(b"y") == 0
    assert uart.fifo_space() == 0
    wr(uart, s.IIR, s.FCR_ENABLE_FIFO | s.FCR_CLEAR_RCVR)
    assert uart.fifo_space() == FIFO_SIZE
    assert not rd(uart, s.LSR) & s.LSR_DR


def test_loopback_overrun_sets_oe_and_rls_interrupt(uart):
    wr(uart, s.MCR, s.MCR_LOOP)
    wr(uart, s.IER, s.IER_RLSI)
    for _ in range(FIFO_SIZE + 1):
        wr(uart, s.DATA, 0x41)
    assert uart.metrics.overruns == 1
    assert rd(uart, s.IIR) & 0x0F == s.IIR_RLSI
    assert rd(uart, s.LSR) & s.LSR_OE
    assert not rd(uart, s.LSR) & s.LSR_OE


def test_failing_sink_counts_and_keeps_going():
    irqs = []

    def broken(data):
        raise BrokenPipeError

    u = Serial(irq=lambda: irqs.append(1), out=broken, metrics=Counts())
    wr(u, s.IER, s.IER_THRI)
    for ch in b"abc":
        wr(u, s.DATA, ch)
    assert u.metrics.lost == 3
    assert len(irqs) == 4  # THRE still fires: the guest never stalls


def test_state_roundtrip(uart):
    wr(uart, s.LCR, 0x1B)
    wr(uart, s.SCR, 0x42)
    wr(uart, s.IER, s.IER_RDI)
    uart.enqueue(b"abc")
    st = uart.state()
    u2 = Serial.from_state(st, irq=lambda: None, out=lambda b: None)
    assert u2.state() == st
    assert rd(u2, s.SCR) == 0x42 and rd(u2, s.DATA) == ord("a")


def test_garbage_everywhere_stays_defined(uart):
    vals = [0x00, 0xFF, 0x80, 0x7F, 0x10, 0xBF]
    for off, v in itertools.product(range(-2, 12), vals):
        uart.write(off, bytes((v,)))
        uart.read(off, 1)
    for size in (0, 2, 4, 8, 1 << 20):
        assert len(uart.read(0, size)) == min(size, 8)
        uart.write(0, b"\x00" * min(size, 64))
    assert uart.metrics.bad > 0
    assert len(uart.state().rx_fifo) <= FIFO_SIZE
    assert rd(uart, s.IER) <= 0x0F and rd(uart, s.MCR) <= 0x1F
