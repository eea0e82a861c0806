"""A minimal i8042 keyboard controller: the guest's clean exit path and a quiet probe.

Map it at port 0x60 with length 5: offset 0 is the data port (0x60), offset 4 the
status/command port (0x64); offsets 1-3 read as all-ones. (KVM's in-kernel PIT claims port
0x61 before an exit reaches userspace.)

What Linux needs from it (drivers/input/serio/i8042.c, arch/x86/kernel/reboot.c):

* ``reboot=k``: kb_wait() polls status until IBF is clear, then writes 0xFE to 0x64; the
  device calls the injected ``reset()``. Writing an output-port value with bit 0 clear
  (command 0xD1) also resets, as on real boards.
* probing: self test (0xAA -> 0x55), CTR read/write (0x20/0x60), port enable/disable, and
  a keyboard that ACKs (0xFA) every byte, answers GET ID with 0xAB 0x83 and RESET with 0xAA.
* no mouse: the AUX loopback command (0xD3) answers on the keyboard side, which Linux's
  __i8042_command() rejects at once ("auxerr"), and the AUX interface test (0xA9) reports a
  stuck clock, so i8042_check_aux() gives up without any timeout. ``i8042.noaux`` is therefore
  not required (but harmless).
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

__all__ = ("I8042", "I8042Metrics", "I8042State", "OUT_QUEUE_SIZE", "PORT_LENGTH")

#: Length of the port range starting at 0x60.
PORT_LENGTH = 5
DATA = 0
STATUS = 4  # read: status; write: command

#: Bytes waiting for the guest (the controller plus the keyboard's own buffer).
OUT_QUEUE_SIZE = 16

STR_OBF = 0x01
STR_IBF = 0x02
STR_SYSFLAG = 0x04
STR_CMDDAT = 0x08  # last write went to the command port
STR_KEYLOCK = 0x10  # 1 = keyboard not inhibited
STR_AUXDATA = 0x20

CTR_KBDINT = 0x01
CTR_AUXINT = 0x02
CTR_SYSFLAG = 0x04
CTR_KBDDIS = 0x10
CTR_AUXDIS = 0x20
CTR_XLATE = 0x40
CTR_DEFAULT = CTR_KBDINT | CTR_SYSFLAG | CTR_AUXDIS | CTR_XLATE

CMD_READ_CTR = 0x20
CMD_WRITE_CTR = 0x60
CMD_AUX_DISABLE = 0xA7
CMD_AUX_ENABLE = 0xA8
CMD_AUX_TEST = 0xA9
CMD_SELF_TEST = 0xAA
CMD_KBD_TEST = 0xAB
CMD_KBD_DISABLE = 0xAD
CMD_KBD_ENABLE = 0xAE
CMD_READ_OUTP = 0xD0
CMD_WRITE_OUTP = 0xD1
CMD_WRITE_KBD_OUT = 0xD2
CMD_AUX_LOOP = 0xD3
CMD_WRITE_AUX = 0xD4
CMD_PULSE_RESET = 0xFE

SELF_TEST_OK = 0x55
PORT_TEST_OK = 0x00
AUX_TEST_CLOCK_STUCK = 0x02

OUTP_RESET_LINE = 0x01  # 0 = hold the CPU in reset
OUTP_DEFAULT = 0x03  # reset line high, A20 enabled

KBD_ACK = 0xFA
KBD_BAT_OK = 0xAA
KBD_CMD_RESET = 0xFF
KBD_CMD_GETID = 0xF2
KBD_CMD_ECHO = 0xEE
KBD_ID = (0xAB, 0x83)

# Commands whose next data-port byte is their parameter.
_WITH_PARAM = frozenset(
    {CMD_WRITE_CTR, CMD_WRITE_OUTP, CMD_WRITE_KBD_OUT, CMD_AUX_LOOP, CMD_WRITE_AUX}
)


class I8042Metrics(Protocol):
    """Event hooks; implement only what you count."""

    def reset_requested(self) -> None: ...

    def unknown_command(self, cmd: int) -> None: ...

    def bad_access(self) -> None: ...

    def dropped(self) -> None: ...


class NoI8042Metrics:
    """The no-op default."""

    def reset_requested(self) -> None:
        pass

    def unknown_command(self, cmd: int) -> None:
        pass

    def bad_access(self) -> None:
        pass

    def dropped(self) -> None:
        pass


@dataclass
class I8042State:
    """Everything needed to rebuild the controller."""

    ctr: int = CTR_DEFAULT
    outp: int = OUTP_DEFAULT
    pending_cmd: int | None = None
    last_was_cmd: bool = False
    out: list[int] = field(default_factory=list)
    line: bool = False


class I8042:
    """The 8042 controller with a keyboard that only answers commands.

    :param reset: called when the guest asks for a CPU reset (0xFE or output port bit 0).
    :param irq: IRQ 1, called on each rising edge (a byte reaches the output buffer while
        CTR.KBDINT is set).
    :param metrics: event hooks (default: none).
    """

    def __init__(
        self,
        reset: Callable[[], None],
        irq: Callable[[], None],
        metrics: I8042Metrics | None = None,
        state: I8042State | None = None,
    ) -> None:
        self._reset = reset
        self._irq = irq
        self.metrics: I8042Metrics = metrics or NoI8042Metrics()
        self._lock = threading.Lock()
        s = state or I8042State()
        self._ctr = s.ctr & 0xFF
        self._outp = s.outp & 0xFF
        self._pending = s.pending_cmd if s.pending_cmd in _WITH_PARAM else None
        self._last_cmd = s.last_was_cmd
        self._out: deque[int] = deque(b & 0xFF for b in s.out[:OUT_QUEUE_SIZE])
        self._line = s.line

    def state(self) -> I8042State:
        """Snapshot the controller."""
        with self._lock:
            return I8042State(
                self._ctr, self._outp, self._pending, self._last_cmd, list(self._out), self._line
            )

    @classmethod
    def from_state(
        cls,
        state: I8042State,
        reset: Callable[[], None],
        irq: Callable[[], None],
        metrics: I8042Metrics | None = None,
    ) -> I8042:
        """Rebuild a controller from :meth:`state` with fresh side effects."""
        return cls(reset, irq, metrics, state)

    def read(self, offset: int, size: int) -> bytes:
        """Guest read: offset 0 pops the output buffer, offset 4 is the status register."""
        if size != 1 or offset not in (DATA, STATUS):
            self.metrics.bad_access()
            return b"\xff" * max(0, min(size, 8))
        with self._lock:
            if offset == STATUS:
                return bytes((self._status(),))
            value = self._out.popleft() if self._out else 0
            self._line = False  # the next queued byte, if any, is a fresh edge
            fire = self._update_line()
        if fire:
            self._irq()
        return bytes((value,))

    def write(self, offset: int, data: bytes) -> None:
        """Guest write: offset 0 is data (a parameter or a keyboard byte), 4 a command."""
        if len(data) != 1 or offset not in (DATA, STATUS):
            self.metrics.bad_access()
            return
        with self._lock:
            if offset == STATUS:
                do_reset = self._command(data[0])
            else:
                do_reset = self._data(data[0])
            fire = self._update_line()
        if fire:
            self._irq()
        if do_reset:
            self.metrics.reset_requested()
            self._reset()

    def _status(self) -> int:
        st = STR_SYSFLAG | STR_KEYLOCK  # IBF stays clear: we consume writes at once
        if self._out:
            st |= STR_OBF
        if self._last_cmd:
            st |= STR_CMDDAT
        return st

    def _push(self, *values: int) -> None:
        for v in values:
            if len(self._out) >= OUT_QUEUE_SIZE:
                self.metrics.dropped()
                return
            self._out.append(v)

    def _command(self, cmd: int) -> bool:
        """Run a controller command; True if it asks for a CPU reset."""
        self._last_cmd = True
        self._pending = None
        if cmd in _WITH_PARAM:
            self._pending = cmd
        elif cmd == CMD_READ_CTR:
            self._push(self._ctr)
        elif cmd == CMD_AUX_DISABLE:
            self._ctr |= CTR_AUXDIS
        elif cmd == CMD_AUX_ENABLE:
            self._ctr &= ~CTR_AUXDIS
        elif cmd == CMD_AUX_TEST:
            self._push(AUX_TEST_CLOCK_STUCK)
        elif cmd == CMD_SELF_TEST:
            self._push(SELF_TEST_OK)
        elif cmd == CMD_KBD_TEST:
            self._push(PORT_TEST_OK)
        elif cmd == CMD_KBD_DISABLE:
            self._ctr |= CTR_KBDDIS
        elif cmd == CMD_KBD_ENABLE:
            self._ctr &= ~CTR_KBDDIS
        elif cmd == CMD_READ_OUTP:
            self._push(self._outp)
        elif cmd & 0xF0 == 0xF0:
            # 0xF0-0xFF pulse output lines low for bits that are 0; bit 0 is CPU reset.
            return not cmd & OUTP_RESET_LINE
        else:
            self.metrics.unknown_command(cmd)
        return False

    def _data(self, value: int) -> bool:
        """Handle a data-port byte; True if it asks for a CPU reset."""
        self._last_cmd = False
        cmd, self._pending = self._pending, None
        if cmd == CMD_WRITE_CTR:
            self._ctr = value
        elif cmd == CMD_WRITE_OUTP:
            self._outp = value
            return not value & OUTP_RESET_LINE
        elif cmd in (CMD_WRITE_KBD_OUT, CMD_AUX_LOOP):
            self._push(value)  # AUX loopback answers as keyboard data: no mouse here
        elif cmd == CMD_WRITE_AUX:
            pass  # no mouse behind the AUX port
        else:
            self._keyboard(value)
        return False

    def _keyboard(self, value: int) -> None:
        if value == KBD_CMD_RESET:
            self._push(KBD_ACK, KBD_BAT_OK)
        elif value == KBD_CMD_GETID:
            self._push(KBD_ACK, *KBD_ID)
        elif value == KBD_CMD_ECHO:
            self._push(KBD_CMD_ECHO)
        else:
            self._push(KBD_ACK)  # every other command and every parameter is ACKed

    def _update_line(self) -> bool:
        high = bool(self._out) and bool(self._ctr & CTR_KBDINT)
        rose = high and not self._line
        self._line = high
        return rose
