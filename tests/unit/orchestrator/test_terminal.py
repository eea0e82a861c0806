"""Raw mode for ``schedlab shell``: entered on a terminal, restored exactly, on signals too."""

from __future__ import annotations

import os
import signal
import termios

import pytest

from orchestrator.terminal import RawTerminal, window_size


def test_raw_mode_is_restored_exactly_and_a_pipe_is_left_alone():
    master, slave = os.openpty()
    try:
        before = termios.tcgetattr(slave)
        term = RawTerminal(slave)
        term.enter()
        assert term.raw
        raw = termios.tcgetattr(slave)
        assert not raw[3] & (termios.ICANON | termios.ECHO | termios.ISIG)
        term.restore()
        term.restore()  # idempotent
        assert termios.tcgetattr(slave) == before
    finally:
        os.close(master)
        os.close(slave)
    r, w = os.pipe()
    try:
        t = RawTerminal(r)
        t.enter()
        assert not t.raw
        assert window_size(r) == (24, 80)
    finally:
        os.close(r)
        os.close(w)


def test_sigterm_restores_the_terminal_and_becomes_an_interrupt():
    master, slave = os.openpty()
    old = signal.getsignal(signal.SIGTERM)
    try:
        before = termios.tcgetattr(slave)
        term = RawTerminal(slave)
        term.enter()
        with pytest.raises(KeyboardInterrupt):
            os.kill(os.getpid(), signal.SIGTERM)
            signal.sigtimedwait([], 0.1)  # let the handler run
        assert termios.tcgetattr(slave) == before and not term.raw
        assert signal.getsignal(signal.SIGTERM) == old
    finally:
        signal.signal(signal.SIGTERM, old)
        os.close(master)
        os.close(slave)


def test_sigwinch_reports_the_new_size():
    import fcntl
    import struct

    master, slave = os.openpty()
    sizes = []
    try:
        term = RawTerminal(slave, on_winch=lambda r, c: sizes.append((r, c)))
        term.enter()
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 120, 0, 0))
        os.kill(os.getpid(), signal.SIGWINCH)
        signal.sigtimedwait([], 0.1)
        term.restore()
        assert sizes == [(40, 120)]
    finally:
        os.close(master)
        os.close(slave)
