"""A 16550A UART register machine, enough for Linux's 8250 driver (autoconfig, console, tty).

The device sees offsets 0-7 from its base. Transmission is instantaneous: every THR write
goes straight to the injected ``out`` sink, so LSR always reports THRE|TEMT. Host-to-guest
bytes enter a bounded RX FIFO through :meth:`Serial.enqueue`.

Interrupt model: the UART computes its interrupt *line* (some IIR source pending and enabled
in IER) after every access and calls ``irq()`` on each rising edge, as a real 16550 driving an
edge-triggered ISA IRQ does; a THR write re-arms THRE, so it is a fresh edge. This suits an
irqfd (a pulse per call). Linux copes with it because serial8250_interrupt() keeps calling the
port handler until IIR reads NO_INT, so conditions raised while it runs are picked up in that
loop, and anything raised after the final IIR read is a new edge (drivers/tty/serial/8250/8250_core.c).
The OUT2 gate of PC boards is not modelled: the line is never masked by MCR.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

__all__ = (
    "FIFO_SIZE",
    "Serial",
    "SerialMetrics",
    "SerialState",
)

#: Bound of the host-to-guest receive FIFO (vm-superio uses 64; CVE-2020-27173).
FIFO_SIZE = 64

# Register offsets (DLAB=0 / DLAB=1 where they differ).
DATA = 0  # RBR (read) / THR (write) / DLL when DLAB
IER = 1  # DLM when DLAB
IIR = 2  # FCR on write
LCR = 3
MCR = 4
LSR = 5
MSR = 6
SCR = 7
NUM_REGS = 8

IER_RDI = 0x01  # received data available
IER_THRI = 0x02  # THR empty
IER_RLSI = 0x04  # receiver line status
IER_MSI = 0x08  # modem status
IER_MASK = 0x0F  # 16550A: bits 4-7 read as zero (8250 autoconfig relies on it)

IIR_NO_INT = 0x01
IIR_MSI = 0x00
IIR_THRI = 0x02
IIR_RDI = 0x04
IIR_RLSI = 0x06
IIR_FIFO_ENABLED = 0xC0  # bits 7:6 = 11 identify a 16550A with FIFOs on

FCR_ENABLE_FIFO = 0x01
FCR_CLEAR_RCVR = 0x02
FCR_CLEAR_XMIT = 0x04

LCR_DLAB = 0x80

MCR_DTR = 0x01
MCR_RTS = 0x02
MCR_OUT1 = 0x04
MCR_OUT2 = 0x08
MCR_LOOP = 0x10
MCR_MASK = 0x1F

LSR_DR = 0x01
LSR_OE = 0x02
LSR_THRE = 0x20
LSR_TEMT = 0x40

MSR_DCTS = 0x01
MSR_DDSR = 0x02
MSR_TERI = 0x04
MSR_DDCD = 0x08
MSR_CTS = 0x10
MSR_DSR = 0x20
MSR_RI = 0x40
MSR_DCD = 0x80
#: Modem lines outside loopback: carrier, data set ready and clear to send asserted.
MSR_DEFAULT = MSR_DCD | MSR_DSR | MSR_CTS

DEFAULT_DLL = 0x0C  # 9600 baud at 1.8432 MHz, like a PC BIOS leaves it


class SerialMetrics(Protocol):
    """Event hooks; implement only what you count."""

    def tx(self, n: int) -> None: ...

    def tx_lost(self, n: int) -> None: ...

    def rx(self, n: int) -> None: ...

    def overrun(self) -> None: ...

    def bad_access(self) -> None: ...


class NoSerialMetrics:
    """The no-op default."""

    def tx(self, n: int) -> None:
        pass

    def tx_lost(self, n: int) -> None:
        pass

    def rx(self, n: int) -> None:
        pass

    def overrun(self) -> None:
        pass

    def bad_access(self) -> None:
        pass


@dataclass
class SerialState:
    """Everything needed to rebuild the UART (no sinks, no metrics)."""

    ier: int = 0
    lcr: int = 0x03  # 8N1
    mcr: int = MCR_OUT2
    scr: int = 0
    dll: int = DEFAULT_DLL
    dlm: int = 0
    fifo_enabled: bool = False
    thri_pending: bool = False
    overrun: bool = False
    msr_delta: int = 0
    rx_fifo: bytes = b""
    line: bool = False


class Serial:
    """A 16550A UART.

    :param irq: called on each rising edge of the interrupt line; must not call back into
        the UART.
    :param out: receives transmitted bytes; must not block. An ``OSError`` from it is
        counted as lost output and the guest carries on.
    :param metrics: event hooks (default: none).
    """

    def __init__(
        self,
        irq: Callable[[], None],
        out: Callable[[bytes], None],
        metrics: SerialMetrics | None = None,
        state: SerialState | None = None,
    ) -> None:
        self._irq = irq
        self._out = out
        self.metrics: SerialMetrics = metrics or NoSerialMetrics()
        self._lock = threading.Lock()
        self._load(state or SerialState())

    def _load(self, s: SerialState) -> None:
        self._ier = s.ier & IER_MASK
        self._lcr = s.lcr & 0xFF
        self._mcr = s.mcr & MCR_MASK
        self._scr = s.scr & 0xFF
        self._dll = s.dll & 0xFF
        self._dlm = s.dlm & 0xFF
        self._fifo_enabled = s.fifo_enabled
        self._thri_pending = s.thri_pending
        self._overrun = s.overrun
        self._msr_delta = s.msr_delta & 0x0F
        self._rx: deque[int] = deque(s.rx_fifo[:FIFO_SIZE])
        self._line = s.line

    def state(self) -> SerialState:
        """Snapshot the registers and the RX FIFO."""
        with self._lock:
            return SerialState(
                ier=self._ier,
                lcr=self._lcr,
                mcr=self._mcr,
                scr=self._scr,
                dll=self._dll,
                dlm=self._dlm,
                fifo_enabled=self._fifo_enabled,
                thri_pending=self._thri_pending,
                overrun=self._overrun,
                msr_delta=self._msr_delta,
                rx_fifo=bytes(self._rx),
                line=self._line,
            )

    @classmethod
    def from_state(
        cls,
        state: SerialState,
        irq: Callable[[], None],
        out: Callable[[bytes], None],
        metrics: SerialMetrics | None = None,
    ) -> Serial:
        """Rebuild a UART from :meth:`state` with fresh side effects."""
        return cls(irq, out, metrics, state)

    # -- host side ------------------------------------------------------------------------

    def fifo_space(self) -> int:
        """Bytes :meth:`enqueue` would accept right now."""
        with self._lock:
            return FIFO_SIZE - len(self._rx)

    def enqueue(self, data: bytes) -> int:
        """Queue host-to-guest bytes; returns how many fit (the rest is the caller's)."""
        with self._lock:
            n = min(len(data), FIFO_SIZE - len(self._rx))
            self._rx.extend(data[:n])
            if n:
                self.metrics.rx(n)
            fire = self._update_line()
        if fire:
            self._irq()
        return n

    # -- guest side -----------------------------------------------------------------------

    def read(self, offset: int, size: int) -> bytes:
        """Guest read of the register at ``offset`` (1 byte wide; others read all-ones)."""
        if size != 1 or not 0 <= offset < NUM_REGS:
            self.metrics.bad_access()
            return b"\xff" * max(0, min(size, 8))
        with self._lock:
            value = self._read_reg(offset)
            fire = self._update_line()
        if fire:
            self._irq()
        return bytes((value,))

    def write(self, offset: int, data: bytes) -> None:
        """Guest write of the register at ``offset`` (1 byte wide; others are ignored)."""
        if len(data) != 1 or not 0 <= offset < NUM_REGS:
            self.metrics.bad_access()
            return
        tx = b""
        with self._lock:
            tx = self._write_reg(offset, data[0])
            fire = self._update_line()
        if tx:
            self._emit(tx)
        if fire:
            self._irq()

    def _emit(self, data: bytes) -> None:
        try:
            self._out(data)
        except OSError:
            self.metrics.tx_lost(len(data))
        else:
            self.metrics.tx(len(data))

    def _read_reg(self, offset: int) -> int:
        dlab = self._lcr & LCR_DLAB
        if offset == DATA:
            if dlab:
                return self._dll
            return self._rx.popleft() if self._rx else 0
        if offset == IER:
            return self._dlm if dlab else self._ier
        if offset == IIR:
            iir = self._iir()
            if iir & ~IIR_FIFO_ENABLED == IIR_THRI:
                self._thri_pending = False  # reading IIR acknowledges THRE (16550A datasheet)
            return iir
        if offset == LCR:
            return self._lcr
        if offset == MCR:
            return self._mcr
        if offset == LSR:
            lsr = LSR_THRE | LSR_TEMT | (LSR_DR if self._rx else 0)
            if self._overrun:
                lsr |= LSR_OE
                self._overrun = False
            return lsr
        if offset == MSR:
            msr = self._modem_lines() | self._msr_delta
            self._msr_delta = 0
            return msr
        return self._scr

    def _write_reg(self, offset: int, value: int) -> bytes:
        """Apply a register write; return bytes to transmit to the host."""
        dlab = self._lcr & LCR_DLAB
        if offset == DATA:
            if dlab:
                self._dll = value
                return b""
            return self._transmit(value)
        if offset == IER:
            if dlab:
                self._dlm = value
                return b""
            newly = value & ~self._ier & IER_THRI
            self._ier = value & IER_MASK
            if newly:
                self._thri_pending = True  # THR is always empty: enabling THRI raises it
            return b""
        if offset == IIR:
            self._write_fcr(value)
        elif offset == LCR:
            self._lcr = value
        elif offset == MCR:
            self._write_mcr(value)
        elif offset == SCR:
            self._scr = value
        # LSR and MSR are read-only; writes are ignored as on real parts.
        return b""

    def _transmit(self, value: int) -> bytes:
        self._thri_pending = True
        self._line = False  # THR write drops THRE; it rises again at once: a new edge
        if self._mcr & MCR_LOOP:
            if len(self._rx) < FIFO_SIZE:
                self._rx.append(value)
            else:
                self._overrun = True
                self.metrics.overrun()
            return b""
        return bytes((value,))

    def _write_fcr(self, value: int) -> None:
        self._fifo_enabled = bool(value & FCR_ENABLE_FIFO)
        if value & FCR_CLEAR_RCVR:
            self._rx.clear()

    def _write_mcr(self, value: int) -> None:
        before = self._modem_lines()
        self._mcr = value & MCR_MASK
        after = self._modem_lines()
        changed = before ^ after
        delta = 0
        if changed & MSR_CTS:
            delta |= MSR_DCTS
        if changed & MSR_DSR:
            delta |= MSR_DDSR
        if before & MSR_RI and not after & MSR_RI:
            delta |= MSR_TERI
        if changed & MSR_DCD:
            delta |= MSR_DDCD
        self._msr_delta |= delta

    def _modem_lines(self) -> int:
        if not self._mcr & MCR_LOOP:
            return MSR_DEFAULT
        m = self._mcr
        lines = 0
        if m & MCR_RTS:
            lines |= MSR_CTS
        if m & MCR_DTR:
            lines |= MSR_DSR
        if m & MCR_OUT1:
            lines |= MSR_RI
        if m & MCR_OUT2:
            lines |= MSR_DCD
        return lines

    def _iir(self) -> int:
        """The highest-priority pending and enabled source (16550A table: RLS > RDA > THRE > MS)."""
        fifo = IIR_FIFO_ENABLED if self._fifo_enabled else 0
        ier = self._ier
        if ier & IER_RLSI and self._overrun:
            return fifo | IIR_RLSI
        if ier & IER_RDI and self._rx:
            return fifo | IIR_RDI
        if ier & IER_THRI and self._thri_pending:
            return fifo | IIR_THRI
        if ier & IER_MSI and self._msr_delta:
            return fifo | IIR_MSI
        return fifo | IIR_NO_INT

    def _update_line(self) -> bool:
        """Recompute the interrupt line; True on a rising edge."""
        high = not self._iir() & IIR_NO_INT
        rose = high and not self._line
        self._line = high
        return rose
